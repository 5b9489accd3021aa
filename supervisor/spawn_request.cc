#include "supervisor/spawn_request.h"

#include <cstdio>

#include "rootfs/sandbox_spec.h"
#include "sandbox/egress_rules.h"

namespace supervisor {

runtime::SpawnParams spawnParams(const SandboxRequest& request, const LimitsConfig& defaults) {
  const FunctionVersion& version = request.version;
  const FunctionConfig& fn = version.config;
  runtime::SpawnParams params;
  rootfs::SandboxShape shape;
  shape.codeDir = version.codeDir;
  shape.hostId = request.lease.hostId();
  shape.idSlot = request.lease.slot();  // the egress address follows it
  shape.limits = {request.memoryBytes, defaults.pids, defaults.cpus};
  shape.net = fn.network == Network::kEgress ? sandbox::NetMode::kEgress : sandbox::NetMode::kNone;
  params.spec = rootfs::sandboxSpec(shape);
  params.names.cgroupName = "sbx-" + std::to_string(request.sandboxId);
  if (shape.net == sandbox::NetMode::kEgress) {
    char veth[16];
    snprintf(veth, sizeof veth, "%s%05x%07llx", sandbox::kEgressVethPrefix,
             request.vethTag & 0xfffff,
             static_cast<unsigned long long>(request.sandboxId & 0xfffffff));
    params.names.hostVethName = veth;
  }
  params.handler = fn.handler;
  params.env.push_back("PATH=/usr/local/bin:/usr/bin:/bin");
  for (const auto& [key, value] : fn.env) params.env.push_back(key + "=" + value);
  params.function.name = version.name;
  params.function.version = std::to_string(version.version);
  params.function.memoryLimitMb = request.memoryBytes >> 20;
  params.function.invokedFunctionArn =
      "arn:thatch:function:" + version.name + ":" + params.function.version;
  params.function.logGroupName = "/thatch/" + version.name;
  params.function.logStreamName = params.names.cgroupName;
  params.function.raw = fn.raw;
  params.function.logLimitBytes = defaults.logBytes;
  return params;
}

sandbox::Spec stemCellTemplate(const Config& config) {
  rootfs::SandboxShape stem;
  stem.codeDir = config.stateDir;
  stem.limits = {config.limits.memoryBytes, config.limits.pids, config.limits.cpus};
  return rootfs::sandboxSpec(stem);
}

}  // namespace supervisor
