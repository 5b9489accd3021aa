"""thatchd's GET /metrics and GET /healthz on the HTTP listener
(docs/lambda.md#metrics), end to end: the counts a scrape shows after
invocations made with boto3, the scrape checked by promtool (Debian's
`prometheus` package) and scraped by a real Prometheus server on loopback,
and /healthz while thatchd serves and while it drains.

Run from the repository root (as root, with build/bin built):
    /usr/bin/python3 -m unittest tests/lambda/test_metrics.py
"""

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_lambda_clients import DaemonTestCase, boto3_invoke, held_fifo, release  # noqa: E402
from thatchd_process import FULL_KEY, GUARD_SECONDS, wait_until  # noqa: E402

PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"

# /metrics is read with a [[client]]'s token allowed "metrics" (or "admin"),
# as Prometheus sends it (`authorization: credentials:`).
SCRAPE_TOKEN = "scrape-token-for-the-metrics-tests"
INVOKE_TOKEN = "a-token-that-may-only-invoke"
CLIENTS = "".join(
    f'[[client]]\nname = "{name}"\ntoken_sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\n'
    f"allow = [{allow}]\n"
    for name, token, allow in (("prometheus", SCRAPE_TOKEN, '"metrics"'), ("ci", INVOKE_TOKEN, '"invoke:*"'))
)

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def parse_exposition(text):
    """The samples of a text-format scrape: {(name, ((label, value), ...)): value},
    labels sorted, values unescaped; and {family: type} from its TYPE lines."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ")
            types[family] = kind
            continue
        if line.startswith("#") or not line:
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        pairs = []
        for label, escaped in _LABEL.findall(labels or ""):
            value_text = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), escaped)
            pairs.append((label, value_text))
        samples[(name, tuple(sorted(pairs)))] = float(value)
    return samples, types


def named_in_lambda_md(repo):
    """The families docs/lambda.md's Metrics table lists, one a row."""
    with open(os.path.join(repo, "docs/lambda.md")) as f:
        return set(re.findall(r"^\| `((?:thatch|process)_[a-z_]+)`", f.read(), re.M))


def sample(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


class ScrapeTestCase(DaemonTestCase):
    TABLES = CLIENTS

    def get(self, path, method="GET", token=SCRAPE_TOKEN):
        connection = http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=GUARD_SECONDS)
        self.addCleanup(connection.close)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read().decode()

    def scrape(self):
        status, content_type, text = self.get("/metrics")
        self.assertEqual(status, 200, text)
        self.assertEqual(content_type, "text/plain; version=0.0.4; charset=utf-8")
        return text


class MetricsTest(ScrapeTestCase):
    """A scrape after known invocations, checked by the test and by promtool."""

    @classmethod
    def setUpClass(cls):
        cls.started_at = time.time()
        super().setUpClass()
        cls.deploy("hello", "report")
        cls.deploy("oops", "fail")
        for n in range(3):
            boto3_invoke(cls.boto, "hello", {"n": n})
        boto3_invoke(cls.boto, "oops", {"why": "a test"})
        try:
            boto3_invoke(cls.boto, "nobody", {})
        except Exception:  # ResourceNotFoundException, answered before any invocation
            pass

    def test_counts_what_it_served(self):
        samples, types = parse_exposition(self.scrape())
        self.assertEqual(sample(samples, "thatch_invocations_total", function="hello", status="ok"), 3)
        self.assertEqual(sample(samples, "thatch_invocations_total", function="oops", status="handler_error"), 1)
        # The Lambda API answers 404 for "nobody" itself: no invocation
        # (tests/supervisor counts the supervisor's not_found ones).
        self.assertEqual(sample(samples, "thatch_invocations_unknown_function_total"), 0)
        self.assertNotIn(
            "nobody", {dict(labels).get("function") for name, labels in samples if name == "thatch_invocations_total"}
        )
        cold = sample(samples, "thatch_cold_starts_total")
        self.assertGreaterEqual(cold, 2)  # one for each function at least
        self.assertEqual(cold + sample(samples, "thatch_warm_starts_total"), 4)
        self.assertEqual(sample(samples, "thatch_build_info", version="0.1.0"), 1)
        self.assertEqual(sample(samples, "thatch_keep_alive_policy_info", policy="ttl"), 1)
        self.assertEqual(sample(samples, "thatch_queue_depth"), 0)
        self.assertEqual(sample(samples, "thatch_event_queue_depth"), 0)
        self.assertGreaterEqual(sample(samples, "thatch_sandboxes", state="live"), 0)
        self.assertEqual(types["thatch_invocation_duration_seconds"], "histogram")
        self.assertEqual(types["thatch_invocations_total"], "counter")

    def test_histogram_buckets_are_cumulative(self):
        samples, _ = parse_exposition(self.scrape())
        for phase in ("queued", "start", "run"):
            with self.subTest(phase=phase):
                buckets = sorted(
                    (float(dict(labels)["le"]), value)
                    for (name, labels), value in samples.items()
                    if name == "thatch_invocation_duration_seconds_bucket" and dict(labels)["phase"] == phase
                )
                self.assertEqual(len(buckets), 32)
                counts = [value for _, value in buckets]
                self.assertEqual(counts, sorted(counts))
                self.assertEqual(buckets[-1][0], float("inf"))
                count = sample(samples, "thatch_invocation_duration_seconds_count", phase=phase)
                self.assertEqual(buckets[-1][1], count)
                # Every invocation that got a sandbox, warm or cold.
                self.assertEqual(
                    count, sample(samples, "thatch_cold_starts_total") + sample(samples, "thatch_warm_starts_total")
                )
                self.assertGreaterEqual(sample(samples, "thatch_invocation_duration_seconds_sum", phase=phase), 0)
        run_sum = sample(samples, "thatch_invocation_duration_seconds_sum", phase="run")
        self.assertGreater(run_sum, 0)

    def test_process_metrics(self):
        fd_dir = f"/proc/{self.daemon.process.pid}/fd"
        before = len(os.listdir(fd_dir))
        samples, _ = parse_exposition(self.scrape())
        after = len(os.listdir(fd_dir))
        self.assertGreater(sample(samples, "process_resident_memory_bytes"), 1 << 20)
        open_fds = sample(samples, "process_open_fds")
        # The scrape's connection is one more; an idle keep-alive connection
        # of an earlier client may close meanwhile.
        self.assertGreaterEqual(open_fds, min(before, after) - 1)
        self.assertLessEqual(open_fds, max(before, after) + 1)
        self.assertGreater(sample(samples, "process_max_fds"), open_fds)
        # In clock ticks: a tick of rounding either way.
        start = sample(samples, "process_start_time_seconds")
        self.assertGreaterEqual(start, self.started_at - 1)
        self.assertLessEqual(start, time.time() + 1)
        self.assertGreater(sample(samples, "process_cpu_seconds_total"), 0)

    def test_promtool_finds_nothing_to_say(self):
        checked = subprocess.run(
            [PROMTOOL, "check", "metrics"], input=self.scrape().encode(), capture_output=True, timeout=GUARD_SECONDS
        )
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
        self.assertEqual(checked.stdout + checked.stderr, b"")

    def test_the_docs_name_families_it_serves(self):
        _, types = parse_exposition(self.scrape())
        served = set(types)
        for family, kind in types.items():
            if kind == "histogram":
                served.update(family + suffix for suffix in ("_bucket", "_sum", "_count"))
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        for path in ("docs/lambda.md", "docs/operations.md", "examples/deploy/thatch-alerts.yml"):
            with self.subTest(path=path), open(os.path.join(repo, path)) as f:
                named = set(re.findall(r"\b((?:thatch|process)_[a-z_]*[a-z])\b", f.read()))
                self.assertTrue(named)
                self.assertEqual(named - served, set())
        self.assertEqual(set(types) - named_in_lambda_md(repo), set())

    def test_healthz_while_serving(self):
        self.assertEqual(self.get("/healthz"), (200, "text/plain; charset=utf-8", "ok\n"))

    def test_other_methods_refused(self):
        for path in ("/metrics", "/healthz"):
            with self.subTest(path=path):
                status, _, _ = self.get(path, method="POST")
                self.assertEqual(status, 405)

    def test_query_string_ignored(self):
        status, _, text = self.get("/healthz?verbose=1")
        self.assertEqual((status, text), (200, "ok\n"))


class RemovedFunctionTest(ScrapeTestCase):
    """A function's series go when it is removed; the others stay."""

    def test_removed_function_series_go(self):
        self.deploy("brief", "report")
        self.deploy("stays", "report")
        boto3_invoke(self.boto, "brief", {})
        boto3_invoke(self.boto, "stays", {})
        samples, _ = parse_exposition(self.scrape())
        self.assertEqual(sample(samples, "thatch_invocations_total", function="brief", status="ok"), 1)
        self.boto.delete_function(FunctionName="brief")
        samples, _ = parse_exposition(self.scrape())
        self.assertIsNone(sample(samples, "thatch_invocations_total", function="brief", status="ok"))
        self.assertEqual(sample(samples, "thatch_invocations_total", function="stays", status="ok"), 1)


class WhoMayScrapeTest(ScrapeTestCase):
    """/metrics names every function: only a client allowed "metrics" (or
    "admin") reads it; /healthz names nothing and needs no token."""

    def test_metrics_needs_a_scraping_token(self):
        self.deploy("secret-name", "report")
        boto3_invoke(self.boto, "secret-name", {})
        status, _, text = self.get("/metrics")
        self.assertEqual(status, 200)
        self.assertIn('function="secret-name"', text)
        for token in (None, INVOKE_TOKEN, "not-a-token-at-all", SCRAPE_TOKEN + "x"):
            status, _, text = self.get("/metrics", token=token)
            self.assertEqual(status, 403, token)
            self.assertNotIn("secret-name", text)

    def test_healthz_needs_none(self):
        self.assertEqual(self.get("/healthz", token=None)[0], 200)


class HealthzWhileDrainingTest(DaemonTestCase):
    """/healthz answers 503 once thatchd drains: asked on a connection opened
    before SIGTERM (the listener stops accepting), while a held invocation
    keeps the drain going."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.deploy("held", "hold", Timeout=900)  # a guard: the test releases it

    def test_draining_is_unhealthy(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=GUARD_SECONDS)
        self.addCleanup(connection.close)
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        self.assertEqual((response.status, response.read()), (200, b"ok\n"))

        fifo_path = f"/tmp/hold-{uuid.uuid4().hex}"
        client = self.client(FULL_KEY)
        thread = threading.Thread(target=lambda: self._invoke_held(client, fifo_path), daemon=True)
        thread.start()
        fifo = wait_until(lambda: held_fifo(self.daemon, fifo_path), "the held invocation running", self.daemon.log)
        self.addCleanup(lambda: thread.is_alive() and release(fifo))

        logged = self.daemon.log_size()
        self.daemon.process.send_signal(signal.SIGTERM)
        wait_until(lambda: "draining" in self.daemon.log()[logged:], "thatchd draining", self.daemon.log)
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        self.assertEqual(response.status, 503)
        self.assertEqual(response.read(), b"draining: thatchd is shutting down\n")

        release(fifo)
        thread.join(GUARD_SECONDS)
        self.assertFalse(thread.is_alive())
        self.assertEqual(self.daemon.process.wait(GUARD_SECONDS), 0)
        self.daemon.process = None

    @staticmethod
    def _invoke_held(client, fifo_path):
        try:
            boto3_invoke(client, "held", {"fifo": fifo_path})
        except Exception:  # the connection may close as thatchd stops: the test asserts the drain
            pass


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrometheusScrapeTest(DaemonTestCase):
    """A real Prometheus server on loopback scrapes thatchd every second, with
    a scraping client's token; what it stored is what thatchd counted."""

    TABLES = CLIENTS

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.deploy("hello", "report")
        for n in range(3):
            boto3_invoke(cls.boto, "hello", {"n": n})
        cls.prometheus_dir = tempfile.mkdtemp(prefix="thatch-prometheus-test-")
        cls.addClassCleanup(shutil.rmtree, cls.prometheus_dir, ignore_errors=True)
        config = os.path.join(cls.prometheus_dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                "scrape_configs:\n  - job_name: thatchd\n"
                f"    authorization:\n      credentials: {SCRAPE_TOKEN}\n"
                f"    static_configs:\n      - targets: ['127.0.0.1:{cls.daemon.port}']\n"
            )
        cls.prometheus_port = free_port()
        cls.prometheus_log = open(os.path.join(cls.prometheus_dir, "prometheus.log"), "w")
        cls.addClassCleanup(cls.prometheus_log.close)
        cls.prometheus = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={os.path.join(cls.prometheus_dir, 'data')}",
                f"--web.listen-address=127.0.0.1:{cls.prometheus_port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=cls.prometheus_log,
            stderr=cls.prometheus_log,
            cwd=cls.prometheus_dir,
        )
        cls.addClassCleanup(cls.stop_prometheus)

    @classmethod
    def stop_prometheus(cls):
        cls.prometheus.kill()
        cls.prometheus.wait()

    def prometheus_output(self):
        with open(os.path.join(self.prometheus_dir, "prometheus.log"), errors="replace") as f:
            return f.read()

    def query(self, expression):
        """The value of an instant query's one series, None while there is none
        (or while Prometheus does not answer yet)."""
        url = f"http://127.0.0.1:{self.prometheus_port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expression}
        )
        if self.prometheus.poll() is not None:
            raise AssertionError(f"prometheus exited ({self.prometheus.returncode}):\n{self.prometheus_output()}")
        try:
            with urllib.request.urlopen(url, timeout=GUARD_SECONDS) as response:
                answer = json.load(response)
        except (OSError, http.client.HTTPException):
            return None
        result = answer["data"]["result"]
        if not result:
            return None
        self.assertEqual(len(result), 1, result)
        return float(result[0]["value"][1])

    def test_prometheus_scrapes_what_thatchd_counted(self):
        up = wait_until(
            lambda: self.query('up{job="thatchd"} == 1'), "Prometheus scraping thatchd", self.prometheus_output
        )
        self.assertEqual(up, 1)
        counted = {}
        scrape = urllib.request.Request(
            self.daemon.endpoint + "/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"}
        )
        with urllib.request.urlopen(scrape, timeout=GUARD_SECONDS) as response:
            samples, _ = parse_exposition(response.read().decode())
        counted["cold"] = sample(samples, "thatch_cold_starts_total")
        self.assertEqual(
            wait_until(
                lambda: self.query('thatch_invocations_total{function="hello",status="ok"}'),
                "the invocations in Prometheus",
                self.prometheus_output,
            ),
            3,
        )
        self.assertEqual(self.query("thatch_cold_starts_total"), counted["cold"])
        self.assertEqual(self.query('thatch_invocation_duration_seconds_count{phase="run"}'), 3)


if __name__ == "__main__":
    unittest.main()
