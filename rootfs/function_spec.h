// The sandbox a function runs in: the default root with its code at
// /var/task, default rlimits, its limits, and the host id it was leased.
#pragma once

#include <string>

#include "rootfs/plan.h"
#include "sandbox/spec.h"

namespace rootfs {

struct FunctionSandbox {
  std::string codeDir;  // host directory, readable by the sandbox's host uid
  uid_t hostId = 0;     // from sandbox::IdAllocator
  sandbox::CgroupLimits limits{256ull << 20, 64, 0};
  uint64_t tmpSizeBytes = 64ull << 20;
  sandbox::NetMode net = sandbox::NetMode::kNone;
};

// Without seccomp: whoever runs it adds the compiled program.
sandbox::Spec functionSpec(const FunctionSandbox& function);

}  // namespace rootfs
