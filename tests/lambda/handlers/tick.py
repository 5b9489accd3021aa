"""Records each event it is given, with the time its handler started, in
/tmp/ticks.jsonl of its sandbox (read by the test through /proc/PID/root)."""

import json
import time


def handler(event, context):
    started = time.time()
    with open("/tmp/ticks.jsonl", "a") as ticks:
        ticks.write(json.dumps({"started": started, "event": event}) + "\n")
    return None
