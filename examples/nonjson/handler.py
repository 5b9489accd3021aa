"""Returns a set, which JSON cannot encode."""


def handler(event, context):
    return {1, 2, 3}
