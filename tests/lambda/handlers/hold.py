"""With {"fifo": PATH}, makes a FIFO at PATH (under /tmp) and waits for a
writer to open it: the test reaches it through /proc/PID/root, sees from
its existence that the handler is running, and releases it by opening it.
Without, answers at once."""

import os


def handler(event, context):
    path = event.get("fifo")
    if not path:
        return {"released": None, "event": event}
    os.mkfifo(path)
    with open(path, "rb") as fifo:  # blocks until the test opens it for writing
        return {"released": fifo.read().decode(), "event": event}
