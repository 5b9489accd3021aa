"""Prints 10 MiB in 1 KiB lines, far more than any log limit, and returns "done"."""


def handler(event, context):
    line = "x" * 1023
    for _ in range(10 * 1024):
        print(line)
    return "done"
