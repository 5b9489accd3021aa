"""Returns the time left before the deadline and the request id."""


def handler(event, context):
    return {"remaining_ms": context.get_remaining_time_in_millis(), "request_id": context.aws_request_id}
