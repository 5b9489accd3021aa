#include "api/wire.h"

namespace thatch::wire {

namespace schema = thatch::api;
using thatch::Network;
using thatch::Status;

schema::Status statusToWire(Status status) {
  switch (status) {
    case Status::kOk:
      return schema::Status::OK;
    case Status::kHandlerError:
      return schema::Status::HANDLER_ERROR;
    case Status::kBadRequest:
      return schema::Status::BAD_REQUEST;
    case Status::kTimeout:
      return schema::Status::TIMEOUT;
    case Status::kOutOfMemory:
      return schema::Status::OUT_OF_MEMORY;
    case Status::kTooManyProcesses:
      return schema::Status::TOO_MANY_PROCESSES;
    case Status::kResultTooLarge:
      return schema::Status::RESULT_TOO_LARGE;
    case Status::kCrashed:
      return schema::Status::CRASHED;
    case Status::kStartFailed:
      return schema::Status::START_FAILED;
    case Status::kOverloaded:
      return schema::Status::OVERLOADED;
    case Status::kNotFound:
      return schema::Status::NOT_FOUND;
    case Status::kShuttingDown:
      return schema::Status::SHUTTING_DOWN;
  }
  return schema::Status::CRASHED;  // not a Status
}

Status statusFromWire(schema::Status status) {
  switch (status) {
    case schema::Status::OK:
      return Status::kOk;
    case schema::Status::HANDLER_ERROR:
      return Status::kHandlerError;
    case schema::Status::BAD_REQUEST:
      return Status::kBadRequest;
    case schema::Status::TIMEOUT:
      return Status::kTimeout;
    case schema::Status::OUT_OF_MEMORY:
      return Status::kOutOfMemory;
    case schema::Status::TOO_MANY_PROCESSES:
      return Status::kTooManyProcesses;
    case schema::Status::RESULT_TOO_LARGE:
      return Status::kResultTooLarge;
    case schema::Status::CRASHED:
      return Status::kCrashed;
    case schema::Status::START_FAILED:
      return Status::kStartFailed;
    case schema::Status::OVERLOADED:
      return Status::kOverloaded;
    case schema::Status::NOT_FOUND:
      return Status::kNotFound;
    case schema::Status::SHUTTING_DOWN:
      return Status::kShuttingDown;
  }
  return Status::kCrashed;  // a newer peer's outcome
}

schema::NetworkAccess networkToWire(Network network) {
  switch (network) {
    case Network::kNone:
      return schema::NetworkAccess::NONE;
    case Network::kEgress:
      return schema::NetworkAccess::EGRESS;
  }
  return schema::NetworkAccess::NONE;
}

Network networkFromWire(schema::NetworkAccess network) {
  switch (network) {
    case schema::NetworkAccess::NONE:
      return Network::kNone;
    case schema::NetworkAccess::EGRESS:
      return Network::kEgress;
  }
  return Network::kNone;
}

thatch::FunctionConfig configFromWire(schema::FunctionConfig::Reader in) {
  thatch::FunctionConfig config;
  config.runtime = text(in.getRuntime());
  config.handler = text(in.getHandler());
  config.memoryBytes = in.getMemoryBytes();
  config.timeout = std::chrono::milliseconds(in.getTimeoutMs());
  config.concurrency = in.getConcurrency();
  for (schema::EnvVar::Reader var : in.getEnv())
    config.env.emplace_back(text(var.getName()), text(var.getValue()));
  config.network = networkFromWire(in.getNetwork());
  config.raw = in.getRaw();
  config.tmpNoexec = in.getTmpNoexec();
  for (schema::LayerRef::Reader layer : in.getLayers())
    config.layers.push_back({text(layer.getName()), layer.getVersion()});
  return config;
}

void configToWire(const thatch::FunctionConfig& in, schema::FunctionConfig::Builder out) {
  out.setRuntime(text(in.runtime));
  out.setHandler(text(in.handler));
  out.setMemoryBytes(in.memoryBytes);
  out.setTimeoutMs(static_cast<uint32_t>(in.timeout.count()));
  out.setConcurrency(in.concurrency);
  auto env = out.initEnv(in.env.size());
  for (size_t i = 0; i < in.env.size(); ++i) {
    env[i].setName(text(in.env[i].first));
    env[i].setValue(text(in.env[i].second));
  }
  out.setNetwork(networkToWire(in.network));
  out.setRaw(in.raw);
  out.setTmpNoexec(in.tmpNoexec);
  if (in.layers.empty()) return;
  auto layers = out.initLayers(in.layers.size());
  for (size_t i = 0; i < in.layers.size(); ++i) {
    layers[i].setName(text(in.layers[i].name));
    layers[i].setVersion(in.layers[i].version);
  }
}

}  // namespace thatch::wire
