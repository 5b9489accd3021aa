"""Counts its calls in a module-level variable: warm sandboxes keep it."""

calls = 0


def handler(event, context):
    global calls
    calls += 1
    return calls
