#include "rootfs/sandbox_spec.h"

#include <algorithm>

#include "sandbox/network.h"
#include "sandbox/rlimits.h"

namespace rootfs {

sandbox::Spec sandboxSpec(const SandboxShape& shape) {
  sandbox::Spec spec;
  spec.hostname = shape.hostname;
  spec.ids.hostUid = spec.ids.hostGid = shape.hostId;
  spec.limits = shape.limits;
  Options root;
  root.codeDir = shape.codeDir;
  root.layerDirs = shape.layerDirs;
  root.tmpSizeBytes = shape.tmpSizeBytes;
  root.tmpNoexec = shape.tmpNoexec;
  root.network = shape.net == sandbox::NetMode::kEgress;
  root.hostname = shape.hostname;
  root.uid = spec.ids.insideUid;
  root.gid = spec.ids.insideGid;
  root.binds = shape.binds;
  spec.mounts = defaultPlan(root);
  // /tmp's size is the bound that reports ENOSPC; the file size limit stays
  // above it and only bounds writable binds.
  spec.rlimits =
      sandbox::withRlimit(sandbox::defaultRlimits(), RLIMIT_FSIZE,
                          std::max<uint64_t>(1ull << 30, shape.tmpSizeBytes + (1 << 20)));
  spec.net.mode = shape.net;
  if (shape.net == sandbox::NetMode::kEgress)
    spec.net.egress.sandboxAddress =
        sandbox::egressAddress(spec.net.egress.bridgeAddress, shape.idSlot);
  spec.cwd = shape.cwd;
  return spec;
}

}  // namespace rootfs
