// What thatchd asks a zygote for: a function version's sandbox, named and
// described as Lambda names its execution environments (the ARN, the log
// group and stream the handler's context reports), and the stem cells'
// template. The spec itself comes from rootfs::sandboxSpec().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/zygote_control.h"
#include "sandbox/idmap.h"
#include "sandbox/spec.h"
#include "supervisor/config.h"
#include "supervisor/registry.h"

namespace supervisor {

struct SandboxRequest {
  const FunctionVersion& version;
  uint64_t sandboxId;
  const sandbox::IdLease& lease;
  uint64_t memoryBytes;  // the function's, else the default
  // Random per thatchd, in egress veth names: the kernel removes a dead
  // sandbox's veth in the background, so a name from the id alone could
  // still be taken by a predecessor's.
  unsigned vethTag;
};

// What a sandbox keeps from the config and its function's settings once it
// is spawned: the cgroup's limits, its channel's size, what its environment
// and context say. A sandbox whose settings a new config changes retires
// (Supervisor::reconfigure); anything read per invocation is not here.
struct SandboxSettings {
  uint64_t memoryBytes = 0;  // the function's, else the default
  uint64_t pids = 0;
  double cpus = 0;
  uint64_t resultBytes = 0;
  uint64_t logBytes = 0;
  std::string region;
  std::string accountId;
  bool operator==(const SandboxSettings&) const = default;
};
SandboxSettings sandboxSettings(const FunctionConfig& function, const Config& config);

// `lambda`: the region and account in the function's ARN and environment.
runtime::SpawnParams spawnParams(const SandboxRequest& request, const LimitsConfig& defaults,
                                 const LambdaConfig& lambda);

// The environment Lambda gives a Python function (AWS_LAMBDA_FUNCTION_NAME,
// _HANDLER, LAMBDA_TASK_ROOT, TZ, ...), as "NAME=value", from what its
// context reports; spawnParams() adds the function's own after them.
std::vector<std::string> lambdaEnvironment(const runtime::FunctionInfo& function,
                                           const FunctionConfig& config, const std::string& region);

// The stem cells' template: a function with the default limits; requests
// with other limits still claim them (docs/runtime.md).
sandbox::Spec stemCellTemplate(const Config& config);

}  // namespace supervisor
