"""Returns the event unchanged."""


def handler(event, context):
    return event
