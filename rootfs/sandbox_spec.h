// The one place a sandbox's spec is built, for a function's sandbox (in
// thatchd, and the stem cells' template) and for thatch-run: the default
// root with the code at /var/task, default rlimits, the limits, the host
// id leased for it and its network.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "rootfs/plan.h"
#include "sandbox/spec.h"

namespace rootfs {

struct SandboxShape {
  std::string codeDir;                 // host directory shown read-only at /var/task; empty: none
  std::vector<std::string> layerDirs;  // merged read-only at /opt, a later one's files winning
  // From sandbox::IdLease: the host uid and gid, and the slot that also
  // picks the egress address.
  uid_t hostId = 0;
  unsigned idSlot = 0;
  sandbox::CgroupLimits limits{256ull << 20, 64, 0};
  uint64_t tmpSizeBytes = 64ull << 20;
  bool tmpNoexec = false;
  sandbox::NetMode net = sandbox::NetMode::kNone;
  std::string hostname = "sandbox";
  std::string cwd = "/var/task";  // as on Lambda
  std::vector<Bind> binds;        // thatch-run's --bind and --ro-bind
};

// Without seccomp: whoever runs it adds the compiled program. Throws
// std::invalid_argument for a bad bind.
sandbox::Spec sandboxSpec(const SandboxShape& shape);

}  // namespace rootfs
