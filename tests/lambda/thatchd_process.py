"""A real thatchd for the Lambda client tests, as tests/daemon.h's TestDaemon.

Its own temporary directory (state, socket, log, configuration), its own
cgroup subdirectory `thatch/<unique>`, one python3.11 runtime without stem
cells and the Lambda HTTP API on a free loopback port. Stopped with SIGTERM;
close() also removes what a kill -9 leaves: its cgroups (every hierarchy)
and its egress firewall's nftables table.

Waiting is on events: a line in its log, a file appearing. Each wait polls
for its event and has a generous deadline only as a guard against a hang.
"""

import ctypes
import errno
import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from typing import NamedTuple

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
THATCHD = os.path.join(REPO, "build", "bin", "thatchd")

# A deadline only a hang reaches, however busy the machine.
GUARD_SECONDS = 120
_POLL_SECONDS = 0.02


class AccessKey(NamedTuple):
    id: str
    secret: str
    allow: tuple


FULL_KEY = AccessKey("AKIDTHATCHTESTFULL", "the full key's secret, for tests", ("invoke", "read", "write"))
READ_KEY = AccessKey("AKIDTHATCHTESTREAD", "the read-only key's secret, tests", ("read",))
INVOKE_KEY = AccessKey("AKIDTHATCHTESTINVOKE", "the invoke-only key's secret, tests", ("invoke",))
# The grants of docs/api.md's "Access control": one function only.
GUARDED_KEY = AccessKey("AKIDTHATCHTESTGUARDED", "the one-function key's secret", ("invoke:guarded",))
ACCESS_KEYS = (FULL_KEY, READ_KEY, INVOKE_KEY, GUARDED_KEY)

_started = itertools.count(1)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # A test process that dies takes its thatchd along, which then stops
    # its sandboxes. (Tied to the forking thread: start thatchd from the
    # main thread, as unittest's fixtures run.)
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def wait_until(condition, what, on_timeout=lambda: ""):
    """Polls `condition` until it returns something true, which it returns."""
    deadline = time.monotonic() + GUARD_SECONDS
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {GUARD_SECONDS} s\n{on_timeout()}")
        time.sleep(_POLL_SECONDS)


def _toml_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class TestDaemon:
    """`tables` is added to the configuration (e.g. "[pool]\nconcurrency = 1\n"),
    `lambda_keys` to its [lambda] table, which sets `region`."""

    def __init__(self, tables="", lambda_keys="", region="us-east-1"):
        self.region = region
        self.dir = tempfile.mkdtemp(prefix="thatchd-lambda-test-")
        self.process = None
        # Below the `thatch` directory, and its own: a thatchd removes
        # whatever it finds in its subdirectory when it starts.
        self.cgroup_name = f"lambda-{os.getpid()}-{next(_started)}"
        try:
            os.chmod(self.dir, 0o711)  # sandboxes open their code below it with their own uid
            self.state_dir = os.path.join(self.dir, "state")
            self.socket = os.path.join(self.dir, "thatchd.sock")
            self.log_path = os.path.join(self.dir, "thatchd.log")
            self.config_path = os.path.join(self.dir, "thatchd.toml")
            self.port = None
            keys = "".join(
                f"[[access_key]]\nid = {_toml_string(key.id)}\nsecret = {_toml_string(key.secret)}\n"
                f"allow = [{', '.join(_toml_string(word) for word in key.allow)}]\n"
                for key in ACCESS_KEYS
            )
            with open(self.config_path, "w") as config:
                config.write(
                    f"state_dir = {_toml_string(self.state_dir)}\n"
                    f"socket = {_toml_string(self.socket)}\n"
                    f'cgroup_subdir = "thatch/{self.cgroup_name}"\n'
                    'http_listen = "127.0.0.1:0"\n'
                    f"[lambda]\nregion = {_toml_string(region)}\n{lambda_keys}\n"
                    f"{tables}\n{keys}"
                    '[[runtime]]\nname = "python3.11"\nstem_cells = 0\n'
                )
            self.start()
        except BaseException:
            self.close()
            raise

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def log(self):
        try:
            with open(self.log_path, errors="replace") as log:
                return log.read()
        except FileNotFoundError:
            return ""

    def log_size(self):
        return len(self.log())

    def start(self):
        """Starts it (again, after stop() or kill9(), on the same configuration and
        state); returns once it logs that it is ready."""
        assert self.process is None, "thatchd is running"
        logged = self.log_size()  # the log is appended to: a restart's lines come after this
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [THATCHD, "--config", self.config_path],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=_die_with_parent,
            )

        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"thatchd exited at start ({self.process.returncode}):\n{self.log()}")
            return "thatchd: ready" in self.log()[logged:]

        wait_until(ready, "thatchd ready", self.log)
        # Port 0 takes any free port, and a restart another one.
        match = re.search(r"listening address=http:127\.0\.0\.1:(\d+)", self.log()[logged:])
        assert match, "no http listening line:\n" + self.log()
        self.port = int(match.group(1))

    def stop(self):
        """SIGTERM, then waits (SIGKILL if it takes longer than the guard); its exit status."""
        if self.process is None:
            return None
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(GUARD_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        self.process = None
        return status

    def kill9(self):
        """SIGKILL, then waits: what a crash leaves stays until start() or close()."""
        if self.process is None:
            return None
        self.process.kill()
        status = self.process.wait()
        self.process = None
        return status

    def close(self):
        try:
            self.stop()
        finally:
            try:
                remove_cgroups(self.cgroup_dirs())
            finally:
                self.remove_firewall_table()
                shutil.rmtree(self.dir, ignore_errors=True)

    # --- what it runs -------------------------------------------------------

    def cgroup_dirs(self):
        """Its cgroup subdirectory in each hierarchy (below this process's own
        cgroup there, where thatchd, started from here, puts it)."""
        return [os.path.join(base, "thatch", self.cgroup_name) for base in own_cgroup_dirs()]

    def sandbox_pids(self):
        """The processes in its sandboxes' cgroups (its zygotes are in its own)."""
        pids = set()
        for top in self.cgroup_dirs():
            for path, _, files in os.walk(top):
                if "cgroup.procs" in files:
                    pids.update(_read_procs(path))
        return pids

    def sandbox_cgroups(self):
        """The names of its sandboxes' cgroups (sbx-N), in any hierarchy."""
        names = set()
        for top in self.cgroup_dirs():
            for path, dirs, _ in os.walk(top):
                names.update(d for d in dirs if d.startswith("sbx-"))
        return names

    def invocations(self, function, since=0):
        """The status of each `invocation` line its log has for `function` after offset `since`."""
        pattern = re.compile(r"^thatchd: invocation function=(\S+) .*\bstatus=(\S+)", re.M)
        return [status for name, status in pattern.findall(self.log()[since:]) if name == function]

    def remove_firewall_table(self):
        # As sandbox::egressTableName and egressRulesetRemoval: "add" first, so
        # that deleting a table that is not there does not fail the script.
        table = "thatch_" + re.sub(r"[^A-Za-z0-9]", "_", f"thatch/{self.cgroup_name}")
        script = "".join(f"add table {f} {table}\ndelete table {f} {table}\n" for f in ("inet", "bridge"))
        subprocess.run(["/usr/sbin/nft", "-f", "-"], input=script.encode(), capture_output=True)


# --- cgroups ----------------------------------------------------------------


def own_cgroup_dirs():
    """This process's cgroup directory in every mounted hierarchy (v1 and v2)."""
    memberships = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            memberships[controllers] = path
    dirs = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            separator = fields.index("-")
            fstype, options = fields[separator + 1], fields[separator + 3]
            root, mount_point = fields[3], fields[4]
            if fstype == "cgroup2":
                path = memberships.get("")
            elif fstype == "cgroup":
                options = set(options.split(","))
                path = next((p for c, p in memberships.items() if c and set(c.split(",")) <= options), None)
            else:
                continue
            if path is None or not (path + "/").startswith(root.rstrip("/") + "/"):
                continue
            dirs.append(os.path.normpath(mount_point + path[len(root.rstrip("/")):]))
    return dirs


def _read_procs(cgroup_dir):
    try:
        with open(os.path.join(cgroup_dir, "cgroup.procs")) as f:
            return [int(pid) for pid in f.read().split()]
    except FileNotFoundError:
        return []


def remove_cgroups(tops):
    """Kills every process in the cgroup trees `tops` and removes them."""
    tops = [top for top in tops if os.path.isdir(top)]
    trees = [[path for path, _, _ in os.walk(top)] for top in tops]  # top-down
    # A frozen (v1) process takes SIGKILL only once thawed.
    for tree in trees:
        for path in tree:
            if os.path.exists(os.path.join(path, "freezer.state")):
                with open(os.path.join(path, "freezer.state"), "w") as f:
                    f.write("THAWED")

    def emptied():
        listed = False
        for path in (path for tree in trees for path in tree):
            for pid in _read_procs(path):
                listed = True
                # Pinned first: a listed process may exit, and its pid be
                # reused outside the cgroup, before it is signalled.
                try:
                    pidfd = os.pidfd_open(pid)
                except ProcessLookupError:
                    continue
                try:
                    if pid in _read_procs(path):
                        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                finally:
                    os.close(pidfd)
        return not listed

    wait_until(emptied, "the test thatchd's cgroups empty")
    for tree in trees:
        for path in reversed(tree):  # children first

            def removed(path=path):
                try:
                    os.rmdir(path)
                except FileNotFoundError:
                    pass
                except OSError as e:  # EBUSY while the kernel finishes tearing processes down
                    if e.errno != errno.EBUSY:
                        raise
                    return False
                return True

            wait_until(removed, f"rmdir {path}")
