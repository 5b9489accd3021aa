// Small helpers shared by the test suites.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

namespace testing_util {

// A fresh directory under $TMPDIR (or /tmp), removed recursively on
// destruction (unmounting nothing: tests that mount clean up themselves).
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "thatch-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A tmpfs mounted over `dir` (mount(2)'s `options`, e.g. "size=1m"),
// unmounted on destruction. Throws std::runtime_error if it cannot mount.
class TmpfsMount {
 public:
  TmpfsMount(const std::string& dir, const std::string& options);
  ~TmpfsMount();
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;
  // Bytes in use on it (statfs).
  uint64_t usedBytes() const;

 private:
  std::string dir_;
};

std::string readFile(const std::string& path);
void writeFile(const std::string& path, const std::string& contents);
// The names in a directory but those that begin with '.'; none if it is not one.
std::set<std::string> directoryEntries(const std::string& path);
bool exists(const std::string& path);

struct CommandResult {
  int exitCode = -1;  // 128+signal if signalled
  std::string out;
  std::string err;
};
// Runs argv (no shell) with `input` on stdin, capturing stdout and stderr.
CommandResult run(const std::vector<std::string>& argv, const std::string& input = "");

// The directory holding the test binaries (from /proc/self/exe).
std::string testBinDir();

// The source tree (two levels above testBinDir()), canonical: thatchd keeps
// a directory deploy's path as given. And examples/NAME in it.
std::string repoRoot();
std::string example(const std::string& name);

// A handler that forks until its pids limit stops it (too_many_processes).
inline constexpr const char kForkBombHandler[] = R"PY(
import os, time
def handler(event, context):
    while True:
        try:
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
        except OSError:
            time.sleep(0.01)
)PY";

// Of a thread of this process: its voluntary context switches so far (each
// time it went to sleep), and its scheduler state ('R', 'S', ...).
long voluntarySwitches(pid_t tid);
char schedulerState(pid_t tid);
// Bytes written to `fd`, a unix stream socket, that its peer has not read.
int unreadBytes(int fd);

// Checks `condition` every 10 ms until it holds (true) or `bound` has
// passed (false). The bound is for failing, not for waiting: wait for an
// event this way, never for a time.
bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds bound = std::chrono::seconds(60));

// A handler that names its process event["name"], which the host sees as
// the process's /proc/PID/comm (processesNamed()), then returns the name:
// the test knows when it runs, and which host process is its sandbox. With
// event["spin"] it spins instead; with event["hold"] it returns once the
// test has called release() on it.
inline constexpr const char kNamingHandler[] = R"PY(
import ctypes, signal, time
released = False
def release(signum, frame):
    global released
    released = True
def handler(event, context):
    global released
    released = False
    signal.signal(signal.SIGUSR1, release)  # before it can be seen to run
    ctypes.CDLL(None).prctl(15, event["name"].encode(), 0, 0, 0)  # PR_SET_NAME
    while event.get("spin"):
        pass
    while event.get("hold") and not released:
        time.sleep(0.001)
    return event["name"]
)PY";
// Its event: {"name": name} and `flag` (spin, hold) true, if any.
std::string namingEvent(const std::string& name, const std::string& flag = "");
// Lets a handler that holds (as kNamingHandler does) in process `pid`
// return: SIGUSR1, which it handles (the init of a pid namespace gets no
// other signal from outside).
void release(pid_t pid);

// A process name (at most the kernel's 15 bytes) that no other process on
// the host has, this test process's or another's.
std::string uniqueProcessName();
// The host pids of the processes named `name`.
std::vector<pid_t> processesNamed(const std::string& name);
// Where thatch's tests put their cgroups in the v1 hierarchy of
// `controller`: `thatch` below this process's own cgroup.
std::string thatchCgroupDir(const std::string& controller);
// The directory of the cgroup of `pid` in the memory hierarchy (v1), or in
// the unified one (v2); "" if it has gone.
std::string memoryCgroupOf(pid_t pid);

// The cgroups below `subdir` of this process's own (memory hierarchy, or
// the unified one) that hold a process, as paths relative to `subdir`
// starting with "/".
std::vector<std::string> cgroupsWithProcessesBelow(const std::string& subdir);

// What sandboxes could leave behind on the host, to compare before/after.
// Where the host gives this process's session a memory cgroup of its own,
// the processes (and their network namespaces) and cgroups are those in or
// below it (other sessions' test runs come and go beside it); the mounts
// and links are the whole host's.
struct HostState {
  size_t mounts = 0;                       // in this process's mount namespace
  std::set<ino_t> netns;                   // network namespaces of all processes
  std::set<std::string> sandboxProcesses;  // pids owned by a sandbox uid (>= 1000000000)
  std::set<std::string> cgroups;           // under <own cgroup>/thatch, per controller
  std::set<std::string> links;             // network interfaces of the host
  std::set<std::string> firewallTables;    // nftables tables of this process's thatchds

  bool operator==(const HostState&) const = default;
};
HostState snapshot();

// The nftables tables (of this network namespace) whose names begin with
// `prefix`, as "FAMILY NAME".
std::set<std::string> firewallTables(const std::string& prefix);

// Nanoseconds on CPU of every thread of `pid` (/proc/PID/task/*/schedstat).
uint64_t cpuNs(pid_t pid);
// The freezer cgroup directory of `pid` (cgroup v1), "" if none.
std::string freezerDirOf(pid_t pid);
// freezer.state in `dir`: "THAWED", "FREEZING" or "FROZEN".
std::string freezerState(const std::string& dir);

// What `after` holds that `before` did not, one line per kind, "" when
// nothing: sandbox processes (any), cgroups, mounts, network namespaces and
// firewall tables.
std::string leftBehind(const HostState& before, const HostState& after);

}  // namespace testing_util
