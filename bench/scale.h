// scale-bench: thatch on one host at scale, each figure beside a baseline
// measured in the same run and the target it is judged against
// (docs/performance.md).
//
//   density  N warm sandboxes prewarmed through thatchd: time, memory each
//            (beside bare python3 processes and the zygote alone), thatchd
//            answering throughout, and its stop;
//   churn    every call cold, 1, 4 and 16 clients, beside as many parallel
//            loops of bwrap; leaks afterwards;
//   burst    F distinct functions invoked at once, cold, then again warm.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tests/daemon.h"

namespace bench {

// Each part prints its figures; false if it failed (said on stderr).
bool density();
bool churn();
bool burst();

// --- What the parts share (scale_bench.cc) ------------------------------------

// The [[runtime]] table of thatchd's default python3.11 runtime (its stem
// cells included: the parts measure thatchd as it ships).
std::string defaultRuntimeToml();

// A thatchd of the tests' kind (tests/daemon.h) with `configToml` and
// `runtimeToml` (by default thatchd's default python3.11 runtime).
std::unique_ptr<testing_util::TestDaemon> startDaemon(
    const std::string& configToml, const std::string& runtimeToml = defaultRuntimeToml());

uint64_t memAvailableKiB();

// What this process's own memory cgroup is charged (its processes and
// theirs, kernel memory included), KiB: unlike MemAvailable, other
// sessions on the host do not move it (where the host gives each session a
// cgroup of its own).
uint64_t cgroupMemoryKiB();

// The two, read together: a before or an after.
struct MemoryReading {
  uint64_t availableKiB = memAvailableKiB(), cgroupKiB = cgroupMemoryKiB();
};

// From /proc/PID/smaps_rollup: the proportional set and the unique one
// (Private_Clean + Private_Dirty + Private_Hugetlb), KiB; zero if it is gone.
struct ProcessMemory {
  uint64_t pssKiB = 0, ussKiB = 0;
};
ProcessMemory processMemory(pid_t pid);

// The memory-hierarchy directory of a daemon's cgroups for `runtime`
// (its zygote's; its sandboxes' are below it).
std::string runtimeCgroupDir(const testing_util::TestDaemon& daemon,
                             const std::string& runtime = "python3.11");

// The children of process `pid`.
std::vector<pid_t> childrenOf(pid_t pid);

// The cgroup directories below `subdir` of this process's own cgroup, in
// each of the memory, pids and cpu hierarchies (v1) and the unified one,
// deepest first: what a stopped thatchd left of its sandboxes' and
// zygotes' cgroups. (The test daemon's clean-up removes `subdir` and its
// children, not what is further below, which a killed thatchd leaves.)
std::vector<std::string> cgroupDirectoriesBelow(const std::string& subdir);

// The pids in the cgroup directory `dir` (its cgroup.procs).
std::vector<pid_t> cgroupProcesses(const std::string& dir);

// The names of the subdirectories of `dir` that start with `prefix`.
std::vector<std::string> subdirectoriesStartingWith(const std::string& dir,
                                                    const std::string& prefix);

// Thousands separated, for figures people read: 12,345.
std::string grouped(double value);

}  // namespace bench
