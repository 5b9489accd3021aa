"""Redis stream event source mappings through a real thatchd and a real
redis-server on loopback (docs/triggers.md, "Redis streams"): what the
function receives (recorded by handlers/stream_consumer.py and read by the
test), acknowledgement, partial batch responses, the dead-letter stream, and
at-least-once delivery when the function's sandbox or thatchd is killed
mid-batch; none lost and none delivered twice across a graceful restart."""

import collections
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from redis_support import Recorder, RedisServer, Resp  # noqa: E402
from thatchd_process import REPO, TestDaemon, wait_until  # noqa: E402

THATCH = os.path.join(REPO, "build", "bin", "thatch")
HANDLERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "handlers")
STREAM = "orders"


class RedisStreamTestCase(unittest.TestCase):
    """A redis-server, a thatchd (region eu-west-1) with the function
    `consumer` (handlers/stream_consumer.py) and a recorder of what it receives."""

    RECORD = ""  # "ids": the function records only its records' ids and receive counts

    def setUp(self):
        self.redis = RedisServer()
        self.addCleanup(self.redis.close)
        self.resp = Resp(self.redis.port)
        self.addCleanup(self.resp.close)
        self.daemon = TestDaemon(region="eu-west-1")
        self.addCleanup(self.daemon.close)
        self.recorder = Recorder(self.daemon)
        self.addCleanup(self.recorder.close)
        code = tempfile.mkdtemp(prefix="stream-consumer-")
        self.addCleanup(shutil.rmtree, code, ignore_errors=True)
        shutil.copy(os.path.join(HANDLERS, "stream_consumer.py"), os.path.join(code, "handler.py"))
        args = ["deploy", "consumer", code, "--timeout", "15m"]  # a guard: the test kills held ones
        if self.RECORD:
            args += ["--env", f"RECORD={self.RECORD}"]
        self.thatch(*args)

    def thatch(self, *args):
        result = subprocess.run(
            [THATCH, "--socket", self.daemon.socket, *args], capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            raise AssertionError(f"thatch {' '.join(args)}: exit {result.returncode}\n{result.stderr}")
        return result.stdout

    def add_mapping(self, *options):
        out = self.thatch("trigger", "add", "redis-stream", self.redis.url, STREAM, "consumer", *options)
        match = re.search(r"redis-stream-\d+", out)
        self.assertIsNotNone(match, out)
        return match.group(0)

    def add(self, *bodies, **fields):
        """XADDs one entry per body; its ids."""
        ids = []
        for body in bodies:
            args = ["XADD", STREAM, "*", "body", body]
            for key, value in fields.items():
                args += [key, value]
            ids.append(self.resp.command(*args).decode())
        return ids

    def batches(self):
        """Each invocation's event the function recorded, in order."""
        return [json.loads(line) for line in self.recorder.snapshot()]

    def received(self):
        """(messageId, ApproximateReceiveCount) of every record received, in order."""
        return [
            (record["messageId"], record["attributes"]["ApproximateReceiveCount"])
            for batch in self.batches()
            for record in batch["Records"]
        ]

    def wait_acknowledged(self, count):
        """Until the group has read `count` entries and acknowledged them all."""

        def done():
            info = self.resp.group_info(STREAM)
            return info is not None and info["entries-read"] == count and self.resp.pending(STREAM) == 0

        wait_until(done, f"{count} entries read and acknowledged", self.daemon.log)

    def kill_sandboxes(self):
        for pid in self.daemon.sandbox_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class DeliveryTest(RedisStreamTestCase):
    def test_batches_arrive_in_the_shape_of_sqs_events_and_are_acknowledged(self):
        ids = self.add("first", "second", customer="ada")
        mapping = self.add_mapping("--batch-size", "10", "--max-wait", "200ms")
        self.wait_acknowledged(2)
        records = [record for batch in self.batches() for record in batch["Records"]]
        self.assertEqual([record["messageId"] for record in records], ids)
        record = records[0]
        self.assertEqual(record["body"], "first")
        self.assertEqual(record["eventSource"], "aws:sqs")
        self.assertEqual(record["eventSourceARN"], f"arn:aws:sqs:eu-west-1:000000000000:{STREAM}")
        self.assertEqual(record["awsRegion"], "eu-west-1")
        self.assertEqual(record["attributes"]["ApproximateReceiveCount"], "1")
        self.assertEqual(record["attributes"]["SentTimestamp"], ids[0].split("-")[0])
        self.assertEqual(
            record["messageAttributes"],
            {"customer": {"stringValue": "ada", "stringListValues": [], "binaryListValues": [], "dataType": "String"}},
        )
        self.assertTrue(record["receiptHandle"].startswith(f"{mapping}/{ids[0]}/"))

    def test_only_the_items_reported_failed_are_delivered_again(self):
        ids = self.add("a", "partial", "c")
        self.add_mapping("--batch-size", "10", "--max-wait", "200ms")
        self.wait_acknowledged(3)
        wait_until(lambda: len(self.received()) == 4, "the failed item delivered again")
        self.assertEqual(
            self.received(), [(ids[0], "1"), (ids[1], "1"), (ids[2], "1"), (ids[1], "2")]
        )

    def test_a_failing_message_goes_to_the_dead_letter_stream_after_its_attempts(self):
        ids = self.add("fail")
        self.add_mapping("--batch-size", "10", "--max-wait", "50ms")
        wait_until(lambda: self.resp.entries(f"{STREAM}:dead-letter"), "a dead letter", self.daemon.log)
        self.assertEqual(self.resp.pending(STREAM), 0)
        self.assertEqual(self.received(), [(ids[0], "1"), (ids[0], "2"), (ids[0], "3")])
        [(_, dead)] = self.resp.entries(f"{STREAM}:dead-letter")
        self.assertEqual(dead["body"], "fail")
        self.assertEqual(dead["thatch:source-id"], ids[0])
        self.assertEqual(dead["thatch:attempts"], "3")
        self.assertIn("ValueError: a message said fail", dead["thatch:last-error"])

    def test_a_disabled_mapping_consumes_nothing_until_enabled(self):
        mapping = self.add_mapping("--batch-size", "10", "--max-wait", "50ms")
        first = self.add("before")
        self.wait_acknowledged(1)
        stopped_at = self.daemon.log_size()
        self.thatch("trigger", "disable", mapping)
        wait_until(
            lambda: re.search(rf"redis-stream-stopped.*{mapping}", self.daemon.log()[stopped_at:]),
            "the mapping's consumer stopped",
            self.daemon.log,
        )
        later = self.add("while disabled")
        # Its consumer is gone: the entry stays unread by the group.
        self.assertEqual(self.resp.group_info(STREAM)["lag"], 1)
        self.thatch("trigger", "enable", mapping)
        self.wait_acknowledged(2)
        self.assertEqual(self.received(), [(first[0], "1"), (later[0], "1")])


    def test_a_broker_that_is_down_is_reported_and_delivery_resumes_when_it_is_back(self):
        self.resp.close()
        self.redis.stop()
        mapping = self.add_mapping("--batch-size", "10", "--max-wait", "50ms")
        stats = wait_until(
            lambda: (lambda s: s if s["lastError"] else None)(self.stats(mapping)), "lastError", self.daemon.log
        )
        self.assertIn(self.redis.url, stats["lastError"])
        self.assertIn("refused", stats["lastError"])
        self.redis.start()
        self.resp = Resp(self.redis.port)
        self.addCleanup(self.resp.close)
        ids = self.add("a")
        self.wait_acknowledged(1)
        self.assertEqual(self.received(), [(ids[0], "1")])
        stats = wait_until(
            lambda: (lambda s: s if not s["lastError"] else None)(self.stats(mapping)), "lastError cleared"
        )
        self.assertEqual((stats["deliveries"], stats["messages"], stats["failures"]), (1, 1, 0))

    def stats(self, mapping):
        [trigger] = [t for t in json.loads(self.thatch("--json", "trigger", "ls"))["triggers"] if t["id"] == mapping]
        return trigger["stats"]


class AtLeastOnceTest(RedisStreamTestCase):
    def test_a_batch_whose_sandbox_is_killed_is_delivered_again(self):
        ids = self.add("a", "hold", "c")
        self.add_mapping("--batch-size", "10", "--max-wait", "200ms")
        wait_until(lambda: self.received(), "the batch received")
        self.assertEqual(self.resp.pending(STREAM), 3)
        self.kill_sandboxes()
        self.wait_acknowledged(3)
        self.assertEqual(self.received(), [(i, "1") for i in ids] + [(i, "2") for i in ids])

    def test_a_batch_under_way_when_thatchd_is_killed_is_delivered_after_its_restart(self):
        ids = self.add("a", "hold", "c")
        self.add_mapping("--batch-size", "10", "--max-wait", "200ms")
        wait_until(lambda: self.received(), "the batch received")
        self.daemon.kill9()
        self.kill_sandboxes()  # what a kill -9 leaves; the restart would remove them too
        self.assertEqual(self.resp.pending(STREAM), 3)
        self.daemon.start()
        self.wait_acknowledged(3)
        self.assertEqual(self.received(), [(i, "1") for i in ids] + [(i, "2") for i in ids])


class GracefulRestartTest(RedisStreamTestCase):
    RECORD = "ids"

    def test_a_steady_stream_across_a_sigterm_restart_loses_nothing_and_repeats_nothing(self):
        """SIGTERM arrives while the function holds a batch (one with a
        "pause" entry): thatchd drains, the batch ends and is acknowledged,
        and after the restart the stream goes on where it was."""
        total, chunk, pause_at = 3000, 20, 1000
        self.add_mapping("--batch-size", "10", "--max-wait", "50ms")
        added = []
        failure = []

        def produce():
            producer = Resp(self.redis.port)
            try:
                for n in range(0, total, chunk):
                    bodies = ["pause" if n + i == pause_at else str(n + i) for i in range(chunk)]
                    replies = producer.pipeline([("XADD", STREAM, "*", "body", body) for body in bodies])
                    added.extend(reply.decode() for reply in replies)
                    # Paced by the consumer: at most 200 entries ahead of it.
                    wait_until(
                        lambda: len(added) - self.consumed() <= 200, "the consumer keeping up", self.daemon.log
                    )
            except BaseException as e:  # reported by the test
                failure.append(e)
            finally:
                producer.close()

        thread = threading.Thread(target=produce)
        thread.start()
        try:
            fifo = wait_until(self.paused_fifo, "the batch with the pause entry held", self.daemon.log)
            draining_at = self.daemon.log_size()
            self.daemon.process.send_signal(signal.SIGTERM)
            wait_until(lambda: "draining" in self.daemon.log()[draining_at:], "thatchd draining", self.daemon.log)
            with open(fifo, "wb") as release:  # the held batch ends while thatchd drains
                release.write(b"go")
            self.assertEqual(self.daemon.stop(), 0)
            self.assertLess(len(added), total, "the stream was still being filled")
            self.daemon.start()
        finally:
            thread.join()
        self.assertEqual(failure, [])
        self.wait_acknowledged(total)
        seen = collections.Counter(self.seen_ids())
        self.assertEqual(set(seen), set(added), "every entry delivered")
        self.assertEqual([i for i, n in seen.items() if n > 1], [], "none delivered twice")
        self.assertEqual(seen[added[pause_at]], 1)

    def paused_fifo(self):
        for pid in self.daemon.sandbox_pids():
            path = f"/proc/{pid}/root/tmp/pause.fifo"
            if os.path.exists(path):
                return path
        return None

    def seen_ids(self):
        return [item.split(":")[0] for line in self.recorder.snapshot() for item in line.split()]

    def consumed(self):
        return sum(len(line.split()) for line in self.recorder.snapshot())


if __name__ == "__main__":
    unittest.main()
