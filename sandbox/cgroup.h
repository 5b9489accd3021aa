// Cgroup placement and limits for one sandbox, with cgroup v1 and v2 backends
// behind one interface. The parent creates the cgroup and attaches the child
// before the child runs any untrusted code.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sandbox/spec.h"

namespace sandbox {

// The cgroup freezer: v1's freezer hierarchy (freezer.state), v2's
// cgroup.freeze with the "frozen" key of cgroup.events.
//
// freeze() asks the kernel to stop every process of the cgroup and returns
// at once: v1 writes FROZEN and the cgroup reads FREEZING until every task
// has stopped (each is woken as by a signal and stops in the kernel; one in
// an uninterruptible sleep, e.g. I/O, only once that ends), v2 writes 1 and
// cgroup.events says "frozen 1" once all have stopped. Nothing waits for it: a caller that must
// know re-reads freezerState() (one small read; v2's cgroup.events also signals POLLPRI when it
// changes, v1 has no notification), and a caller that only wants the processes to stop spending
// (thatchd's idle sandboxes) need not look at all. thaw() has completed when it returns: on both
// kernels the write wakes every task and the state reads THAWED (v2: "frozen 0") right after, so a
// request may be sent at once.
//
// A frozen v1 task takes no signal, not even SIGKILL, which stays pending
// until the thaw: the v1 backend thaws before it kills (killAll(),
// remove(), its destructor). v2 delivers fatal signals to frozen tasks.
enum class FreezerState { kThawed, kFreezing, kFrozen };
const char* freezerStateName(FreezerState state);

// Counters of limit breaches since the cgroup was created.
struct CgroupEvents {
  uint64_t oomKills = 0;     // processes killed by the cgroup's OOM killer
  uint64_t pidsMaxHits = 0;  // fork/clone refused by the pids limit
};

// One sandbox's cgroup (one directory per hierarchy on v1, one on v2). A
// resource: the destructor kills whatever still runs in it and removes it.
class Cgroup {
 public:
  virtual ~Cgroup() = default;

  // Moves `pid` (all its threads) into the cgroup.
  virtual void attach(pid_t pid) = 0;

  // Also re-arms eventFds(): the kernel signals a kernfs fd until it is read
  // again, and an eventfd until it is drained, so events() does both.
  virtual CgroupEvents events() const = 0;

  // File descriptors that become readable (POLLIN) or signal POLLPRI when
  // events() may have changed; the caller polls them and then re-reads
  // events(). May be empty, in which case the caller polls events() itself.
  // v1: an eventfd for OOM only (v1 pids.events never notifies); v2:
  // memory.events and pids.events (POLLPRI).
  virtual std::vector<int> eventFds() const = 0;

  // SIGKILLs every process in the cgroup (thawing them first where they
  // would not die frozen) and waits until it is empty.
  virtual void killAll() = 0;

  // See FreezerState. freeze() throws where the host has no freezer
  // (CgroupManager::canFreeze()); thaw() then has nothing to do.
  virtual void freeze() = 0;
  virtual void thaw() = 0;
  virtual FreezerState freezerState() const = 0;

  // The memory its processes use now, page cache and kernel memory
  // charged to it included: v1 memory.usage_in_bytes, v2 memory.current.
  virtual uint64_t memoryUsage() const = 0;

  // Replaces the limits (a pre-forked sandbox gets its function's limits
  // when it is claimed). Throws if the kernel refuses, e.g. a memory limit
  // below what the cgroup already uses.
  virtual void setLimits(const CgroupLimits& limits) = 0;

  // Where it lives (for logs and tests): one path per hierarchy.
  virtual std::vector<std::string> paths() const = 0;
};

// A cgroup backend: where sandboxes' cgroups are created.
class CgroupManager {
 public:
  virtual ~CgroupManager() = default;

  // Creates the cgroup `name` (a single path component) with `limits`.
  virtual std::unique_ptr<Cgroup> create(const std::string& name, const CgroupLimits& limits) = 0;

  // Kills the processes of (thawed first, as killAll() does), and removes,
  // the cgroup `name` if it exists (a crashed predecessor's leftover); does nothing if
  // it does not.
  virtual void remove(const std::string& name) = 0;

  // The cgroup `name` seen from a process that did not create it (thatchd,
  // whose sandboxes' cgroups the zygote creates and names for it): the
  // Cgroup calls of the same names, on small control files (no waiting, so
  // they may run on an event loop). Throw when `name` does not exist.
  // Whether this host can freeze: v1 needs the freezer hierarchy mounted
  // (an optional one: without it, sandboxes are placed all the same), v2
  // has cgroup.freeze in every cgroup.
  virtual bool canFreeze() const = 0;
  virtual void freeze(const std::string& name) = 0;
  virtual void thaw(const std::string& name) = 0;
  virtual FreezerState freezerState(const std::string& name) const = 0;
  virtual uint64_t memoryUsage(const std::string& name) const = 0;
  // The name of the cgroup under the parent directory that holds `pid`
  // (from /proc/<pid>/cgroup), or "" if it is in none of them.
  virtual std::string nameOf(pid_t pid) const = 0;

  // Kills the processes of, and removes, every cgroup this manager's parent
  // directory holds (what a crashed predecessor left). Returns their names.
  virtual std::vector<std::string> removeStale() = 0;

  // The names of the cgroups currently under the parent directory.
  virtual std::vector<std::string> list() const = 0;

  virtual std::string describe() const = 0;  // e.g. "cgroup v1 (memory, pids, cpu) under ..."
};

// cgroup v1: one parent directory per controller (memory, pids, cpu, and
// freezer where it is mounted).
struct CgroupV1Layout {
  std::string memoryParent;  // e.g. /sys/fs/cgroup/memory/<own>/thatch
  std::string pidsParent;
  std::string cpuParent;
  std::string freezerParent;  // "": no freezer hierarchy, sandboxes cannot be frozen
};
// Creates the parent directories when missing.
std::unique_ptr<CgroupManager> makeCgroupV1(const CgroupV1Layout& layout);

// cgroup v2: one parent directory in the unified hierarchy, created when
// missing. The backend enables +memory +pids +cpu in the subtree_control of
// the parent, and of its ancestors up to the mount root where they lack them.
std::unique_ptr<CgroupManager> makeCgroupV2(const std::string& parent);

// Detects the host's layout from /proc/self/mountinfo and /proc/self/cgroup
// and places sandboxes in `<own cgroup>/<subdir>` (or under `parentOverride`,
// a path relative to each hierarchy's root, when it is not empty). Prefers v1
// when memory, pids and cpu are all mounted as v1 (and then uses the v1
// freezer too, if mounted); otherwise v2 if the unified hierarchy offers
// them. Throws with a clear message when neither works.
std::unique_ptr<CgroupManager> detectCgroups(const std::string& subdir = "thatch",
                                             const std::string& parentOverride = "");

// ---------------------------------------------------------------------------
// Detection in pieces that take file contents, so that tests can feed them
// other hosts' layouts.

// One cgroup filesystem mount, from a line of /proc/self/mountinfo.
struct CgroupMount {
  std::string mountPoint;                // e.g. /sys/fs/cgroup/memory
  std::string root;                      // the part of the hierarchy mounted there, usually "/"
  bool unified = false;                  // cgroup2
  std::vector<std::string> controllers;  // v1 only: from the super options
};
std::vector<CgroupMount> parseCgroupMounts(std::string_view mountinfo);

// One line of /proc/<pid>/cgroup: the process's cgroup in one hierarchy.
struct CgroupMembership {
  std::vector<std::string> controllers;  // empty for the unified hierarchy
  std::string path;                      // relative to the hierarchy's root
};
std::vector<CgroupMembership> parseProcCgroup(std::string_view procCgroup);

struct CgroupPlan {
  enum class Version { kV1, kV2 };
  Version version = Version::kV1;
  CgroupV1Layout v1;     // kV1 only
  std::string v2Parent;  // kV2 only
};
// The decision detectCgroups() makes. `readFile` reads the unified mount's
// cgroup.controllers (returning "" when it cannot).
CgroupPlan planCgroups(std::string_view mountinfo, std::string_view procCgroup,
                       const std::function<std::string(const std::string&)>& readFile,
                       const std::string& subdir, const std::string& parentOverride);

// cgroup v2's "no internal processes" rule: a cgroup that holds processes
// cannot enable controllers for its children. A daemon started by systemd
// (Delegate=yes) sits in its service's cgroup, and its sandboxes' cgroups go
// below that one; so it first moves itself into a leaf child. This is the
// cgroup to leave (relative to the v2 hierarchy): its own under cgroup v2,
// "" under v1 (no such rule) or in the root cgroup (exempt from it).
std::string cgroupToLeave(std::string_view mountinfo, std::string_view procCgroup,
                          const std::function<std::string(const std::string&)>& readFile);

// Moves this process into `leaf` below the cgroup cgroupToLeave() names,
// and returns that cgroup, which is then the parent to give detectCgroups()
// (`parentOverride`, with the subdirectory appended); "" when nothing moved
// and nothing had to. A process that an earlier call moved (a program that
// starts thatch in process again) stays in its leaf: the same parent again.
std::string moveIntoLeafCgroup(const std::string& leaf);

// The cgroup above `cgroup` ("/" at the top) when `cgroup` is a leaf named
// `leaf`, else "".
std::string parentIfInLeaf(std::string_view cgroup, std::string_view leaf);

// The move itself: `pid` into `dir`/`leaf` (created if need be), for a
// cgroup v2 directory `dir` (a fake tree in tests).
void moveIntoLeaf(const std::string& dir, const std::string& leaf, pid_t pid);

// ---------------------------------------------------------------------------
// Control-file helpers shared by the two backends (cgroup.cc).
namespace cgroupfs {

// Writes `value` to a control file. Opens with O_CREAT: a no-op on cgroupfs,
// where the kernel made the file, and what lets the backends run against a
// plain directory tree in unit tests.
void writeControl(const std::string& path, std::string_view value);
// Reads a whole control file (no O_CREAT); throws when it is missing.
std::string readControl(const std::string& path);
// A control file that holds one unsigned number (memory.usage_in_bytes).
uint64_t readNumber(const std::string& path);
// Reads a whole file from offset 0 through an open fd.
std::string readControlFd(int fd, const std::string& pathForErrors);
// The value of `key` in "key value" lines (memory.events, pids.events,
// memory.oom_control); 0 when absent.
uint64_t keyedValue(std::string_view text, std::string_view key);

// What CgroupManager::nameOf() returns, for the hierarchy of `controller`
// ("" = the unified one) whose sandboxes' cgroups are under `parent`.
std::string childHolding(pid_t pid, std::string_view controller, const std::string& parent);
// Whitespace-separated words (cgroup.controllers, cgroup.subtree_control).
std::vector<std::string> words(std::string_view text);
bool exists(const std::string& path);
std::string joinPath(std::string_view dir, std::string_view name);
void makeDirs(const std::string& path);                           // mkdir -p
std::vector<std::string> subdirectories(const std::string& dir);  // sorted names
// Throws std::invalid_argument unless `name` is one usable path component.
void checkCgroupName(const std::string& name);
// Also checks that `limits` are values the kernel accepts; called before
// anything is created.
void checkCgroupRequest(const std::string& name, const CgroupLimits& limits);
// cpu quota per 100 ms period for `cpus` cores; -1 for 0 (no limit).
long long cpuQuotaMicros(double cpus);
constexpr long long kCpuPeriodMicros = 100000;

// SIGKILLs every process listed in the cgroup.procs of `dirs` until all are
// empty (a missing directory counts as empty). Throws if they never empty.
void killAllIn(const std::vector<std::string>& dirs);
// rmdir, retrying EBUSY while the kernel finishes tearing processes down.
void removeDir(const std::string& dir);

// A cgroup directory this process made. The destructor kills what runs in it
// and removes it, logging (never throwing) on failure.
class OwnedDir {
 public:
  explicit OwnedDir(std::string path);  // mkdir; throws if it exists
  ~OwnedDir();
  OwnedDir(const OwnedDir&) = delete;
  OwnedDir& operator=(const OwnedDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(std::string_view name) const { return joinPath(path_, name); }

 private:
  std::string path_;
};

}  // namespace cgroupfs
}  // namespace sandbox
