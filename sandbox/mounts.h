// The confinement's "mounts" step (sandbox/confine.cc): build the sandbox's
// root from the mount plan, pivot into it and detach the host's root.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "sandbox/spec.h"

namespace sandbox {

// Child side, in a fresh mount namespace with CAP_SYS_ADMIN over it:
// 1. makes every mount private, so nothing propagates to or from the host;
// 2. opens every bind source and overlay lower directory (before anything
//    covers it);
// 3. mounts a tmpfs root on a staging directory and applies `plan` in order;
// 4. pivot_root()s into it, detaches the old root, and remounts `/` read-only.
// Every mount is nosuid,nodev (device binds excepted) and honours the
// entry's readOnly/noexec.
void buildRoot(const std::vector<MountEntry>& plan);

// Parent side (host root), for a sandbox that is already confined: binds the
// host path `source` at `target` (an existing directory) inside the mount
// namespace of `sandboxPid`, read-only, nosuid, nodev. This is how a
// pre-forked sandbox gets its function's code when it is claimed. The caller
// must be single-threaded (it enters the sandbox's mount namespace for the
// duration) and ends up with "/" as its working directory.
void bindIntoSandbox(pid_t sandboxPid, const std::string& source, const std::string& target);

}  // namespace sandbox
