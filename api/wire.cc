#include "api/wire.h"

namespace api {

namespace wire = thatch::api;
using thatch::Network;
using thatch::Status;

wire::Status statusToWire(Status status) {
  switch (status) {
    case Status::kOk:
      return wire::Status::OK;
    case Status::kHandlerError:
      return wire::Status::HANDLER_ERROR;
    case Status::kBadRequest:
      return wire::Status::BAD_REQUEST;
    case Status::kTimeout:
      return wire::Status::TIMEOUT;
    case Status::kOutOfMemory:
      return wire::Status::OUT_OF_MEMORY;
    case Status::kTooManyProcesses:
      return wire::Status::TOO_MANY_PROCESSES;
    case Status::kResultTooLarge:
      return wire::Status::RESULT_TOO_LARGE;
    case Status::kCrashed:
      return wire::Status::CRASHED;
    case Status::kStartFailed:
      return wire::Status::START_FAILED;
    case Status::kOverloaded:
      return wire::Status::OVERLOADED;
    case Status::kNotFound:
      return wire::Status::NOT_FOUND;
    case Status::kShuttingDown:
      return wire::Status::SHUTTING_DOWN;
  }
  return wire::Status::CRASHED;  // not a Status
}

Status statusFromWire(wire::Status status) {
  switch (status) {
    case wire::Status::OK:
      return Status::kOk;
    case wire::Status::HANDLER_ERROR:
      return Status::kHandlerError;
    case wire::Status::BAD_REQUEST:
      return Status::kBadRequest;
    case wire::Status::TIMEOUT:
      return Status::kTimeout;
    case wire::Status::OUT_OF_MEMORY:
      return Status::kOutOfMemory;
    case wire::Status::TOO_MANY_PROCESSES:
      return Status::kTooManyProcesses;
    case wire::Status::RESULT_TOO_LARGE:
      return Status::kResultTooLarge;
    case wire::Status::CRASHED:
      return Status::kCrashed;
    case wire::Status::START_FAILED:
      return Status::kStartFailed;
    case wire::Status::OVERLOADED:
      return Status::kOverloaded;
    case wire::Status::NOT_FOUND:
      return Status::kNotFound;
    case wire::Status::SHUTTING_DOWN:
      return Status::kShuttingDown;
  }
  return Status::kCrashed;  // a newer peer's outcome
}

wire::NetworkAccess networkToWire(Network network) {
  switch (network) {
    case Network::kNone:
      return wire::NetworkAccess::NONE;
    case Network::kEgress:
      return wire::NetworkAccess::EGRESS;
  }
  return wire::NetworkAccess::NONE;
}

Network networkFromWire(wire::NetworkAccess network) {
  switch (network) {
    case wire::NetworkAccess::NONE:
      return Network::kNone;
    case wire::NetworkAccess::EGRESS:
      return Network::kEgress;
  }
  return Network::kNone;
}

thatch::FunctionConfig configFromWire(wire::FunctionConfig::Reader in) {
  thatch::FunctionConfig config;
  config.runtime = text(in.getRuntime());
  config.handler = text(in.getHandler());
  config.memoryBytes = in.getMemoryBytes();
  config.timeout = std::chrono::milliseconds(in.getTimeoutMs());
  config.concurrency = in.getConcurrency();
  for (wire::EnvVar::Reader var : in.getEnv())
    config.env.emplace_back(text(var.getName()), text(var.getValue()));
  config.network = networkFromWire(in.getNetwork());
  config.raw = in.getRaw();
  return config;
}

void configToWire(const thatch::FunctionConfig& in, wire::FunctionConfig::Builder out) {
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
}

}  // namespace api
