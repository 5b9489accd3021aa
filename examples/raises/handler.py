"""Raises ValueError from a nested call: the error's traceback shows both frames."""


def handler(event, context):
    return check_quantity(event)


def check_quantity(event):
    raise ValueError(f"quantity must be a positive integer, got {event!r}")
