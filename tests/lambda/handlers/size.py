"""Answers little however large the event."""


def handler(event, context):
    return {"pad_length": len(event["pad"])}
