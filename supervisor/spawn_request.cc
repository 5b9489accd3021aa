#include "supervisor/spawn_request.h"

#include <cstdio>

#include "rootfs/sandbox_spec.h"
#include "sandbox/egress_rules.h"

namespace supervisor {

runtime::SpawnParams spawnParams(const SandboxRequest& request, const LimitsConfig& defaults,
                                 const LambdaConfig& lambda) {
  const FunctionVersion& version = request.version;
  const FunctionConfig& fn = version.config;
  runtime::SpawnParams params;
  rootfs::SandboxShape shape;
  shape.codeDir = version.codeDir;
  shape.layerDirs = version.layerDirs;
  shape.hostId = request.lease.hostId();
  shape.idSlot = request.lease.slot();  // the egress address follows it
  shape.limits = {request.memoryBytes, defaults.pids, defaults.cpus};
  shape.tmpNoexec = fn.tmpNoexec;
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
  params.function.name = version.name;
  params.function.version = std::to_string(version.version);
  params.function.memoryLimitMb = request.memoryBytes >> 20;
  params.function.invokedFunctionArn = "arn:aws:lambda:" + lambda.region + ":" + lambda.accountId +
                                       ":function:" + version.name + ":" + params.function.version;
  params.function.logGroupName = "/thatch/" + version.name;
  params.function.logStreamName = params.names.cgroupName;
  params.function.raw = fn.raw;
  params.function.logLimitBytes = defaults.logBytes;
  params.env = lambdaEnvironment(params.function, fn, lambda.region);
  // The function's own on top (none of them can be one of Lambda's: those
  // names are reserved, validateFunctionConfig()).
  for (const auto& [key, value] : fn.env) params.env.push_back(key + "=" + value);
  return params;
}

std::vector<std::string> lambdaEnvironment(const runtime::FunctionInfo& function,
                                           const FunctionConfig& config,
                                           const std::string& region) {
  std::vector<std::string> env;
  if (config.layers.empty()) {
    env.push_back("PATH=/usr/local/bin:/usr/bin:/bin");
  } else {
    // Where Lambda looks into its layers; without any there is no /opt.
    env.push_back("PATH=/usr/local/bin:/usr/bin:/bin:/opt/bin");
    env.push_back("LD_LIBRARY_PATH=/opt/lib");
  }
  env.insert(env.end(),
             {
                 "LANG=C.UTF-8",
                 "TZ=:UTC",
                 "LAMBDA_TASK_ROOT=/var/task",
                 "LAMBDA_RUNTIME_DIR=/var/runtime",
                 "_HANDLER=" + config.handler,
                 "AWS_EXECUTION_ENV=AWS_Lambda_" + config.runtime,
                 "AWS_LAMBDA_FUNCTION_NAME=" + function.name,
                 "AWS_LAMBDA_FUNCTION_VERSION=" + function.version,
                 "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + std::to_string(function.memoryLimitMb),
                 "AWS_LAMBDA_LOG_GROUP_NAME=" + function.logGroupName,
                 "AWS_LAMBDA_LOG_STREAM_NAME=" + function.logStreamName,
                 "AWS_LAMBDA_INITIALIZATION_TYPE=on-demand",
                 "AWS_REGION=" + region,
                 "AWS_DEFAULT_REGION=" + region,
             });
  return env;
}

SandboxSettings sandboxSettings(const FunctionConfig& function, const Config& config) {
  const LimitsConfig& defaults = config.limits;
  return {function.memoryBytes ? function.memoryBytes : defaults.memoryBytes,
          defaults.pids,
          defaults.cpus,
          defaults.resultBytes,
          defaults.logBytes,
          config.lambda.region,
          config.lambda.accountId};
}

sandbox::Spec stemCellTemplate(const Config& config) {
  rootfs::SandboxShape stem;
  stem.codeDir = config.stateDir;
  stem.limits = {config.limits.memoryBytes, config.limits.pids, config.limits.cpus};
  return rootfs::sandboxSpec(stem);
}

}  // namespace supervisor
