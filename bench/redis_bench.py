"""make bench, part `redis`: a Redis stream mapping's throughput through a warm
function at batch size 10, beside the same batches invoked one after the
other over the Lambda HTTP API (boto3, one client, keep-alive) in the same
run; then entries produced while thatchd restarts (SIGTERM) in the middle,
counted as the function received them: lost and delivered twice.

BENCH_REDIS_MESSAGES (default 50000) entries for the throughput, a fifth of
them for the baseline and as many for the restart."""

import collections
import json
import os
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "lambda"))

import boto3  # noqa: E402
import botocore.config  # noqa: E402
from redis_support import Recorder, RedisServer, Resp  # noqa: E402
from thatchd_process import FULL_KEY, REPO, TestDaemon, wait_until  # noqa: E402

import subprocess  # noqa: E402

THATCH = os.path.join(REPO, "build", "bin", "thatch")
STREAM = "bench"
BATCH = 10


def thatch(daemon, *args):
    result = subprocess.run([THATCH, "--socket", daemon.socket, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"thatch {' '.join(args)}: {result.stderr}")
    return result.stdout


def fill(resp, count, start=0):
    for n in range(start, start + count, 1000):
        resp.pipeline([("XADD", STREAM, "*", "body", str(i)) for i in range(n, min(n + 1000, start + count))])


def seen_ids(recorder):
    return [item.split(":")[0] for line in recorder.snapshot() for item in line.split()]


def event(first):
    records = [
        {
            "messageId": f"baseline-{first + i}",
            "receiptHandle": f"baseline/{first + i}/1",
            "body": str(first + i),
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
        }
        for i in range(BATCH)
    ]
    return json.dumps({"Records": records}).encode()


def main():
    messages = int(os.environ.get("BENCH_REDIS_MESSAGES", "50000"))
    redis = RedisServer()
    daemon = TestDaemon()
    recorder = Recorder(daemon)
    code = tempfile.mkdtemp(prefix="redis-bench-")
    resp = Resp(redis.port)
    try:
        shutil.copy(os.path.join(REPO, "tests", "lambda", "handlers", "stream_consumer.py"),
                    os.path.join(code, "handler.py"))
        thatch(daemon, "deploy", "consumer", code, "--env", "RECORD=ids", "--concurrency", "1")

        # Baseline: the same batches as Invokes over HTTP, one after the other.
        boto = boto3.client(
            "lambda", endpoint_url=daemon.endpoint, region_name=daemon.region,
            aws_access_key_id=FULL_KEY.id, aws_secret_access_key=FULL_KEY.secret,
            config=botocore.config.Config(retries={"max_attempts": 0}),
        )
        baseline_messages = max(BATCH, messages // 5 // BATCH * BATCH)
        boto.invoke(FunctionName="consumer", Payload=event(10**9))  # warm
        began = time.monotonic()
        for first in range(0, baseline_messages, BATCH):
            boto.invoke(FunctionName="consumer", Payload=event(first))
        baseline_rate = baseline_messages / (time.monotonic() - began)
        boto.close()

        # The mapping: the stream filled first, then consumed.
        fill(resp, messages)
        before = len(recorder.snapshot())
        began = time.monotonic()
        thatch(daemon, "trigger", "add", "redis-stream", redis.url, STREAM, "consumer",
               "--batch-size", str(BATCH), "--max-wait", "50ms")

        def all_acknowledged(count):
            info = resp.group_info(STREAM)
            return info is not None and info["entries-read"] == count and resp.pending(STREAM) == 0

        wait_until(lambda: all_acknowledged(messages), f"{messages} entries acknowledged", daemon.log)
        elapsed = time.monotonic() - began
        rate = messages / elapsed
        batches = len(recorder.snapshot()) - before
        print(f"redis stream mapping: {messages} entries in {elapsed:.2f} s: {rate:,.0f} messages/s "
              f"({batches} batches); the same batches invoked over HTTP one after the other: "
              f"{baseline_rate:,.0f} messages/s: {rate / baseline_rate:.2f}x "
              f"(target >= 5,000 messages/s)")

        # A restart (SIGTERM) while entries arrive.
        restart_messages = max(1000, messages // 5)
        produced = threading.Event()

        def produce():
            producer = Resp(redis.port)
            for n in range(messages, messages + restart_messages, 100):
                producer.pipeline([("XADD", STREAM, "*", "body", str(i)) for i in range(n, n + 100)])
                time.sleep(0.005)  # a steady stream, not a burst
            producer.close()
            produced.set()

        thread = threading.Thread(target=produce)
        thread.start()
        wait_until(lambda: resp.group_info(STREAM)["entries-read"] >= messages + restart_messages // 4,
                   "a quarter consumed", daemon.log)
        daemon.stop()
        still_producing = not produced.is_set()
        daemon.start()
        thread.join()
        wait_until(lambda: all_acknowledged(messages + restart_messages), "every entry acknowledged",
                   daemon.log)
        ids = [entry_id.decode() for entry_id, _ in resp.command("XRANGE", STREAM, "-", "+")]
        try:  # acknowledged, hence recorded: the recorder may still be reading
            wait_until(lambda: set(ids) <= set(seen_ids(recorder)), "every entry recorded")
        except AssertionError:
            pass  # counted as lost below
        seen = collections.Counter(i for i in seen_ids(recorder) if not i.startswith("baseline-"))
        lost = sum(1 for i in ids if i not in seen)
        twice = sum(1 for n in seen.values() if n > 1)
        print(f"restart (SIGTERM) with {restart_messages} entries arriving"
              f"{'' if still_producing else ' (the producer had finished first)'}: "
              f"{len(ids)} entries, {lost} lost, {twice} delivered twice")
        return 0 if lost == 0 and twice == 0 and rate >= 5000 else 1
    finally:
        resp.close()
        recorder.close()
        daemon.close()
        redis.close()
        shutil.rmtree(code, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
