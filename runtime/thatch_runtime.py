"""The Python side of thatch's handler contract (imported as `_thatch_runtime`).

The sandbox process calls, through the CPython C API:

    configure(function_name, function_version, memory_limit_mb,
              invoked_function_arn, log_group_name, log_stream_name,
              raw, log_limit_bytes)                    once, before load()
    load("module.func")                                once; raises on failure
    invoke(payload, request_id, deadline_monotonic_ns) once per invocation
        -> (status, result, error, logs, logs_truncated)
    describe_exception(exc) -> (type, message, traceback)

Handlers are AWS Lambda's: handler(event, context). Choices made here:

- error type: the exception class's bare `__name__` ("ValueError",
  "CustomError"), as Lambda's errorType is; the module shows in the traceback.
- traceback: Python's usual "Traceback (most recent call last): ... Type: msg"
  text, starting at the handler's frame (for load failures: at the handler
  module's frame; a SyntaxError shows only the offending line).
- any BaseException the handler raises is a handler_error, SystemExit and
  KeyboardInterrupt included: the sandbox outlives its handler's errors and
  ending it is the supervisor's decision. os._exit() and signals still end it.
- results: JSON without NaN/Infinity (they are not JSON; such a result is
  result_not_serializable); decimal.Decimal becomes a float, as on Lambda,
  so DynamoDB-style handlers run unchanged.
- logs: sys.stdout, sys.stderr (and their .buffer) and the root logger's
  Lambda-style handler, in the order written. Writes straight to fds 1 and 2
  (os.write, subprocesses, C extensions) are not captured. Output outside
  invoke() (at import time in load()) goes to the process's own streams.
  The cap keeps the first log_limit_bytes bytes exactly, so the last kept
  UTF-8 character may be cut.
- get_remaining_time_in_millis() without a deadline (0) returns
  NO_DEADLINE_REMAINING_MS = 2**31 - 1, which fits the int32 millisecond
  timeouts that handlers commonly pass it to. Deadlines are CLOCK_MONOTONIC
  nanoseconds, the clock of time.monotonic_ns().
"""

import _imp
import decimal
import importlib
import importlib.machinery
import importlib.util
import io
import json
import logging
import os
import sys
import time
import traceback

# Where the function's code is mounted; tests point it at a temporary directory.
TASK_DIR = "/var/task"
# Where the function's layers are merged, as on Lambda; tests point it elsewhere.
OPT_DIR = "/opt"

STATUS_OK = 0
STATUS_HANDLER_ERROR = 1
STATUS_BAD_PAYLOAD = 2
STATUS_RESULT_NOT_SERIALIZABLE = 3

NO_DEADLINE_REMAINING_MS = 2**31 - 1

_LOG_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s"
_LOG_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"

# Frames of this module are told apart by their globals, not by a file name:
# the zygote compiles this source from a string.
_RUNTIME_GLOBALS = globals()


class HandlerNotFound(Exception):
    """The handler's module imported, but has no such callable."""


class _Function:
    """What configure() was told; read by every invocation."""

    __slots__ = ("name", "version", "memory_limit_mb", "invoked_function_arn",
                 "log_group_name", "log_stream_name", "raw", "log_limit_bytes", "handler")

    def __init__(self):
        self.name = self.version = self.invoked_function_arn = ""
        self.log_group_name = self.log_stream_name = ""
        self.memory_limit_mb = 0
        self.raw = False
        self.log_limit_bytes = 0
        self.handler = None


class LambdaContext:
    """The handler's `context`, with the attributes Lambda's has."""

    def __init__(self, function, request_id, deadline_monotonic_ns):
        self.aws_request_id = self.request_id = request_id
        self.function_name = function.name
        self.function_version = function.version
        self.memory_limit_in_mb = function.memory_limit_mb
        self.invoked_function_arn = function.invoked_function_arn
        self.log_group_name = function.log_group_name
        self.log_stream_name = function.log_stream_name
        self.identity = None
        self.client_context = None
        self._deadline_ns = deadline_monotonic_ns

    def get_remaining_time_in_millis(self):
        if self._deadline_ns == 0:
            return NO_DEADLINE_REMAINING_MS
        return max(0, (self._deadline_ns - time.monotonic_ns()) // 1_000_000)

    def __repr__(self):
        return f"LambdaContext(aws_request_id={self.aws_request_id!r}, function_name={self.function_name!r})"


class _LogCapture:
    """The current invocation's output: keeps the first `limit` bytes, then only notes that more came.

    A handler that prints 10 MB costs at most `limit` bytes here; text past
    the cap is never encoded.
    """

    __slots__ = ("active", "request_id", "limit", "data", "truncated")

    def __init__(self):
        self.active = False
        self.request_id = ""
        self.limit = 0
        self.data = bytearray()
        self.truncated = False

    def begin(self, request_id, limit):
        self.active = True
        self.request_id = request_id
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    def end(self):
        """Returns (logs, truncated) and releases the buffer."""
        logs, truncated = bytes(self.data), self.truncated
        self.active = False
        self.request_id = ""
        self.data = bytearray()
        return logs, truncated

    def write_text(self, text):
        room = self.limit - len(self.data)
        if len(text) > room:  # every character is at least one byte
            self.truncated = True
            if room <= 0:
                return
            text = text[:room]
        self.write_bytes(text.encode("utf-8", "backslashreplace"))

    def write_bytes(self, data):
        room = self.limit - len(self.data)
        if len(data) > room:
            self.truncated = True
            data = data[:max(room, 0)]
        self.data += data


class _CapturedText(io.TextIOBase):
    """sys.stdout and sys.stderr during an invocation."""

    encoding = "utf-8"
    errors = "backslashreplace"

    def __init__(self, capture):
        self._capture = capture
        self.buffer = _CapturedBytes(capture)

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._capture.write_text(text)
        return len(text)

    def writable(self):
        return True

    def flush(self):
        pass

    # Lambda handlers may close or reconfigure sys.stdout; neither may break
    # the capture of later invocations, which share this object.
    def close(self):
        pass

    def reconfigure(self, **kwargs):
        pass


class _CapturedBytes(io.BufferedIOBase):
    """sys.stdout.buffer during an invocation."""

    def __init__(self, capture):
        self._capture = capture

    def write(self, data):
        view = memoryview(data).cast("B")
        self._capture.write_bytes(view)
        return view.nbytes

    def writable(self):
        return True

    def flush(self):
        pass

    def close(self):
        pass


class _LambdaLogHandler(logging.Handler):
    """The root logger's handler: Lambda's line format, into the invocation's logs."""

    def __init__(self, capture):
        super().__init__()
        self._capture = capture
        formatter = logging.Formatter(_LOG_FORMAT, _LOG_DATE_FORMAT)
        formatter.converter = time.gmtime
        self.setFormatter(formatter)

    def emit(self, record):
        try:
            record.aws_request_id = self._capture.request_id
            line = self.format(record) + "\n"
            if self._capture.active:
                self._capture.write_text(line)
            elif sys.stderr is not None:
                sys.stderr.write(line)
        except Exception:
            self.handleError(record)


class _ResultEncoder(json.JSONEncoder):
    def default(self, value):
        if isinstance(value, decimal.Decimal):
            return float(value)
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_function = _Function()
_capture = _LogCapture()
_captured_stream = _CapturedText(_capture)
_log_handler = _LambdaLogHandler(_capture)
_encoder = _ResultEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def configure(function_name, function_version, memory_limit_mb, invoked_function_arn,
              log_group_name, log_stream_name, raw, log_limit_bytes):
    if log_limit_bytes < 0:
        raise ValueError(f"log_limit_bytes must not be negative, got {log_limit_bytes}")
    _function.name = function_name
    _function.version = function_version
    _function.memory_limit_mb = int(memory_limit_mb)
    _function.invoked_function_arn = invoked_function_arn
    _function.log_group_name = log_group_name
    _function.log_stream_name = log_stream_name
    _function.raw = bool(raw)
    _function.log_limit_bytes = int(log_limit_bytes)
    # Checked first: addHandler() takes the logging lock, Python code that a
    # forked sandbox would otherwise run (and copy pages for) on every start.
    if _log_handler not in logging.root.handlers:
        logging.getLogger().addHandler(_log_handler)


def load(handler, layers=True):
    """Imports the handler from TASK_DIR, first on sys.path; with `layers`,
    the directories Lambda's layers put packages in follow it."""
    module_name, attribute = _parse_handler(handler)
    if not sys.path or sys.path[0] != TASK_DIR:
        sys.path.insert(0, TASK_DIR)
    if layers:
        _add_layer_paths()
    module = _import_task_source(module_name)
    if module is None:
        module = importlib.import_module(module_name)
    try:
        function = getattr(module, attribute)
    except AttributeError:
        raise HandlerNotFound(
            f"handler {handler!r}: module {module_name!r} has no attribute {attribute!r}") from None
    if not callable(function):
        raise HandlerNotFound(
            f"handler {handler!r}: {module_name}.{attribute} is a {type(function).__name__}, "
            "not a callable")
    _function.handler = function


def _add_layer_paths():
    """Lambda's search path after the task directory: a layer's
    python/lib/python3.X/site-packages, then python/. Only those that
    exist: without layers there is no /opt, and this costs one stat."""
    python = os.path.join(OPT_DIR, "python")
    if not os.path.isdir(python):
        return
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_packages = os.path.join(python, "lib", version, "site-packages")
    at = sys.path.index(TASK_DIR) + 1
    for path in (site_packages, python):
        if path not in sys.path and os.path.isdir(path):
            sys.path.insert(at, path)
            at += 1


_STANDARD_FINDERS = (importlib.machinery.BuiltinImporter, importlib.machinery.FrozenImporter,
                     importlib.machinery.PathFinder)


def _import_task_source(name):
    """The handler's module when it is `NAME.py` at the top of the task
    directory and nothing would come before it: imported as the path finder
    and source loader would (same module attributes, same sys.modules entry,
    same compile), without running their Python code, which in a forked
    sandbox touches (and copies) a hundred-odd pages more. None when that
    does not hold (a dotted name, a package or extension module of that
    name, a __pycache__, an import hook, a module already imported): the
    caller imports it the usual way."""
    if ("." in name or name in sys.modules or name in sys.builtin_module_names
            or _imp.is_frozen(name)):
        return None
    for finder in sys.meta_path:
        # Debian's setuptools installs _distutils_hack's finder, which claims
        # only the names it has a spec_for_NAME method for ("distutils", "pip").
        if finder in _STANDARD_FINDERS:
            continue
        if type(finder).__name__ != "DistutilsMetaFinder" or hasattr(finder, "spec_for_" + name):
            return None
    try:
        entries = os.listdir(TASK_DIR)
    except OSError:
        return None
    source = name + ".py"
    if source not in entries or name in entries or "__pycache__" in entries:
        return None
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if name + suffix in entries:
            return None
    path = os.path.join(TASK_DIR, source)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(fd)
    code = compile(b"".join(chunks), path, "exec", dont_inherit=True)
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.machinery.ModuleSpec(name, loader, origin=path)
    spec.has_location = True
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec._initializing = True  # as importlib marks it: circular imports say so
    try:
        exec(code, module.__dict__)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        spec._initializing = False
    return sys.modules[name]  # what importlib returns too: a module may replace itself


_WARM_SOURCE = b"""
import json
def handler(event, context):
    print("warm", context.get_remaining_time_in_millis())
    return {"event": event, "request": context.aws_request_id}
"""


def warm_up(forget=True):
    """Runs what a cold start runs, on a function of its own: configure(),
    load() from a directory (a scratch one under /tmp), and invoke() with
    JSON in and out and captured output. The zygote runs it once before it
    forks, so that what these paths create lazily exists in every sandbox;
    a stem cell runs it again while it waits to be claimed, since in a child
    of the zygote each first write to a shared page is a copy-on-write fault
    (~15-30 us here): paying them now takes them off the path of the request
    that claims it. Nothing else runs here, so that a stem cell copies no
    page its claim would not. Leaves /tmp as it was, and the module as
    unconfigured as it found it, or with `forget` false, with the warm-up
    function still loaded (for a caller that invokes it too), until forget()."""
    global TASK_DIR
    task_dir = TASK_DIR
    scratch = f"/tmp/thatch-warm-{os.getpid()}-{time.monotonic_ns()}"
    source = os.path.join(scratch, "_thatch_warm.py")
    try:
        os.mkdir(scratch, 0o700)
    except OSError:
        return  # no writable /tmp: nothing to warm
    try:
        fd = os.open(source, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, _WARM_SOURCE)
        finally:
            os.close(fd)
        configure("warm", "0", 128, "", "", "", False, 4096)
        TASK_DIR = scratch
        load("_thatch_warm.handler", layers=False)
        invoke(b'{"warm": [1, 2.5, "x", null]}', "warm", 0)
    finally:
        TASK_DIR = task_dir
        if scratch in sys.path:
            sys.path.remove(scratch)
        sys.modules.pop("_thatch_warm", None)
        if forget:
            _function.__init__()
        for path, remove in ((source, os.unlink), (scratch, os.rmdir)):
            try:
                remove(path)
            except OSError:
                pass


def forget():
    """Back to unconfigured, as before configure() (after warm_up(False))."""
    _function.__init__()


def _parse_handler(handler):
    if not isinstance(handler, str):
        raise ValueError(f"handler must be a string like 'module.function', got {handler!r}")
    module_name, _, attribute = handler.rpartition(".")
    parts = handler.split(".")
    if not module_name or not all(part.isidentifier() for part in parts):
        raise ValueError(f"handler {handler!r} is not 'module.function' "
                         "(dotted Python identifiers, e.g. 'handler.handler' or 'pkg.mod.func')")
    return module_name, attribute


def invoke(payload, request_id, deadline_monotonic_ns):
    function = _function
    if function.handler is None:
        raise RuntimeError("invoke() before a successful load()")
    if function.raw:
        event = payload
    else:
        try:
            event = json.loads(payload.decode("utf-8")) if payload else None
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            error = ("InvalidPayload", f"the payload is not UTF-8 JSON: {exc}", "")
            return STATUS_BAD_PAYLOAD, b"", error, b"", False
    context = LambdaContext(function, request_id, deadline_monotonic_ns)

    _capture.begin(request_id, function.log_limit_bytes)
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = _captured_stream
    try:
        status, result, error = _call(function, event, context)
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        logs, truncated = _capture.end()
    return status, result, error, logs, truncated


def _call(function, event, context):
    try:
        value = function.handler(event, context)
    except BaseException as exc:  # see the module docstring: SystemExit is the handler's error too
        return STATUS_HANDLER_ERROR, b"", describe_exception(exc)
    try:
        return STATUS_OK, _encode_result(value, function.raw), None
    except BaseException as exc:  # a result's own methods run here (dict subclasses, str())
        return STATUS_RESULT_NOT_SERIALIZABLE, b"", ("ResultNotSerializable", _message(exc), "")


def _encode_result(value, raw):
    if raw:
        if isinstance(value, bytes):
            return value
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, str):
            return value.encode("utf-8")
    return _encoder.encode(value).encode("utf-8")


def describe_exception(exc):
    """(type, message, traceback) of `exc`, the traceback without this runtime's or importlib's frames."""
    tb = _from_first_runtime_frame(exc.__traceback__)
    while tb is not None and _is_machinery(tb.tb_frame):
        tb = tb.tb_next
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except Exception as format_error:
        text = f"(the traceback could not be formatted: {_message(format_error)})\n"
    return type(exc).__name__, _message(exc), text


def _from_first_runtime_frame(tb):
    """Drops the frames of whoever called into the runtime (none when that is C++, a test's otherwise)."""
    entry = tb
    while entry is not None and entry.tb_frame.f_globals is not _RUNTIME_GLOBALS:
        entry = entry.tb_next
    return tb if entry is None else entry


def _is_machinery(frame):
    module_globals = frame.f_globals
    if module_globals is _RUNTIME_GLOBALS:
        return True
    name = module_globals.get("__name__")
    return isinstance(name, str) and name.partition(".")[0] == "importlib"  # also its frozen parts


def _message(exc):
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__} object>"
