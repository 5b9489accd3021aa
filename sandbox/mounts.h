// Step 4 of the confinement: build the sandbox's root from the mount plan,
// pivot into it and detach the host's root.
#pragma once

#include <vector>

#include "sandbox/spec.h"

namespace sandbox {

// Child side, in a fresh mount namespace with CAP_SYS_ADMIN over it:
// 1. makes every mount private, so nothing propagates to or from the host;
// 2. opens every bind source (before anything covers it);
// 3. mounts a tmpfs root on a staging directory and applies `plan` in order;
// 4. pivot_root()s into it, detaches the old root, and remounts `/` read-only.
// Every mount is nosuid,nodev (device binds excepted) and honours the
// entry's readOnly/noexec.
void buildRoot(const std::vector<MountEntry>& plan);

}  // namespace sandbox
