"""thatchd's Lambda HTTP API (docs/lambda.md) end to end, with Debian's real
clients unmodified: /usr/bin/aws (subprocess) and boto3. Each class runs a
thatchd of its own (thatchd_process.TestDaemon); each test asserts what the
clients observed: status codes, error codes, payloads, and what the
handlers saw inside their sandboxes.

Run from the repository root (as root, with build/bin built):
    /usr/bin/python3 -m unittest tests/lambda/test_lambda_clients.py
"""

import base64
import errno
import json
import os
import shutil
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.error
import urllib.request
import uuid

import botocore
from botocore.exceptions import ClientError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lambda_clients import (  # noqa: E402
    ROLE,
    Cli,
    CliError,
    boto3_client,
    error_code,
    function_zip,
    http_status,
)
from thatchd_process import (  # noqa: E402
    THATCHD,
    FULL_KEY,
    GUARD_SECONDS,
    GUARDED_KEY,
    INVOKE_KEY,
    READ_KEY,
    AccessKey,
    TestDaemon,
    wait_until,
)

ACCOUNT = "000000000000"


class DaemonTestCase(unittest.TestCase):
    """One thatchd for the class, configured by TABLES, LAMBDA_KEYS and REGION,
    with an aws CLI and a boto3 client signing with the full key."""

    TABLES = ""
    LAMBDA_KEYS = ""
    REGION = "eu-central-1"

    @classmethod
    def setUpClass(cls):
        cls.scratch = tempfile.mkdtemp(prefix="lambda-clients-test-")
        cls.addClassCleanup(shutil.rmtree, cls.scratch, ignore_errors=True)
        cls.daemon = TestDaemon(cls.TABLES, cls.LAMBDA_KEYS, cls.REGION)
        cls.addClassCleanup(cls.daemon.close)
        cls.cli = Cli(cls.daemon, FULL_KEY, cls.scratch)
        cls.boto = boto3_client(cls.daemon, FULL_KEY)
        cls.addClassCleanup(cls.boto.close)
        cls.cli_calls = {}
        cls.addClassCleanup(lambda: [call.close() for call in cls.cli_calls.values()])

    @classmethod
    def start_cli_calls(cls, **calls):
        """The aws CLI takes about a second of CPU to start, most of this
        suite's time on a busy machine: a class starts its tests' independent
        CLI calls side by side in setUpClass, and each test reads its own
        with cli_result()."""
        cls.cli_calls.update(calls)

    def cli_result(self, name):
        return self.cli_calls[name].result()

    @classmethod
    def deploy(cls, name, handler, extra_files=None, **fields):
        """Creates `name` from handlers/<handler>.py with boto3."""
        return cls.boto.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Handler=handler + ".handler",
            Role=ROLE,
            Code={"ZipFile": function_zip(handler, extra_files)},
            **fields,
        )

    def client(self, key, **config):
        """Another boto3 client, for this test."""
        client = boto3_client(self.daemon, key, **config)
        self.addCleanup(client.close)
        return client

    @classmethod
    def scratch_file(cls, name, data=None):
        """A file in the class's scratch directory, holding `data` if given."""
        path = os.path.join(cls.scratch, name)
        if data is not None:
            with open(path, "wb") as f:
                f.write(data)
        return path

    def arn(self, name):
        return f"arn:aws:lambda:{self.REGION}:{ACCOUNT}:function:{name}"


def boto3_invoke(client, name, payload, **kwargs):
    """client.invoke: (its response, the payload it read)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    response = client.invoke(FunctionName=name, Payload=body, **kwargs)
    return response, response["Payload"].read()


# --- the hold handler's FIFO ---------------------------------------------------


def held_fifo(daemon, path):
    """The FIFO that handlers/hold.py made at `path` in one of `daemon`'s
    sandboxes, through /proc/PID/root (the sandbox's own root; the test runs
    as root); None while no running handler has made it."""
    for pid in daemon.sandbox_pids():
        candidate = f"/proc/{pid}/root{path}"
        try:
            if stat.S_ISFIFO(os.stat(candidate).st_mode):
                return candidate
        except OSError:
            pass  # not this sandbox's, or it has just exited
    return None


def release(fifo):
    """Lets the hold handler blocked on `fifo` return."""

    def opened():
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno == errno.ENXIO:  # made, and the handler not yet reading it
                return None
            raise

    fd = wait_until(opened, "the hold handler reading its FIFO")
    try:
        os.write(fd, b"go")
    finally:
        os.close(fd)


# --- the functions' life cycle ---------------------------------------------------


class FunctionLifecycleTest(DaemonTestCase):
    """CreateFunction, GetFunction(Configuration), UpdateFunctionCode,
    UpdateFunctionConfiguration, PublishVersion, ListVersionsByFunction, Invoke
    of an old version, DeleteFunction, through each client."""

    # The clients send non-ASCII characters as \u escapes (a surrogate pair
    # for 😀), which thatchd's JSON decoder once read wrong ("å" as "E").
    ENVIRONMENT = {"GREETING": "hej då 😀", "QUOTED": 'say "hi" \\ a=b'}

    def check_created(self, created, name):
        self.assertEqual(created["FunctionName"], name)
        self.assertEqual(created["FunctionArn"], self.arn(name))
        self.assertEqual(created["Version"], "$LATEST")
        self.assertEqual(created["Runtime"], "python3.11")
        self.assertEqual(created["Handler"], "report.handler")
        self.assertEqual(created["State"], "Active")

    def check_latest_saw_update(self, answer):
        seen = json.loads(answer)
        self.assertEqual(seen["answer"], "second")
        self.assertEqual({key: seen["environ"].get(key) for key in self.ENVIRONMENT}, self.ENVIRONMENT)
        self.assertEqual(int(seen["memory_limit_in_mb"]), 256)
        self.assertEqual(seen["lambda_variables"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256")
        # Its deadline is 7 s away, farther than the 3 s it had before.
        self.assertGreater(seen["remaining_ms"], 3000)
        self.assertLessEqual(seen["remaining_ms"], 7000)

    def check_first_version(self, answer):
        seen = json.loads(answer)
        self.assertEqual(seen["answer"], "first")
        self.assertNotIn("GREETING", seen["environ"])
        self.assertEqual(int(seen["memory_limit_in_mb"]), 128)
        self.assertLessEqual(seen["remaining_ms"], 3000)

    def test_aws_cli(self):
        # Calls that do not depend on each other run side by side (see start_cli_calls).
        name = "cli-lifecycle"
        first = self.scratch_file("first.zip", function_zip("report", {"answer.txt": "first"}))
        second = self.scratch_file("second.zip", function_zip("report", {"answer.txt": "second"}))
        created = self.cli(
            "create-function",
            "--function-name", name,
            "--runtime", "python3.11",
            "--handler", "report.handler",
            "--role", ROLE,
            "--zip-file", "fileb://" + first,
        )  # fmt: skip
        self.check_created(created, name)

        fetched = self.cli.start("get-function", "--function-name", name)
        configuration = self.cli.start("get-function-configuration", "--function-name", name)
        fetched, configuration = fetched.result(), configuration.result()
        self.assertEqual(fetched["Configuration"]["FunctionArn"], self.arn(name))
        self.assertEqual(fetched["Code"]["RepositoryType"], "thatch")
        self.assertEqual((configuration["Timeout"], configuration["MemorySize"]), (3, 128))

        self.cli("update-function-code", "--function-name", name, "--zip-file", "fileb://" + second)
        updated = self.cli(
            "update-function-configuration",
            "--function-name", name,
            "--environment", json.dumps({"Variables": self.ENVIRONMENT}),
            "--timeout", "7",
            "--memory-size", "256",
        )  # fmt: skip
        self.assertEqual(updated["Environment"]["Variables"], self.ENVIRONMENT)
        self.assertEqual((updated["Timeout"], updated["MemorySize"]), (7, 256))

        latest = self.cli.start_invoke(name, {}, self.scratch_file("latest.json"))
        published = self.cli.start("publish-version", "--function-name", name)
        (output, answer), published = latest.result(), published.result()
        self.assertEqual(output["ExecutedVersion"], "$LATEST")
        self.check_latest_saw_update(answer)
        # Every deploy is a version (create 1, code 2, configuration 3):
        # publishing names the latest.
        self.assertEqual(published["Version"], "3")
        self.assertEqual(published["FunctionArn"], self.arn(name) + ":3")

        versions = self.cli.start("list-versions-by-function", "--function-name", name)
        first_version = self.cli.start_invoke(name, {}, self.scratch_file("first.json"), "--qualifier", "1")
        versions, (output, answer) = versions.result(), first_version.result()
        self.assertEqual([v["Version"] for v in versions["Versions"]], ["$LATEST", "1", "2", "3"])
        self.assertEqual(output["StatusCode"], 200)
        self.assertEqual(output["ExecutedVersion"], "1")
        self.check_first_version(answer)

        self.assertIsNone(self.cli("delete-function", "--function-name", name))
        with self.assertRaises(CliError) as gone:
            self.cli("get-function", "--function-name", name)
        self.assertEqual(gone.exception.code, "ResourceNotFoundException")

    def test_boto3(self):
        name = "boto3-lifecycle"
        created = self.boto.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Handler="report.handler",
            Role=ROLE,
            Code={"ZipFile": function_zip("report", {"answer.txt": "first"})},
        )
        self.assertEqual(http_status(created), 201)
        self.check_created(created, name)

        fetched = self.boto.get_function(FunctionName=name)
        self.assertEqual(fetched["Configuration"]["FunctionArn"], self.arn(name))
        self.assertEqual(fetched["Code"]["RepositoryType"], "thatch")
        configuration = self.boto.get_function_configuration(FunctionName=name)
        self.assertEqual((configuration["Timeout"], configuration["MemorySize"]), (3, 128))

        second = function_zip("report", {"answer.txt": "second"})
        self.boto.update_function_code(FunctionName=name, ZipFile=second)
        updated = self.boto.update_function_configuration(
            FunctionName=name, Environment={"Variables": self.ENVIRONMENT}, Timeout=7, MemorySize=256
        )
        self.assertEqual(updated["Environment"]["Variables"], self.ENVIRONMENT)
        self.assertEqual((updated["Timeout"], updated["MemorySize"]), (7, 256))
        response, answer = boto3_invoke(self.boto, name, {})
        self.assertEqual(response["ExecutedVersion"], "$LATEST")
        self.check_latest_saw_update(answer)

        published = self.boto.publish_version(FunctionName=name)
        self.assertEqual(http_status(published), 201)
        self.assertEqual(published["Version"], "3")
        versions = self.boto.list_versions_by_function(FunctionName=name)
        self.assertEqual([v["Version"] for v in versions["Versions"]], ["$LATEST", "1", "2", "3"])

        response, answer = boto3_invoke(self.boto, name, {}, Qualifier="1")
        self.assertEqual(response["StatusCode"], 200)
        self.assertEqual(response["ExecutedVersion"], "1")
        self.check_first_version(answer)

        self.assertEqual(http_status(self.boto.delete_function(FunctionName=name)), 204)
        with self.assertRaises(ClientError) as gone:
            self.boto.get_function(FunctionName=name)
        self.assertEqual(error_code(gone.exception), "ResourceNotFoundException")
        self.assertEqual(http_status(gone.exception), 404)


class ListFunctionsTest(DaemonTestCase):
    """ListFunctions a page of one at a time over exactly three functions."""

    NAMES = ["page-1", "page-2", "page-3"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for name in cls.NAMES:
            cls.deploy(name, "hold")
        # Its own pagination follows NextMarker through pages of one.
        cls.start_cli_calls(paginated=cls.cli.start("list-functions", "--page-size", "1"))

    def test_aws_cli(self):
        # --no-paginate: the CLI sends MaxItems and Marker as given and shows NextMarker.
        pages, marker = [], None
        while True:
            marker_args = ["--marker", marker] if marker else []
            page = self.cli("list-functions", "--no-paginate", "--max-items", "1", *marker_args)
            pages.append([f["FunctionName"] for f in page["Functions"]])
            marker = page.get("NextMarker")
            if marker is None or len(pages) > len(self.NAMES):
                break
        self.assertEqual(pages, [[name] for name in self.NAMES])
        listed = self.cli_result("paginated")
        self.assertEqual([f["FunctionName"] for f in listed["Functions"]], self.NAMES)
        self.assertNotIn("NextToken", listed)

    def test_boto3(self):
        pages, markers = [], []
        page = self.boto.list_functions(MaxItems=1)
        while True:
            pages.append([f["FunctionName"] for f in page["Functions"]])
            markers.append(page.get("NextMarker"))
            if "NextMarker" not in page or len(pages) > len(self.NAMES):
                break
            page = self.boto.list_functions(MaxItems=1, Marker=page["NextMarker"])
        self.assertEqual(pages, [[name] for name in self.NAMES])
        self.assertEqual(markers[-1], None)

        paginator = self.boto.get_paginator("list_functions")
        pages = paginator.paginate(PaginationConfig={"PageSize": 1})
        pages = [[f["FunctionName"] for f in page["Functions"]] for page in pages]
        self.assertEqual(pages, [[name] for name in self.NAMES])
        first_two = paginator.paginate(PaginationConfig={"PageSize": 1, "MaxItems": 2}).build_full_result()
        self.assertEqual([f["FunctionName"] for f in first_two["Functions"]], self.NAMES[:2])
        rest = paginator.paginate(PaginationConfig={"PageSize": 1, "StartingToken": first_two["NextToken"]})
        self.assertEqual([f["FunctionName"] for f in rest.build_full_result()["Functions"]], self.NAMES[2:])


# --- invocations -------------------------------------------------------------------


class InvokeTest(DaemonTestCase):
    """Invoke's outcomes as each client reads them."""

    TABLES = '[limits]\npayload = "64KiB"\n'
    EVENT = {"greeting": "hello", "n": [1, 2]}
    PRINTED = "report handler saw {'greeting': 'hello', 'n': [1, 2]}"
    # {"pad":"xxx…"}: exactly [limits] payload bytes, then one more.
    PAD_LENGTH = (64 << 10) - len(b'{"pad":""}')
    AT_LIMIT = b'{"pad":"' + b"x" * PAD_LENGTH + b'"}'
    OVER_LIMIT = b'{"pad":"' + b"x" * (PAD_LENGTH + 1) + b'"}'

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.deploy("reporter", "report")
        cls.deploy("failing", "fail")
        cls.deploy("sleeper", "sleep", Timeout=1)
        cls.deploy("measurer", "size")
        invoke, out = cls.cli.start_invoke, cls.scratch_file
        cls.start_cli_calls(
            result=invoke("reporter", cls.EVENT, out("result.json"), "--log-type", "Tail"),
            error=invoke("failing", {"why": "a reason"}, out("error.json"), "--log-type", "Tail"),
            timeout=invoke("sleeper", {"seconds": 60}, out("timeout.json")),
            dry_run=invoke("reporter", {}, out("dry-run.json"), "--invocation-type", "DryRun"),
            unknown=invoke("no-such-function", {}, out("unknown.json")),
            at_limit=invoke("measurer", cls.AT_LIMIT, out("at-limit.json")),
            over_limit=invoke("measurer", cls.OVER_LIMIT, out("over-limit.json")),
        )

    def check_tail(self, log_result, *lines):
        logs = base64.b64decode(log_result).decode()
        for line in lines:
            self.assertIn(line, logs)

    def test_request_response_with_tail_logs(self):
        with self.subTest(client="aws"):
            output, answer = self.cli_result("result")
            self.assertEqual(output["StatusCode"], 200)
            self.assertEqual(output["ExecutedVersion"], "$LATEST")
            self.assertNotIn("FunctionError", output)
            self.assertEqual(json.loads(answer)["event"], self.EVENT)
            self.check_tail(output["LogResult"], self.PRINTED)
        with self.subTest(client="boto3"):
            response, answer = boto3_invoke(self.boto, "reporter", self.EVENT, LogType="Tail")
            self.assertEqual(response["StatusCode"], 200)
            self.assertEqual(response["ExecutedVersion"], "$LATEST")
            self.assertNotIn("FunctionError", response)
            self.assertEqual(json.loads(answer)["event"], self.EVENT)
            self.check_tail(response["LogResult"], self.PRINTED)

    def check_error_document(self, answer):
        document = json.loads(answer)
        self.assertEqual(document["errorType"], "ValueError")
        self.assertEqual(document["errorMessage"], "no good: a reason")
        self.assertIsInstance(document["requestId"], str)
        # Lambda's stackTrace: one string per frame, innermost last.
        trace = document["stackTrace"]
        self.assertTrue(all(isinstance(frame, str) for frame in trace), trace)
        self.assertIn('fail.py", line', trace[-2])
        self.assertIn("in handler\n    check(event)", trace[-2])
        self.assertIn("in check\n    raise ValueError", trace[-1])

    def test_handler_error(self):
        with self.subTest(client="aws"):
            output, answer = self.cli_result("error")
            self.assertEqual(output["StatusCode"], 200)
            self.assertEqual(output["FunctionError"], "Unhandled")
            self.check_error_document(answer)
            self.check_tail(output["LogResult"], "about to fail")
        with self.subTest(client="boto3"):
            response, answer = boto3_invoke(self.boto, "failing", {"why": "a reason"})
            self.assertEqual(response["StatusCode"], 200)
            self.assertEqual(response["FunctionError"], "Unhandled")
            self.check_error_document(answer)

    def check_timeout_document(self, answer):
        document = json.loads(answer)
        self.assertEqual(document["errorType"], "Sandbox.Timedout")
        self.assertIn("Task timed out after 1.00 seconds", document["errorMessage"])

    def test_timeout(self):
        # The function's Timeout is 1 s; its handler sleeps for a minute.
        with self.subTest(client="aws"):
            output, answer = self.cli_result("timeout")
            self.assertEqual(output["StatusCode"], 200)
            self.assertEqual(output["FunctionError"], "Unhandled")
            self.check_timeout_document(answer)
        with self.subTest(client="boto3"):
            response, answer = boto3_invoke(self.boto, "sleeper", {"seconds": 60})
            self.assertEqual(response["StatusCode"], 200)
            self.assertEqual(response["FunctionError"], "Unhandled")
            self.check_timeout_document(answer)

    def test_dry_run(self):
        with self.subTest(client="aws"):
            output, answer = self.cli_result("dry_run")
            self.assertEqual(output, {"StatusCode": 204})
            self.assertEqual(answer, b"")
        with self.subTest(client="boto3"):
            response, answer = boto3_invoke(self.boto, "reporter", {}, InvocationType="DryRun")
            self.assertEqual(response["StatusCode"], 204)
            self.assertEqual(answer, b"")

    def test_unknown_function(self):
        with self.subTest(client="aws"):
            with self.assertRaises(CliError) as refused:
                self.cli_result("unknown")
            self.assertEqual(refused.exception.code, "ResourceNotFoundException")
        with self.subTest(client="boto3"):
            with self.assertRaises(ClientError) as refused:
                boto3_invoke(self.boto, "no-such-function", {})
            self.assertEqual(error_code(refused.exception), "ResourceNotFoundException")
            self.assertEqual(http_status(refused.exception), 404)
            self.assertIn(self.arn("no-such-function"), refused.exception.response["Error"]["Message"])

    def test_payload_at_the_limit_and_one_byte_over(self):
        self.assertEqual((len(self.AT_LIMIT), len(self.OVER_LIMIT)), (64 << 10, (64 << 10) + 1))
        with self.subTest(client="aws"):
            output, answer = self.cli_result("at_limit")
            self.assertEqual(output["StatusCode"], 200)
            self.assertEqual(json.loads(answer), {"pad_length": self.PAD_LENGTH})
            with self.assertRaises(CliError) as refused:
                self.cli_result("over_limit")
            self.assertEqual(refused.exception.code, "RequestTooLargeException")
        with self.subTest(client="boto3"):
            response, answer = boto3_invoke(self.boto, "measurer", self.AT_LIMIT)
            self.assertEqual(response["StatusCode"], 200)
            self.assertEqual(json.loads(answer), {"pad_length": self.PAD_LENGTH})
            with self.assertRaises(ClientError) as refused:
                boto3_invoke(self.boto, "measurer", self.OVER_LIMIT)
            self.assertEqual(error_code(refused.exception), "RequestTooLargeException")
            self.assertEqual(http_status(refused.exception), 413)


class ThrottleTest(DaemonTestCase):
    """An invocation past the function's concurrency with no queue: 429."""

    TABLES = "[pool]\nconcurrency = 1\nqueue_length = 0\n"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.deploy("held", "hold", Timeout=900)  # a guard: the test releases it

    def test_invocation_past_concurrency_is_too_many_requests(self):
        # The first invocation holds the function's one slot: handlers/hold.py
        # makes a FIFO in its sandbox's /tmp and blocks until the test opens
        # it. The FIFO's existence (seen through /proc/PID/root) tells the
        # test that the handler is running, however slow the machine; the
        # slot stays taken until the test releases it, whatever the others take.
        fifo_path = f"/tmp/hold-{uuid.uuid4().hex}"
        first = {}
        first_client = self.client(FULL_KEY)

        def invoke_first():
            try:
                first["response"], first["answer"] = boto3_invoke(first_client, "held", {"fifo": fifo_path})
            except Exception as e:  # reported by the assertions below
                first["error"] = e

        thread = threading.Thread(target=invoke_first, daemon=True)
        thread.start()
        fifo = wait_until(
            lambda: held_fifo(self.daemon, fifo_path), "the first invocation running", self.daemon.log
        )
        # Released whatever happens below, so that the thread and the class's thatchd end.
        self.addCleanup(lambda: thread.is_alive() and release(fifo))

        with self.subTest(client="aws"):
            with self.assertRaises(CliError) as throttled:
                self.cli.invoke("held", {}, self.scratch_file("throttled.json"))
            self.assertEqual(throttled.exception.code, "TooManyRequestsException")
        with self.subTest(client="boto3"):
            with self.assertRaises(ClientError) as throttled:
                boto3_invoke(self.boto, "held", {})
            self.assertEqual(error_code(throttled.exception), "TooManyRequestsException")
            self.assertEqual(http_status(throttled.exception), 429)
            self.assertEqual(
                throttled.exception.response["Reason"], "ReservedFunctionConcurrentInvocationLimitExceeded"
            )

        release(fifo)
        thread.join(GUARD_SECONDS)
        self.assertFalse(thread.is_alive())
        self.assertNotIn("error", first)
        self.assertEqual(first["response"]["StatusCode"], 200)
        self.assertEqual(json.loads(first["answer"])["released"], "go")
        # The slot is free again.
        response, answer = boto3_invoke(self.boto, "held", {"n": 2})
        self.assertEqual(json.loads(answer), {"released": None, "event": {"n": 2}})


class EventsSurviveKillTest(DaemonTestCase):
    """Event invocations accepted (202) and not yet run when thatchd is killed
    with SIGKILL all run after a restart on the same state."""

    # One event runs at a time: while the first one accepted (the holder's)
    # waits in its handler for the test, the others wait in the queue,
    # provably not run.
    LAMBDA_KEYS = "event_concurrency = 1\n"

    def test_events_accepted_before_kill9_run_after_restart(self):
        daemon = self.daemon
        for name in ("holder", "counted-a", "counted-b"):
            self.deploy(name, "hold", Timeout=900)  # a guard: the test releases the holder
        fifo_path = f"/tmp/hold-{uuid.uuid4().hex}"
        response, _ = boto3_invoke(self.boto, "holder", {"fifo": fifo_path}, InvocationType="Event")
        self.assertEqual(response["StatusCode"], 202)
        wait_until(lambda: held_fifo(daemon, fifo_path), "the holder's event running", daemon.log)

        output, answer = self.cli.invoke(
            "counted-a", {"n": 1}, self.scratch_file("event.json"), "--invocation-type", "Event"
        )
        self.assertEqual((output, answer), ({"StatusCode": 202}, b""))
        for name, n in (("counted-a", 2), ("counted-b", 3)):
            response, answer = boto3_invoke(self.boto, name, {"n": n}, InvocationType="Event")
            self.assertEqual((response["StatusCode"], answer), (202, b""))

        events_dir = os.path.join(daemon.state_dir, "events")

        def event_files():
            return sorted(name for name in os.listdir(events_dir) if name.endswith(".event"))

        # Accepted: on disk, the holder's (running) and the three waiting.
        self.assertEqual(len(event_files()), 4)
        # Not run: no sandbox but the holder's was ever started, no invocation ended.
        self.assertEqual(len(daemon.sandbox_cgroups()), 1)
        self.assertEqual(daemon.invocations("counted-a") + daemon.invocations("counted-b"), [])

        daemon.kill9()
        self.assertEqual(len(event_files()), 4)
        restarted_at = daemon.log_size()
        daemon.start()  # on another port: the class's clients are done
        # At least once: the holder's event, running when thatchd died, runs
        # again first (oldest first) and waits again for the test.
        fifo = wait_until(lambda: held_fifo(daemon, fifo_path), "the holder's event running again", daemon.log)
        release(fifo)

        expected = {"holder": ["ok"], "counted-a": ["ok", "ok"], "counted-b": ["ok"]}

        def all_done():
            ran = {name: daemon.invocations(name, restarted_at) for name in expected}
            enough = all(len(ran[name]) >= len(statuses) for name, statuses in expected.items())
            return enough and not event_files()

        wait_until(all_done, "every event run and removed", daemon.log)
        self.assertEqual({name: daemon.invocations(name, restarted_at) for name in expected}, expected)


# --- authentication ------------------------------------------------------------------


class AuthenticationTest(DaemonTestCase):
    """Requests signed wrong, by an unknown key, by a key without the
    permission, or not at all: 403 with Lambda's error codes."""

    WRONG_SECRET = AccessKey(FULL_KEY.id, "not the secret of this key", ())
    UNKNOWN_KEY = AccessKey("AKIDNOBODYHASTHIS", "a secret of nobody's key", ())

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.deploy("guarded", "hold")
        cls.deploy("other", "hold")

        def cli(key):
            return Cli(cls.daemon, key, cls.scratch)

        def invoke(key, name):
            return cli(key).start_invoke("guarded", {}, cls.scratch_file(name + ".json"))

        cls.start_cli_calls(
            wrong_secret=invoke(cls.WRONG_SECRET, "wrong-secret"),
            unknown_key=invoke(cls.UNKNOWN_KEY, "unknown-key"),
            read_only_invoke=invoke(READ_KEY, "read-only"),
            read_only_get=cli(READ_KEY).start("get-function", "--function-name", "guarded"),
            unsigned=cls.cli.start("get-function", "--function-name", "guarded", sign=False),
        )

    def check_refused(self, cli_call, key, code):
        with self.subTest(client="aws"):
            with self.assertRaises(CliError) as refused:
                self.cli_result(cli_call)
            self.assertEqual(refused.exception.code, code)
        with self.subTest(client="boto3"):
            with self.assertRaises(ClientError) as refused:
                boto3_invoke(self.client(key), "guarded", {})
            self.assertEqual(error_code(refused.exception), code)
            self.assertEqual(http_status(refused.exception), 403)

    def test_wrong_secret_is_invalid_signature(self):
        self.check_refused("wrong_secret", self.WRONG_SECRET, "InvalidSignatureException")

    def test_unknown_key_is_unrecognized_client(self):
        self.check_refused("unknown_key", self.UNKNOWN_KEY, "UnrecognizedClientException")

    def test_key_without_permission_is_access_denied(self):
        # The read-only key reads, and may not invoke.
        self.assertEqual(self.cli_result("read_only_get")["Configuration"]["FunctionName"], "guarded")
        fetched = self.client(READ_KEY).get_function(FunctionName="guarded")
        self.assertEqual(fetched["Configuration"]["FunctionName"], "guarded")
        self.check_refused("read_only_invoke", READ_KEY, "AccessDeniedException")
        # The invoke-only key invokes, and may not change the function.
        invoker = self.client(INVOKE_KEY)
        self.assertEqual(boto3_invoke(invoker, "guarded", {"n": 1})[0]["StatusCode"], 200)
        with self.assertRaises(ClientError) as refused:
            invoker.update_function_configuration(FunctionName="guarded", Timeout=5)
        self.assertEqual(error_code(refused.exception), "AccessDeniedException")
        self.assertEqual(http_status(refused.exception), 403)

    def test_key_for_one_function_sees_no_other(self):
        # invoke:guarded: the other function answers as one that does not exist.
        client = self.client(GUARDED_KEY)
        self.assertEqual(boto3_invoke(client, "guarded", {"n": 1})[0]["StatusCode"], 200)
        self.assertEqual([f["FunctionName"] for f in client.list_functions()["Functions"]], ["guarded"])
        answers = {}
        for name in ("other", "absent"):
            with self.assertRaises(ClientError) as refused:
                boto3_invoke(client, name, {})
            answers[name] = (
                error_code(refused.exception),
                http_status(refused.exception),
                refused.exception.response["Error"]["Message"].replace(name, "NAME"),
            )
            with self.assertRaises(ClientError) as refused:
                client.get_function(FunctionName=name)
            answers[name] += (error_code(refused.exception),)
        self.assertEqual(answers["other"], answers["absent"])
        self.assertEqual(answers["other"][:2], ("ResourceNotFoundException", 404))
        with self.assertRaises(ClientError) as refused:
            client.update_function_configuration(FunctionName="guarded", Timeout=5)
        self.assertEqual(error_code(refused.exception), "AccessDeniedException")
        # The old words still work: FULL_KEY's "invoke", "read", "write".
        names = {f["FunctionName"] for f in self.client(FULL_KEY).list_functions()["Functions"]}
        self.assertEqual(names, {"guarded", "other"})

    def test_unsigned_request_is_missing_authentication_token(self):
        with self.subTest(client="urllib"):
            request = urllib.request.Request(
                self.daemon.endpoint + "/2015-03-31/functions/guarded/invocations", data=b"{}", method="POST"
            )
            with self.assertRaises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=GUARD_SECONDS)
            with refused.exception as response:
                self.assertEqual(response.code, 403)
                self.assertEqual(response.headers["x-amzn-ErrorType"], "MissingAuthenticationTokenException")
                self.assertEqual(json.loads(response.read())["message"], "Missing Authentication Token")
        with self.subTest(client="aws --no-sign-request"):
            with self.assertRaises(CliError) as refused:
                self.cli_result("unsigned")
            self.assertEqual(refused.exception.code, "MissingAuthenticationTokenException")
        with self.subTest(client="boto3 UNSIGNED"):
            unsigned = self.client(FULL_KEY, signature_version=botocore.UNSIGNED)
            with self.assertRaises(ClientError) as refused:
                boto3_invoke(unsigned, "guarded", {})
            self.assertEqual(error_code(refused.exception), "MissingAuthenticationTokenException")
            self.assertEqual(http_status(refused.exception), 403)


# --- what handlers find in their sandboxes ------------------------------------------------


class SandboxTest(DaemonTestCase):
    """Unmodified Lambda-style handlers that use what a Lambda sandbox offers."""

    REGION = "ap-southeast-2"  # not the default: AWS_REGION must come from [lambda] region
    ENVIRONMENT = {"GREETING": "hello", "EMPTY": ""}
    WORDS = {"words": ["copied", "binary"]}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            cwd=cls.scratch,
            check=True,
            capture_output=True,
        )  # fmt: skip
        certificate = {}
        for name in ("cert.pem", "key.pem"):
            with open(cls.scratch_file(name), "rb") as f:
                certificate[name] = f.read()
        cls.deploy("tls", "tls", certificate)
        cls.deploy("copied-binary", "copied_binary")
        cls.deploy("environment", "report", Environment={"Variables": cls.ENVIRONMENT})
        cls.deploy(
            "utf8-text",
            "utf8_text",
            {"greeting.txt": "hej då 😀".encode()},
            Environment={"Variables": {"GREETING": "grüß dich"}},
        )
        # A layer as Lambda's are packed (python/PACKAGE), published with
        # thatch's CLI, used by a function created through the Lambda API.
        layer_dir = os.path.join(cls.scratch, "layer")
        os.makedirs(os.path.join(layer_dir, "python", "greetings"))
        with open(os.path.join(layer_dir, "python", "greetings", "__init__.py"), "w") as f:
            f.write('def greet(name):\n    return f"greetings, {name}, from a layer"\n')
        thatch = os.path.join(os.path.dirname(THATCHD), "thatch")
        subprocess.run(
            [thatch, "--socket", cls.daemon.socket, "layer", "publish", "greetings", layer_dir],
            check=True,
            capture_output=True,
        )
        cls.deploy("layered", "layered", Layers=[f"arn:aws:lambda:{cls.REGION}:{ACCOUNT}:layer:greetings:1"])
        invoke, out = cls.cli.start_invoke, cls.scratch_file
        cls.start_cli_calls(
            layered=invoke("layered", {"name": "aws"}, out("layered.json")),
            tls=invoke("tls", {}, out("tls.json")),
            copied_binary=invoke("copied-binary", cls.WORDS, out("copied-binary.json")),
            environment=invoke("environment", {}, out("environment.json")),
        )

    def both_clients(self, cli_call, function, event):
        """What `function` answered each client: {client: answer}."""
        output, answer = self.cli_result(cli_call)
        self.assertEqual(output["StatusCode"], 200)
        self.assertNotIn("FunctionError", output, answer)
        answers = {"aws": json.loads(answer)}
        response, answer = boto3_invoke(self.boto, function, event)
        self.assertNotIn("FunctionError", response, answer)
        answers["boto3"] = json.loads(answer)
        return answers

    def test_tls_with_the_hosts_ca_bundle_and_a_packed_certificate(self):
        host_ca_count = ssl.create_default_context().cert_store_stats()["x509_ca"]
        self.assertGreater(host_ca_count, 0)
        for client, answer in self.both_clients("tls", "tls", {}).items():
            with self.subTest(client=client):
                self.assertEqual(answer["default_ca_count"], host_ca_count)
                # The default context does not trust the test's certificate...
                self.assertIn("CERTIFICATE_VERIFY_FAILED", answer["default_outcome"])
                # ... and trusts it as cafile.
                self.assertEqual(answer["pinned_answer"], "hello over tls")

    def test_a_layers_package_imports(self):
        output, answer = self.cli_result("layered")
        self.assertNotIn("FunctionError", output, answer)
        self.assertEqual(json.loads(answer), {"greeting": "greetings, aws, from a layer"})
        response, answer = boto3_invoke(self.boto, "layered", {"name": "boto3"})
        self.assertNotIn("FunctionError", response, answer)
        self.assertEqual(json.loads(answer), {"greeting": "greetings, boto3, from a layer"})
        layers = self.boto.get_function_configuration(FunctionName="layered")["Layers"]
        self.assertEqual([layer["Arn"] for layer in layers], [f"arn:aws:lambda:{self.REGION}:{ACCOUNT}:layer:greetings:1"])

    def test_binary_copied_to_tmp_runs(self):
        for client, answer in self.both_clients("copied_binary", "copied-binary", self.WORDS).items():
            with self.subTest(client=client):
                self.assertEqual(answer, {"returncode": 0, "stdout": "copied binary\n", "stderr": ""})

    def test_lambda_environment_variables(self):
        for client, answer in self.both_clients("environment", "environment", {}).items():
            with self.subTest(client=client):
                variables = answer["lambda_variables"]
                self.assertEqual(variables["AWS_LAMBDA_FUNCTION_NAME"], "environment")
                self.assertEqual(variables["AWS_REGION"], self.REGION)
                self.assertEqual(variables["AWS_DEFAULT_REGION"], self.REGION)
                self.assertEqual(variables["LAMBDA_TASK_ROOT"], "/var/task")
                self.assertEqual(variables["_HANDLER"], "report.handler")
                self.assertEqual(variables["TZ"], ":UTC")
                self.assertEqual(answer["cwd"], "/var/task")
                self.assertEqual(answer["function_name"], "environment")
                own = {key: answer["environ"].get(key) for key in self.ENVIRONMENT}
                self.assertEqual(own, self.ENVIRONMENT)

    # Lambda's Python runs in a UTF-8 locale; thatch's runs in UTF-8 mode
    # (runtime/interpreter.cc): open() without an encoding, os.environ and
    # subprocess text take non-ASCII as on Lambda.
    def test_utf8_by_default(self):
        response, answer = boto3_invoke(self.boto, "utf8-text", {})
        self.assertNotIn("FunctionError", response, answer)
        self.assertEqual(
            json.loads(answer), {"file": "hej då 😀", "environment": "grüß dich", "echoed": "hej då 😀\n"}
        )


if __name__ == "__main__":
    unittest.main()
