// The namespaces a sandbox lives in: the parent's clone3 (sandbox/sandbox.cc),
// and the child's "cgroupns" and "hostname" steps (sandbox/confine.cc).
#pragma once

#include <sys/types.h>

#include "base/fd.h"
#include "sandbox/spec.h"

namespace sandbox {

// user, pid, mount, ipc, uts, and net unless the sandbox joins a pooled
// empty network namespace. The cgroup namespace is created later by the child
// itself (enterCgroupNamespace), once the parent has placed it in its cgroup,
// so that the namespace's root is the sandbox's own cgroup.
unsigned long namespaceFlags(const NetSpec& net);

struct ClonedChild {
  pid_t pid = 0;   // 0 in the child
  base::Fd pidfd;  // parent only
};

// clone3() with `flags` and CLONE_PIDFD, fork-like (no new stack): returns
// twice, pid 0 in the child.
ClonedChild cloneWithNamespaces(unsigned long flags);

// Child side, after cgroup placement.
void enterCgroupNamespace();

// Child side: the sandbox's own hostname (and domain name) in its UTS namespace.
void setHostname(const std::string& hostname);

}  // namespace sandbox
