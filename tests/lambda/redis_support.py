"""A real redis-server on loopback, a small RESP client, and the reader of
what handlers/stream_consumer.py records, for tests/lambda/test_redis_stream.py
and bench/redis_bench.py."""

import ctypes
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading

from thatchd_process import wait_until

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisError(Exception):
    pass


class Resp:
    """A blocking RESP2 client: command() sends one command, returns its reply
    (bytes, int, list, None; an error reply raises RedisError)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.sock.makefile("rb")

    def close(self):
        self.file.close()
        self.sock.close()

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(out)

    def command(self, *args):
        self.sock.sendall(self.encode(args))
        return self.reply()

    def pipeline(self, commands):
        self.sock.sendall(b"".join(self.encode(args) for args in commands))
        return [self.reply() for _ in commands]

    def reply(self):
        line = self.file.readline()
        if not line:
            raise RedisError("the connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self.file.read(size + 2)
            return data[:-2]
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self.reply() for _ in range(size)]
        raise RedisError(f"unexpected reply {line!r}")

    # --- what the tests ask -----------------------------------------------

    def pending(self, stream, group="thatch"):
        """The group's pending entries (delivered, not acknowledged)."""
        return self.command("XPENDING", stream, group)[0]

    def group_info(self, stream, group="thatch"):
        for entry in self.command("XINFO", "GROUPS", stream):
            info = {entry[i].decode(): entry[i + 1] for i in range(0, len(entry), 2)}
            if info["name"] == group.encode():
                return info
        return None

    def entries(self, stream):
        """[(id, {field: value})] of the whole stream, as str."""
        return [
            (entry_id.decode(), {fields[i].decode(): fields[i + 1].decode() for i in range(0, len(fields), 2)})
            for entry_id, fields in self.command("XRANGE", stream, "-", "+")
        ]


class RedisServer:
    """redis-server on a free loopback port, in a directory of its own,
    nothing saved; killed by close(), and with the test process."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="thatch-redis-")
        self.process = None
        self.start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log")],
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )

        def up():
            if self.process.poll() is not None:
                raise AssertionError(f"redis-server exited: {self.log()}")
            try:
                client = Resp(self.port)
            except OSError:
                return False
            try:
                return client.command("PING") == b"PONG"
            finally:
                client.close()

        wait_until(up, "redis-server answering", self.log)

    def log(self):
        try:
            with open(os.path.join(self.dir, "redis.log"), errors="replace") as log:
                return log.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Recorder:
    """Reads, on a thread of its own, every line handlers/stream_consumer.py
    writes to /tmp/seen.fifo in any of `daemon`'s sandboxes (through
    /proc/PID/root), also after they die: what the pipe holds stays readable."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.lines = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def close(self):
        self.stopping.set()
        self.thread.join(30)

    def snapshot(self):
        with self.lock:
            return list(self.lines)

    def _run(self):
        opened = {}  # fd -> (pid, partial line)
        known = set()  # (pid, inode) of FIFOs opened
        while not self.stopping.is_set():
            for pid in self._pids():
                path = f"/proc/{pid}/root/tmp/seen.fifo"
                try:
                    key = (pid, os.stat(path).st_ino)
                    if key in known:
                        continue
                    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                except OSError:
                    continue
                known.add(key)
                opened[fd] = b""
            readable = select.select(list(opened), [], [], 0.01)[0] if opened else []
            if not opened:
                self.stopping.wait(0.01)
            for fd in readable:
                data = os.read(fd, 1 << 16)
                if not data:  # its writer is gone: the sandbox died
                    os.close(fd)
                    del opened[fd]
                    continue
                buffered = opened[fd] + data
                *complete, opened[fd] = buffered.split(b"\n")
                with self.lock:
                    self.lines.extend(line.decode() for line in complete)
        for fd in opened:
            os.close(fd)

    def _pids(self):
        try:
            return self.daemon.sandbox_pids()
        except OSError:
            return set()
