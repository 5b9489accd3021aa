"""Never returns: only the deadline ends it."""


def handler(event, context):
    while True:
        pass
