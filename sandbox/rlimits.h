// The confinement's "rlimits" step (sandbox/confine.cc): resource limits,
// table-driven.
#pragma once

#include <vector>

#include "sandbox/spec.h"

namespace sandbox {

// The defaults for a sandbox: no core dumps, bounded open files, file size,
// stack and processes (the cgroup pids limit is the real bound; nproc is a
// second line counted per host uid).
std::vector<Rlimit> defaultRlimits();

// Returns a copy of `limits` with `resource` set to soft = hard = value.
std::vector<Rlimit> withRlimit(std::vector<Rlimit> limits, int resource, rlim_t value);

// Child side: applies each limit in order.
void applyRlimits(const std::vector<Rlimit>& limits);

// "RLIMIT_NOFILE" etc., for messages.
const char* rlimitName(int resource);

}  // namespace sandbox
