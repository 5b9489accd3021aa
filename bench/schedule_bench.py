#!/usr/bin/env python3
"""make bench part `schedule`: the delay from a schedule run's due time to the
start of its handler, p50 and p99, on the real clock.

N schedules `cron(* * * * ? *)` on one function are due together each minute:
the first minute warms the sandboxes, the next M minutes are measured. The
handler records time.time() at its entry and the event's `time` (the due
time) in its sandbox's /tmp, read through /proc/PID/root (as root).

The baseline, in the same run and on the same thatchd: N Event invocations
sent at once through the Lambda HTTP API (the same durable queue), M times;
their delay is from the moment each was sent to its handler's start.

Environment: BENCH_SCHEDULES (N, default 32), BENCH_SCHEDULE_MINUTES (M,
default 2).
"""

import concurrent.futures
import datetime
import io
import json
import os
import subprocess
import sys
import time
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "lambda"))
from lambda_clients import ROLE, boto3_client  # noqa: E402
from thatchd_process import FULL_KEY, TestDaemon, wait_until  # noqa: E402

THATCH = os.path.join(REPO, "build", "bin", "thatch")
SCHEDULES = int(os.environ.get("BENCH_SCHEDULES", "32"))
MINUTES = int(os.environ.get("BENCH_SCHEDULE_MINUTES", "2"))

HANDLER = """
import json
import time


def handler(event, context):
    started = time.time()
    record = {"started": started, "time": event.get("time"), "sent": event.get("sent"),
              "key": event.get("id") or event.get("key")}
    with open("/tmp/bench.jsonl", "a") as f:
        f.write(json.dumps(record) + "\\n")
"""


def code_zip():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bench.py", HANDLER)
    return buffer.getvalue()


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


class Records:
    """What the handlers recorded, gathered from every sandbox as it goes
    (a sandbox retired later takes its file with it)."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.by_key = {}

    def gather(self):
        for pid in self.daemon.sandbox_pids():
            try:
                with open(f"/proc/{pid}/root/tmp/bench.jsonl") as f:
                    lines = f.read().splitlines()
            except OSError:
                continue
            for line in lines:
                if line.endswith("}"):
                    record = json.loads(line)
                    self.by_key[record["key"]] = record
        return self.by_key

    def runs_due_at(self, due):
        return [r for r in self.gather().values() if r["time"] == due]


def due_seconds(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def iso(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def report(name, delays_ms):
    p50, p99 = percentile(delays_ms, 50), percentile(delays_ms, 99)
    print(f"  {name:<34} n={len(delays_ms):<4} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   max {max(delays_ms):7.2f} ms")
    return p50, p99


def main():
    daemon = TestDaemon(tables="[pool]\nmax_warm = 64\n")
    try:
        boto = boto3_client(daemon, FULL_KEY)
        boto.create_function(
            FunctionName="bench", Runtime="python3.11", Handler="bench.handler", Role=ROLE, Code={"ZipFile": code_zip()}
        )
        for _ in range(SCHEDULES):
            subprocess.run(
                [THATCH, "--socket", daemon.socket, "schedule", "add", "bench", "cron(* * * * ? *)"],
                check=True,
                capture_output=True,
            )
        records = Records(daemon)
        first = iso((int(time.time()) // 60 + 1) * 60)
        print(f"== schedule: {SCHEDULES} schedules due each minute; the first ({first}) warms, {MINUTES} measured")
        wait_until(lambda: len(records.runs_due_at(first)) == SCHEDULES, "the warm-up minute's runs", daemon.log)
        delays = []
        for minute in range(1, MINUTES + 1):
            due = iso(due_seconds(first) + 60 * minute)
            runs = wait_until(
                lambda: len(records.runs_due_at(due)) == SCHEDULES and records.runs_due_at(due),
                f"the runs due at {due}",
                daemon.log,
            )
            delays += [(r["started"] - due_seconds(due)) * 1000 for r in runs]

        # The baseline: the same number of Event invocations, sent at once.
        baseline = []
        with concurrent.futures.ThreadPoolExecutor(SCHEDULES) as pool:
            for round_ in range(MINUTES):
                keys = [f"event-{round_}-{i}" for i in range(SCHEDULES)]

                def send(key):
                    payload = json.dumps({"sent": time.time(), "key": key})
                    boto.invoke(FunctionName="bench", InvocationType="Event", Payload=payload)

                list(pool.map(send, keys))
                got = wait_until(
                    lambda: all(k in records.gather() for k in keys) and [records.by_key[k] for k in keys],
                    "the Event invocations' runs",
                    daemon.log,
                )
                baseline += [(r["started"] - r["sent"]) * 1000 for r in got]
        boto.close()
        s50, s99 = report("schedule: due time -> handler", delays)
        b50, b99 = report("Event invoke: sent -> handler", baseline)
        print(f"  ratio schedule/Event invoke: p50 {s50 / b50:.2f}x, p99 {s99 / b99:.2f}x")
        listed = json.loads(
            subprocess.run(
                [THATCH, "--socket", daemon.socket, "--json", "schedule", "ls"], check=True, capture_output=True
            ).stdout
        )["triggers"]
        skipped = sum(t["stats"]["skipped"] for t in listed)
        failures = sum(t["stats"]["failures"] for t in listed)
        print(f"  runs skipped {skipped}, failed {failures}")
    finally:
        daemon.close()


if __name__ == "__main__":
    main()
