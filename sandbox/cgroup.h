// Cgroup placement and limits for one sandbox, with cgroup v1 and v2 backends
// behind one interface. The parent creates the cgroup and attaches the child
// before the child runs any untrusted code.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sandbox/spec.h"

namespace sandbox {

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

  virtual CgroupEvents events() const = 0;

  // File descriptors that become readable (POLLIN) or signal POLLPRI when
  // events() may have changed; the caller polls them and then re-reads
  // events(). May be empty, in which case the caller polls events() itself.
  virtual std::vector<int> eventFds() const = 0;

  // SIGKILLs every process in the cgroup and waits until it is empty.
  virtual void killAll() = 0;

  // Where it lives (for logs and tests): one path per hierarchy.
  virtual std::vector<std::string> paths() const = 0;
};

// A cgroup backend: where sandboxes' cgroups are created.
class CgroupManager {
 public:
  virtual ~CgroupManager() = default;

  // Creates the cgroup `name` (a single path component) with `limits`.
  virtual std::unique_ptr<Cgroup> create(const std::string& name, const CgroupLimits& limits) = 0;

  // Kills the processes of, and removes, every cgroup this manager's parent
  // directory holds (what a crashed predecessor left). Returns their names.
  virtual std::vector<std::string> removeStale() = 0;

  // The names of the cgroups currently under the parent directory.
  virtual std::vector<std::string> list() const = 0;

  virtual std::string describe() const = 0;  // e.g. "cgroup v1 (memory, pids, cpu) under ..."
};

// cgroup v1: one parent directory per controller (memory, pids, cpu).
struct CgroupV1Layout {
  std::string memoryParent;  // e.g. /sys/fs/cgroup/memory/<own>/thatch
  std::string pidsParent;
  std::string cpuParent;
};
std::unique_ptr<CgroupManager> makeCgroupV1(const CgroupV1Layout& layout);

// cgroup v2: one parent directory in the unified hierarchy. The backend
// enables +memory +pids +cpu in the subtree_control of the parent.
std::unique_ptr<CgroupManager> makeCgroupV2(const std::string& parent);

// Detects the host's layout from /proc/self/mountinfo and /proc/self/cgroup
// and places sandboxes in `<own cgroup>/<subdir>` (or under `parentOverride`,
// a path relative to each hierarchy's root, when it is not empty). Prefers v1
// when memory, pids and cpu are all mounted as v1; otherwise v2 if the unified
// hierarchy offers them. Throws with a clear message when neither works.
std::unique_ptr<CgroupManager> detectCgroups(const std::string& subdir = "thatch",
                                             const std::string& parentOverride = "");

}  // namespace sandbox
