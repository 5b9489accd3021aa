"""Reports what the handler sees: its event, its context, its environment and
the answer.txt packed beside it; prints a line for the logs."""

import os

LAMBDA_VARIABLES = (
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "LAMBDA_TASK_ROOT",
    "_HANDLER",
    "TZ",
)


def handler(event, context):
    print(f"report handler saw {event}")
    try:
        with open("answer.txt") as f:
            answer = f.read()
    except FileNotFoundError:
        answer = None
    return {
        "event": event,
        "answer": answer,
        "cwd": os.getcwd(),
        # From the bytes: the runtime's Python decodes os.environ as ASCII
        # (test_utf8_by_default), and this handler reports what thatchd set.
        "environ": {name.decode(): value.decode() for name, value in os.environb.items()},
        "lambda_variables": {name: os.environ.get(name) for name in LAMBDA_VARIABLES},
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
