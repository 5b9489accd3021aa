// The confinement of one process, as the ordered list of its steps. The
// child runs confine(); the parent (sandbox.h) does the steps that need host
// privileges (uid/gid maps, cgroup placement, egress network) while the
// child waits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sandbox/spec.h"

namespace sandbox {

// The child's ends of its two pipes to the parent.
// When each step ended (CLOCK_MONOTONIC), for the cold-start breakdown.
struct StepClock {
  static constexpr int kMaxSteps = 16;
  const char* names[kMaxSteps] = {};
  uint64_t endNs[kMaxSteps] = {};
  int count = 0;
};

struct ChildChannel {
  int syncFd = -1;             // read: one byte = "maps, cgroup and network are ready";
                               // POLLHUP = the parent is gone
  int reportFd = -1;           // write: a StepFailure record; closed (by exec) on success
  int keepFd = -1;             // survives the "fds" step too (e.g. an invocation channel)
  StepClock* clock = nullptr;  // filled in when set
};

uint64_t monotonicNs();

// A fixed-size record, written in one write(2) (< PIPE_BUF, so atomic).
struct StepFailure {
  char step[24];
  int error;  // errno, 0 if none
  char message[228];
};

// Child side. Applies, in order:
//   signals      default dispositions, empty mask, die with the parent
//   sync         wait until the parent has written the id maps, placed the
//                child in its cgroup and configured its network
//   cgroupns     a cgroup namespace rooted at the sandbox's own cgroup
//   loopback     `lo` up, in a network namespace of its own without egress
//                (the parent configures egress and pooled namespaces)
//   user         the unprivileged sandbox uid/gid, no supplementary groups
//                (capabilities in the namespace are kept until dropped below)
//   mounts       the rootfs plan, pivot_root, old root detached
//   hostname     the sandbox's own
//   rlimits
//   capabilities all dropped, securebits locked, no_new_privs
//   seccomp      the precompiled filter
//   fds          everything but stdio, `channel.reportFd` and `keepFd` is closed
//   cwd
// On failure it reports the step and errno on channel.reportFd and _exits;
// it never returns to the caller with a partial confinement.
void confine(const Spec& spec, const ChildChannel& channel);

// Child side, after confine(): execs argv[0] (searched in `env`'s PATH when
// it has no slash) with exactly `env`. Reports step "exec" on failure.
[[noreturn]] void execInSandbox(const std::vector<std::string>& argv,
                                const std::vector<std::string>& env, const ChildChannel& channel);

// Exit status of a child whose confinement failed (documented in thatch-run).
constexpr int kConfinementFailedExit = 125;

// The byte the child writes on channel.reportFd once every step is done,
// before its body (exec, or the zygote's sandbox): a death after it is the
// body's, one before it is a failed set-up, however late the parent reads.
// (A StepFailure starts with a step's name: never this byte.)
constexpr char kConfinedMarker = 1;

// Child side: writes a StepFailure and _exits with kConfinementFailedExit.
[[noreturn]] void failStep(const ChildChannel& channel, const char* step, int error,
                           const std::string& message);

}  // namespace sandbox
