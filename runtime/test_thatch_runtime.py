"""Tests of the handler contract (runtime/thatch_runtime.py), as handlers and the C++ caller see it.

Run from the repository root: /usr/bin/python3 -m unittest runtime/test_thatch_runtime.py
"""

import collections
import contextlib
import datetime
import importlib
import json
import importlib.util
import io
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
import types
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNTIME_PATH = os.path.join(REPO, "runtime", "thatch_runtime.py")
EXAMPLES = os.path.join(REPO, "examples")
MODULE_NAME = "_thatch_runtime"

# The tests import from the source tree (runtime/, examples/): leave no __pycache__ there.
sys.dont_write_bytecode = True


def import_runtime():
    spec = importlib.util.spec_from_file_location(MODULE_NAME, RUNTIME_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Lets a test handler look at the runtime's own state mid-invocation.
    sys.modules[MODULE_NAME] = module
    return module


rt = import_runtime()

Result = collections.namedtuple("Result", "status result error logs truncated")
LOG_LINE = r"\[{level}\]\t\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z\t{request_id}\t{message}\n"


def tearDownModule():
    logging.getLogger().removeHandler(rt._log_handler)


class RuntimeTest(unittest.TestCase):
    """Each test gets a fresh temporary task directory and a configured runtime."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self._tmp.cleanup)
        self.set_task_dir(self._tmp.name)
        # No layers, whatever the host has in its /opt.
        self._opt = tempfile.TemporaryDirectory()
        self.addCleanup(self._opt.cleanup)
        rt.OPT_DIR = self._opt.name
        saved_path = list(sys.path)
        root = logging.getLogger()
        saved_level = root.level
        saved_streams = sys.stdout, sys.stderr
        self.addCleanup(self._restore, saved_path, root, saved_level, saved_streams)
        self.configure()

    def _restore(self, saved_path, root, saved_level, saved_streams):
        sys.path[:] = saved_path
        root.setLevel(saved_level)
        sys.stdout, sys.stderr = saved_streams
        rt._function.handler = None
        # Every test names its module "handler"; forget the ones we imported.
        for name, module in list(sys.modules.items()):
            if (getattr(module, "__file__", None) or "").startswith(self.task_dir + os.sep):
                del sys.modules[name]

    def set_task_dir(self, path):
        self.task_dir = path
        rt.TASK_DIR = path
        importlib.invalidate_caches()

    def configure(self, raw=False, log_limit_bytes=64 * 1024):
        rt.configure("orders", "7", 256, "arn:aws:lambda:eu-west-1:123456789012:function:orders",
                     "/aws/lambda/orders", "2024/01/01/[7]abc", raw, log_limit_bytes)

    def write(self, relative_path, source):
        path = os.path.join(self.task_dir, relative_path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(source))
        return path

    def load(self, source, handler="handler.handler"):
        path = self.write(handler.rpartition(".")[0].replace(".", os.sep) + ".py", source)
        rt.load(handler)
        return path

    def invoke(self, payload=b"{}", request_id="req-1", deadline_ns=0):
        result = Result(*rt.invoke(payload, request_id, deadline_ns))
        self.assertIsInstance(result.status, int)
        self.assertIsInstance(result.result, bytes)
        self.assertIsInstance(result.logs, bytes)
        self.assertIsInstance(result.truncated, bool)
        return result


class JsonFunctionTest(RuntimeTest):
    def test_event_round_trips_as_compact_utf8_json(self):
        self.load("def handler(event, context):\n    return event\n")
        r = self.invoke('{"a": [1, 2.5, "é", true], "b": null, "c": {"d": "✓"}}'.encode())
        self.assertEqual(r, Result(0, '{"a":[1,2.5,"é",true],"b":null,"c":{"d":"✓"}}'.encode(),
                                   None, b"", False))

    def test_none_result_is_json_null(self):
        self.load("def handler(event, context):\n    pass\n")
        self.assertEqual(self.invoke(b'{"x": 1}'), Result(0, b"null", None, b"", False))

    def test_empty_payload_is_a_none_event(self):
        self.load("def handler(event, context):\n    return repr(event)\n")
        self.assertEqual(self.invoke(b"").result, b'"None"')

    def test_decimal_is_encoded_as_a_number_like_on_lambda(self):
        self.load("import decimal\ndef handler(event, context):\n    return [decimal.Decimal('1.5')]\n")
        self.assertEqual(self.invoke().result, b"[1.5]")

    def test_bad_payloads_are_rejected_without_calling_the_handler(self):
        self.load("""\
            calls = 0
            def handler(event, context):
                global calls
                calls += 1
                print("called")
                return calls
        """)
        for payload in (b"{", b"  ", b"\xff", b'"\xc3"', '{"a": 1}'.encode("utf-16"),
                        b"[" * 100_000 + b"]" * 100_000):
            with self.subTest(payload=payload[:20]):
                r = self.invoke(payload)
                self.assertEqual(r.status, rt.STATUS_BAD_PAYLOAD)
                self.assertEqual((r.result, r.logs, r.truncated), (b"", b"", False))
                kind, message, trace = r.error
                self.assertEqual((kind, trace), ("InvalidPayload", ""))
                self.assertIn("not UTF-8 JSON", message)
        self.assertEqual(self.invoke().result, b"1")

    def test_unserializable_results(self):
        self.load("""\
            import math
            loop = []
            loop.append(loop)
            RESULTS = {"set": {1, 2}, "nan": math.nan, "loop": loop, "object": object(),
                       "surrogate": "\\ud800"}
            def handler(event, context):
                print("before returning", event)
                return RESULTS[event]
        """)
        expected = {
            "set": "Object of type set is not JSON serializable",
            "nan": "Out of range float values are not JSON compliant",
            "loop": "Circular reference detected",
            "object": "Object of type object is not JSON serializable",
            "surrogate": "surrogates not allowed",
        }
        for name, message in expected.items():
            with self.subTest(result=name):
                r = self.invoke(f'"{name}"'.encode())
                self.assertEqual(r.status, rt.STATUS_RESULT_NOT_SERIALIZABLE)
                self.assertEqual(r.result, b"")
                self.assertEqual(r.error[0], "ResultNotSerializable")
                self.assertIn(message, r.error[1])
                self.assertEqual(r.error[2], "")
                self.assertEqual(r.logs, f"before returning {name}\n".encode())


class RawFunctionTest(RuntimeTest):
    def setUp(self):
        super().setUp()
        self.configure(raw=True)
        self.load("""\
            def handler(event, context):
                assert type(event) is bytes, type(event)
                kind, rest = event[:1], event[1:]
                if kind == b"b": return rest
                if kind == b"a": return bytearray(rest)
                if kind == b"m": return memoryview(rest)
                if kind == b"s": return rest.decode("latin-1") + "é"
                if kind == b"j": return {"length": len(rest)}
                if kind == b"x": return {1}
                return None
        """)

    def test_bytes_like_results_pass_through(self):
        for kind in b"bam":
            with self.subTest(kind=chr(kind)):
                self.assertEqual(self.invoke(bytes([kind]) + b"\xff\x00{"),
                                 Result(0, b"\xff\x00{", None, b"", False))

    def test_str_is_utf8_and_anything_else_json(self):
        self.assertEqual(self.invoke(b"sab").result, "abé".encode())
        self.assertEqual(self.invoke(b"j\xff\xfe").result, b'{"length":2}')
        self.assertEqual(self.invoke(b"").result, b"null")
        self.assertEqual(self.invoke(b"x").status, rt.STATUS_RESULT_NOT_SERIALIZABLE)

    def test_payload_is_never_parsed(self):
        self.assertEqual(self.invoke(b"b{not json").result, b"{not json")


class HandlerErrorTest(RuntimeTest):
    def test_exception_traceback_starts_at_the_handler(self):
        path = self.load("""\
            def handler(event, context):
                print("about to fail")
                return helper(event)

            def helper(event):
                raise ValueError("bad quantity " + event["q"])
        """)
        r = self.invoke(b'{"q": "three"}')
        self.assertEqual((r.status, r.result, r.logs), (rt.STATUS_HANDLER_ERROR, b"", b"about to fail\n"))
        kind, message, trace = r.error
        self.assertEqual((kind, message), ("ValueError", "bad quantity three"))
        lines = trace.splitlines()
        self.assertEqual(lines[0], "Traceback (most recent call last):")
        self.assertEqual(lines[1], f'  File "{path}", line 3, in handler')
        self.assertIn(f'  File "{path}", line 6, in helper', lines)
        self.assertEqual(lines[-1], "ValueError: bad quantity three")
        self.assertNotIn("thatch_runtime", trace)

    def test_custom_and_chained_exceptions(self):
        self.load("""\
            class OrderRejected(Exception):
                pass

            def handler(event, context):
                try:
                    {}["missing"]
                except KeyError as e:
                    raise OrderRejected("no such order") from e
        """)
        kind, message, trace = self.invoke().error
        self.assertEqual((kind, message), ("OrderRejected", "no such order"))
        self.assertIn("KeyError: 'missing'", trace)
        self.assertIn("The above exception was the direct cause", trace)
        self.assertTrue(trace.endswith("handler.OrderRejected: no such order\n"), trace)
        self.assertNotIn("thatch_runtime", trace)

    def test_system_exit_and_other_base_exceptions_are_handler_errors(self):
        self.load("""\
            import sys
            class Abort(BaseException):
                pass
            def handler(event, context):
                if event == "exit":
                    sys.exit(3)
                if event == "interrupt":
                    raise KeyboardInterrupt
                if event == "abort":
                    raise Abort("stop")
                return "still alive"
        """)
        for event, kind, message in (("exit", "SystemExit", "3"), ("interrupt", "KeyboardInterrupt", ""),
                                     ("abort", "Abort", "stop")):
            with self.subTest(event=event):
                r = self.invoke(f'"{event}"'.encode())
                self.assertEqual(r.status, rt.STATUS_HANDLER_ERROR)
                self.assertEqual(r.error[:2], (kind, message))
                self.assertIn("in handler", r.error[2])
        self.assertEqual(self.invoke(b'"ok"').result, b'"still alive"')

    def test_unprintable_exception(self):
        self.load("""\
            class Weird(Exception):
                def __str__(self):
                    raise RuntimeError("no")
            def handler(event, context):
                raise Weird()
        """)
        r = self.invoke()
        self.assertEqual(r.error[:2], ("Weird", "<unprintable Weird object>"))


class LogsTest(RuntimeTest):
    def test_stdout_stderr_and_logging_in_order_with_request_id(self):
        self.load("""\
            import logging, sys
            log = logging.getLogger("orders")
            def handler(event, context):
                print("one")
                sys.stderr.write("two\\n")
                logging.warning("three %d", 3)
                sys.stdout.write("four\\n")
                log.info("not shown: the root level stays WARNING")
                log.error("five")
                sys.stdout.buffer.write(b"six\\n")
                print("seven", file=sys.stderr)
                print("é")
        """)
        self.assertEqual(logging.getLogger().level, logging.WARNING)
        before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        r = self.invoke(request_id="req-7")
        line = lambda level, message: LOG_LINE.format(level=level, request_id="req-7", message=message)
        pattern = ("one\ntwo\n" + line("WARNING", "three 3") + "four\n" + line("ERROR", "five")
                   + "six\nseven\né\n")
        logs = r.logs.decode()
        self.assertRegex(logs, "^" + pattern + "$")
        stamp = re.search(r"\t(\S+)Z\t", logs).group(1)
        logged = datetime.datetime.fromisoformat(stamp).replace(tzinfo=datetime.timezone.utc)
        self.assertLessEqual(before, logged)
        self.assertLess(logged - before, datetime.timedelta(seconds=5))
        self.assertFalse(r.truncated)

    def test_logs_belong_to_one_invocation(self):
        self.load("def handler(event, context):\n    print(context.aws_request_id)\n")
        self.assertEqual(self.invoke(request_id="a").logs, b"a\n")
        self.assertEqual(self.invoke(request_id="b").logs, b"b\n")

    def test_handler_may_lower_the_root_level_and_log_exceptions(self):
        self.load("""\
            import logging
            def handler(event, context):
                logging.getLogger().setLevel(logging.INFO)
                logging.info("now visible")
                try:
                    1 / 0
                except ZeroDivisionError:
                    logging.exception("failed")
        """)
        logs = self.invoke(request_id="r").logs.decode()
        self.assertRegex(logs, "^" + LOG_LINE.format(level="INFO", request_id="r", message="now visible"))
        self.assertIn("\tr\tfailed\nTraceback (most recent call last):\n", logs)
        self.assertTrue(logs.endswith("ZeroDivisionError: division by zero\n"), logs)

    def test_logging_outside_an_invocation_goes_to_the_process_stderr(self):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            logging.getLogger("startup").warning("cold")
        self.assertRegex(err.getvalue(), LOG_LINE.format(level="WARNING", request_id="", message="cold"))


class LogLimitTest(RuntimeTest):
    LIMIT = 1000

    def setUp(self):
        super().setUp()
        self.configure(log_limit_bytes=self.LIMIT)

    def peak_traced_bytes(self, payload):
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        r = self.invoke(payload)
        return r, tracemalloc.get_traced_memory()[1] - before

    def test_ten_megabytes_at_once_keeps_exactly_the_limit(self):
        self.load("""\
            BIG = "x" * 10_000_000
            def handler(event, context):
                print(BIG)
                return "done"
        """)
        r, peak = self.peak_traced_bytes(b"{}")
        self.assertEqual(r, Result(0, b'"done"', None, b"x" * self.LIMIT, True))
        self.assertLess(peak, 256 * 1024, "the text past the cap must not be encoded or copied")

    def test_ten_megabytes_in_lines_stores_only_the_limit(self):
        self.load("""\
            import sys
            def handler(event, context):
                for _ in range(10 * 1024):
                    print("y" * 1023)
                return len(sys.modules["_thatch_runtime"]._capture.data)
        """)
        r, peak = self.peak_traced_bytes(b"{}")
        self.assertEqual(r.result, str(self.LIMIT).encode())
        self.assertEqual(r.logs, b"y" * self.LIMIT)
        self.assertTrue(r.truncated)
        self.assertLess(peak, 256 * 1024)

    def test_binary_writes_are_capped_too(self):
        self.load("""\
            import sys
            def handler(event, context):
                sys.stdout.buffer.write(bytes(10_000_000))
                return len(sys.modules["_thatch_runtime"]._capture.data)
        """)
        r = self.invoke()
        self.assertEqual((r.result, r.logs, r.truncated), (b"1000", bytes(self.LIMIT), True))

    def test_exactly_the_limit_is_not_truncated(self):
        self.load('def handler(event, context):\n    print("z" * (event - 1))\n')
        self.assertEqual(self.invoke(str(self.LIMIT).encode()),
                         Result(0, b"null", None, b"z" * 999 + b"\n", False))
        r = self.invoke(str(self.LIMIT + 1).encode())
        self.assertEqual((r.logs, r.truncated), (b"z" * 1000, True))

    def test_cut_inside_a_multibyte_character_keeps_the_exact_byte_count(self):
        self.configure(log_limit_bytes=5)
        self.load('def handler(event, context):\n    print("ééé", end="")\n')
        r = self.invoke()
        self.assertEqual((r.logs, r.truncated), ("ééé".encode()[:5], True))

    def test_zero_limit(self):
        self.configure(log_limit_bytes=0)
        self.load('def handler(event, context):\n    if event: print("x")\n')
        self.assertEqual(self.invoke(b"true")[3:], (b"", True))
        self.assertEqual(self.invoke(b"false")[3:], (b"", False))


class StreamsAndStateTest(RuntimeTest):
    def test_stdout_and_stderr_are_restored_even_if_the_handler_replaced_them(self):
        self.load("""\
            import io, sys
            def handler(event, context):
                print("kept")
                sys.stdout = io.StringIO()
                sys.stderr = io.StringIO()
                print("lost")
                if event == "raise":
                    raise RuntimeError("after replacing")
        """)
        before = sys.stdout, sys.stderr
        self.assertEqual(self.invoke(b'"return"').logs, b"kept\n")
        self.assertEqual((sys.stdout, sys.stderr), before)
        self.assertEqual(self.invoke(b'"raise"').logs, b"kept\n")
        self.assertEqual((sys.stdout, sys.stderr), before)

    def test_a_closed_or_reconfigured_stdout_still_captures_the_next_call(self):
        self.load("""\
            import sys
            def handler(event, context):
                print("call", event)
                sys.stdout.reconfigure(line_buffering=True)
                sys.stdout.flush()
                sys.stdout.close()
        """)
        self.invoke(b"1")
        self.assertEqual(self.invoke(b"2").logs, b"call 2\n")

    def test_captured_stdout_looks_like_a_text_stream(self):
        self.load("""\
            import io, sys
            def handler(event, context):
                out = sys.stdout
                return [isinstance(out, io.TextIOBase), out.encoding, out.isatty(), out.writable(),
                        sys.stderr is out]
        """)
        self.assertEqual(self.invoke().result, b'[true,"utf-8",false,true,true]')

    def test_module_state_persists_across_invocations(self):
        self.load("""\
            calls = 0
            def handler(event, context):
                global calls
                calls += 1
                return calls
        """)
        self.assertEqual([self.invoke().result for _ in range(3)], [b"1", b"2", b"3"])


class ContextTest(RuntimeTest):
    def test_context_attributes(self):
        self.load("""\
            NAMES = ["aws_request_id", "request_id", "function_name", "function_version",
                     "memory_limit_in_mb", "invoked_function_arn", "log_group_name",
                     "log_stream_name", "identity", "client_context"]
            def handler(event, context):
                return {name: getattr(context, name) for name in NAMES}
        """)
        self.assertEqual(self.invoke(request_id="8f3c").result, (
            b'{"aws_request_id":"8f3c","request_id":"8f3c","function_name":"orders",'
            b'"function_version":"7","memory_limit_in_mb":256,'
            b'"invoked_function_arn":"arn:aws:lambda:eu-west-1:123456789012:function:orders",'
            b'"log_group_name":"/aws/lambda/orders","log_stream_name":"2024/01/01/[7]abc",'
            b'"identity":null,"client_context":null}'))

    def test_remaining_time_decreases_and_stops_at_zero(self):
        self.load("""\
            import time
            def handler(event, context):
                first = context.get_remaining_time_in_millis()
                time.sleep(0.05)
                return [first, context.get_remaining_time_in_millis()]
        """)
        now = time.monotonic_ns()
        first, second = eval(self.invoke(deadline_ns=now + 5_000_000_000).result)
        self.assertTrue(4000 < first <= 5000, first)
        self.assertTrue(0 < second <= first - 50, (first, second))
        self.assertEqual(self.invoke(deadline_ns=time.monotonic_ns() + 20_000_000).result[-2:], b"0]")
        self.assertEqual(self.invoke(deadline_ns=time.monotonic_ns() - 1).result, b"[0,0]")

    def test_no_deadline(self):
        self.load("def handler(event, context):\n    return context.get_remaining_time_in_millis()\n")
        self.assertEqual(self.invoke(deadline_ns=0).result, str(2**31 - 1).encode())
        self.assertEqual(rt.NO_DEADLINE_REMAINING_MS, 2**31 - 1)


class EmbeddedTest(RuntimeTest):
    """The zygote compiles the source from a string: no file, no path, its own module name."""

    def test_runs_without_a_file(self):
        with open(RUNTIME_PATH, encoding="utf-8") as f:
            code = compile(f.read(), "<thatch_runtime>", "exec")
        embedded = types.ModuleType("_embedded_runtime")
        exec(code, embedded.__dict__)
        embedded.TASK_DIR = self.task_dir
        embedded.configure("f", "1", 128, "arn", "g", "s", False, 100)
        self.addCleanup(logging.getLogger().removeHandler, embedded._log_handler)
        self.write("handler.py", "def handler(event, context):\n    raise KeyError(event)\n")
        embedded.load("handler.handler")
        status, _, error, _, _ = embedded.invoke(b'"k"', "r", 0)
        self.assertEqual((status, error[0], error[1]), (1, "KeyError", "'k'"))
        self.assertEqual(error[2].splitlines()[1].split(",")[-1], " in handler")
        self.assertNotIn("<thatch_runtime>", error[2])


class ExamplesTest(RuntimeTest):
    def use_example(self, name, **configuration):
        self.set_task_dir(os.path.join(EXAMPLES, name))
        self.configure(**configuration)
        rt.load("handler.handler")

    def test_echo(self):
        self.use_example("echo")
        self.assertEqual(self.invoke(b'{"k": [1, "v"]}').result, b'{"k":[1,"v"]}')

    def test_hello(self):
        self.use_example("hello")
        self.assertEqual(self.invoke(b'{"name": "thatch"}').result, b'{"greeting":"hello, thatch"}')

    def test_raises(self):
        self.use_example("raises")
        r = self.invoke(b"3")
        self.assertEqual((r.status, r.error[0]), (rt.STATUS_HANDLER_ERROR, "ValueError"))
        self.assertEqual(re.findall(r"in (\w+)\n", r.error[2]), ["handler", "check_quantity"])

    def test_prints10mb(self):
        self.use_example("prints10mb", log_limit_bytes=4096)
        r = self.invoke()
        self.assertEqual((r.result, len(r.logs), r.truncated), (b'"done"', 4096, True))

    def test_nonjson(self):
        self.use_example("nonjson")
        self.assertEqual(self.invoke().error,
                         ("ResultNotSerializable", "Object of type set is not JSON serializable", ""))

    def test_numpy(self):
        import numpy
        self.use_example("numpy")
        self.assertEqual(self.invoke().result, f'{{"sum":45,"version":"{numpy.__version__}"}}'.encode())

    def test_stateful(self):
        self.use_example("stateful")
        self.assertEqual([self.invoke().result for _ in range(3)], [b"1", b"2", b"3"])

    def test_remaining(self):
        self.use_example("remaining")
        r = self.invoke(request_id="r-9", deadline_ns=time.monotonic_ns() + 10_000_000_000)
        remaining = int(re.search(rb'"remaining_ms":(\d+)', r.result).group(1))
        self.assertTrue(9000 < remaining <= 10000, remaining)
        self.assertIn(b'"request_id":"r-9"', r.result)

    def run_example_in_a_process(self, name, timeout):
        script = textwrap.dedent(f"""\
            import importlib.util, sys
            spec = importlib.util.spec_from_file_location("_thatch_runtime", {RUNTIME_PATH!r})
            rt = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(rt)
            rt.TASK_DIR = {os.path.join(EXAMPLES, name)!r}
            rt.configure("f", "1", 128, "arn", "g", "s", False, 1000)
            rt.load("handler.handler")
            rt.invoke(b"{{}}", "r", 0)
            """)
        return subprocess.run([sys.executable, "-I", "-B", "-c", script], timeout=timeout,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode

    def test_segfault(self):
        self.assertEqual(self.run_example_in_a_process("segfault", 30), -signal.SIGSEGV)

    def test_exits(self):
        self.assertEqual(self.run_example_in_a_process("exits", 30), 3)

    def test_spins(self):
        with self.assertRaises(subprocess.TimeoutExpired):
            self.run_example_in_a_process("spins", 0.5)


def load_tests(loader, tests, pattern):
    """Loading a handler and the warm-up are tested in test_thatch_runtime_load.py."""
    package = __name__.rpartition(".")[0]
    tests.addTests(loader.loadTestsFromName(
        f"{package}.test_thatch_runtime_load" if package else "test_thatch_runtime_load"))
    return tests


if __name__ == "__main__":
    unittest.main()
