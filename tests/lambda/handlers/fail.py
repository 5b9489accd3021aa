"""Raises from a function it calls, so that the trace has two frames."""


def check(event):
    raise ValueError(f"no good: {event['why']}")


def handler(event, context):
    print("about to fail")
    check(event)
