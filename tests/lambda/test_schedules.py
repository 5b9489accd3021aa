"""Schedules end to end: a real thatchd whose schedules' clock runs 60 times
as fast ([testing] schedule_clock_scale = 60: a minute a second), schedules
added with the `thatch` CLI, and a handler (handlers/tick.py) that records
each event it gets in its sandbox's /tmp, read through /proc/PID/root."""

import datetime
import json
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lambda_clients import ROLE, boto3_client, function_zip  # noqa: E402
from thatchd_process import FULL_KEY, REPO, TestDaemon, wait_until  # noqa: E402

THATCH = os.path.join(REPO, "build", "bin", "thatch")
SCALE = 60


def seconds(iso_time):
    """An event's `time` ("2026-12-06T12:00:00Z") in seconds since the epoch."""
    return datetime.datetime.strptime(iso_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()


class SchedulesTest(unittest.TestCase):
    def setUp(self):
        self.daemon = TestDaemon(tables=f"[testing]\nschedule_clock_scale = {SCALE}\n")
        self.addCleanup(self.daemon.close)
        self.boto = boto3_client(self.daemon, FULL_KEY)
        self.addCleanup(self.boto.close)

    def deploy(self, name):
        self.boto.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Handler="tick.handler",
            Role=ROLE,
            Code={"ZipFile": function_zip("tick")},
        )

    def thatch(self, *args):
        result = subprocess.run(
            [THATCH, "--socket", self.daemon.socket, *args], capture_output=True, text=True, timeout=120
        )
        self.assertEqual(result.returncode, 0, f"thatch {' '.join(args)}: {result.stderr}")
        return result.stdout

    def ticks(self, function):
        """The events `function`'s sandboxes recorded, by due time."""
        seen = {}
        for pid in self.daemon.sandbox_pids():
            try:
                with open(f"/proc/{pid}/root/tmp/ticks.jsonl") as ticks:
                    lines = ticks.read().splitlines()
            except OSError:  # not a sandbox of this function, or gone
                continue
            for line in lines:
                if not line.endswith("}"):
                    continue  # being written
                record = json.loads(line)
                if record["event"]["resources"][0].endswith(self.ids.get(function, "?")):
                    seen[record["event"]["id"]] = record["event"]
        return sorted(seen.values(), key=lambda event: event["time"])

    def add(self, function, expression, *args):
        out = self.thatch("schedule", "add", function, expression, *args)
        trigger_id = out.split(" ")[0]
        self.assertTrue(trigger_id.startswith("schedule-"), out)
        self.ids[function] = trigger_id
        return trigger_id

    def scaled_now(self):
        """The schedules' clock: SCALE times as fast as the system's from the
        epoch thatchd keeps in its state directory."""
        with open(os.path.join(self.daemon.state_dir, "schedule-clock-epoch")) as f:
            epoch = int(f.read()) / 1000
        return epoch + (time.time() - epoch) * SCALE

    def stats(self, trigger_id):
        listed = json.loads(self.thatch("--json", "trigger", "ls"))["triggers"]
        return next(t["stats"] for t in listed if t["id"] == trigger_id)

    def test_runs_deliver_eventbridges_document_and_do_not_repeat_across_a_restart(self):
        self.ids = {}
        self.deploy("tick")
        trigger_id = self.add("tick", "rate(1 minute)", "--data", '{"job": "report"}')
        events = wait_until(lambda: len(self.ticks("tick")) >= 3 and self.ticks("tick"), "3 runs", self.daemon.log)
        for event in events:
            self.assertEqual(
                set(event), {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
            )
            self.assertEqual(event["version"], "0")
            self.assertEqual(event["detail-type"], "Scheduled Event")
            self.assertEqual(event["source"], "aws.events")
            self.assertEqual(event["account"], "000000000000")
            self.assertEqual(event["region"], "us-east-1")
            self.assertEqual(event["resources"], [f"arn:aws:events:us-east-1:000000000000:rule/{trigger_id}"])
            self.assertEqual(event["detail"], {"job": "report"})
            self.assertRegex(event["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$")
            self.assertRegex(event["id"], r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        # One a (scaled) minute, none twice.
        times = [event["time"] for event in events]
        self.assertEqual(len(set(times)), len(times), times)
        stats = self.stats(trigger_id)
        self.assertGreaterEqual(stats["deliveries"], 3, stats)
        self.assertEqual(stats["failures"], 0, stats)
        self.assertGreater(stats["nextRunUnixMs"], stats["lastRunUnixMs"], stats)

        # thatchd is down while at least two runs are due (two seconds of the
        # scaled clock's minutes): they are counted missed, logged once, and
        # not run after the restart; no due time runs twice.
        before = set(times)
        last_before = max(times)
        self.daemon.stop()
        resume = seconds(last_before) + 3 * 60 + 1
        wait_until(lambda: self.scaled_now() >= resume, "the scaled clock past 3 more runs")
        restarted_at = self.daemon.log_size()
        self.daemon.start()
        missed = re.findall(
            rf"schedule_missed id={trigger_id} function=tick runs=(\d+) first=(\S+) last=(\S+) why=down",
            self.daemon.log()[restarted_at:],
        )
        self.assertEqual(len(missed), 1, self.daemon.log()[restarted_at:])
        runs, first, last = int(missed[0][0]), missed[0][1], missed[0][2]
        self.assertGreaterEqual(runs, 2)
        self.assertGreater(first, last_before)
        self.assertEqual(seconds(last) - seconds(first), (runs - 1) * 60)
        self.assertEqual(self.stats(trigger_id)["missed"], runs)
        after = wait_until(lambda: len(self.ticks("tick")) >= 2 and self.ticks("tick"), "2 runs after", self.daemon.log)
        for event in after:
            self.assertNotIn(event["time"], before)
            self.assertGreater(event["time"], last_before)
            self.assertFalse(first <= event["time"] <= last, f"{event['time']} was missed, and ran")

    def test_a_disabled_schedule_runs_nothing(self):
        self.ids = {}
        self.deploy("quiet")
        self.deploy("busy")
        quiet_id = self.add("quiet", "rate(1 minute)")
        wait_until(lambda: self.ticks("quiet"), "quiet's first run", self.daemon.log)
        self.thatch("trigger", "disable", quiet_id)
        runs_when_disabled = self.stats(quiet_id)["deliveries"]
        # busy's runs are the clock that shows time passed: 3 (scaled) minutes.
        self.add("busy", "rate(1 minute)")
        wait_until(lambda: len(self.ticks("busy")) >= 3, "3 runs of busy", self.daemon.log)
        stats = self.stats(quiet_id)
        self.assertEqual(stats["deliveries"], runs_when_disabled, stats)
        self.assertEqual(stats["nextRunUnixMs"], 0, stats)
        self.assertLessEqual(len(self.ticks("quiet")), runs_when_disabled)


if __name__ == "__main__":
    unittest.main()
