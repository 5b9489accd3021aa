"""A Redis stream mapping's function for tests/lambda/test_redis_stream.py
and bench/redis_bench.py. Each batch it receives is written, before anything
else, as one line to the FIFO /tmp/seen.fifo, which the test reads through
/proc/PID/root: the event's JSON, or with RECORD=ids only its records'
messageId:ApproximateReceiveCount. Then, by the records' bodies:
  "hold"     on its first delivery: the handler waits (the test kills its
             sandbox, or thatchd);
  "pause"    on its first delivery: the handler waits until the test opens
             the FIFO /tmp/pause.fifo for writing and closes it;
  "fail"     the invocation raises;
  "partial"  on its first delivery: reported in batchItemFailures."""

import json
import os
import time

_FIFO = "/tmp/seen.fifo"
_PAUSE = "/tmp/pause.fifo"
_seen = None


def _record(line):
    global _seen
    if _seen is None:
        if not os.path.exists(_FIFO):
            os.mkfifo(_FIFO)
        _seen = open(_FIFO, "w")  # blocks until the test's reader opens it
    _seen.write(line + "\n")
    _seen.flush()


def handler(event, context):
    records = event["Records"]
    if os.environ.get("RECORD") == "ids":
        _record(" ".join(f'{r["messageId"]}:{r["attributes"]["ApproximateReceiveCount"]}' for r in records))
    else:
        _record(json.dumps(event))

    def first(record):
        return record["attributes"]["ApproximateReceiveCount"] == "1"

    if any(r["body"] == "hold" and first(r) for r in records):
        while True:
            time.sleep(3600)
    if any(r["body"] == "pause" and first(r) for r in records):
        os.mkfifo(_PAUSE)
        with open(_PAUSE, "rb") as fifo:  # blocks until the test opens it
            fifo.read()
        os.unlink(_PAUSE)
    if any(r["body"] == "fail" for r in records):
        raise ValueError("a message said fail")
    failed = [r["messageId"] for r in records if r["body"] == "partial" and first(r)]
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
