#include "rootfs/function_spec.h"

#include "sandbox/rlimits.h"

namespace rootfs {

sandbox::Spec functionSpec(const FunctionSandbox& function) {
  sandbox::Spec spec;
  spec.ids.hostUid = spec.ids.hostGid = function.hostId;
  spec.limits = function.limits;
  Options root;
  root.codeDir = function.codeDir;
  root.tmpSizeBytes = function.tmpSizeBytes;
  root.network = function.net == sandbox::NetMode::kEgress;
  root.uid = spec.ids.insideUid;
  root.gid = spec.ids.insideGid;
  spec.mounts = defaultPlan(root);
  spec.rlimits = sandbox::defaultRlimits();
  spec.net.mode = function.net;
  spec.cwd = "/var/task";  // as on Lambda
  return spec;
}

}  // namespace rootfs
