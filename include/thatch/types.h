// thatch's vocabulary, shared by every layer and by programs that embed
// thatch: how an invocation ended, and how a function is configured. Plain
// values; this header includes nothing of the project. Where a wire format
// must differ (api/thatch.capnp, runtime/runtime.capnp), the conversion is
// an exhaustive switch beside it (api/wire.h).
#pragma once

#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace thatch {

// How an invocation ended.
enum class Status {
  kOk,
  kHandlerError,      // the handler raised, or returned what JSON cannot encode
  kBadRequest,        // the payload is not what the function accepts
  kTimeout,           // past its deadline: the sandbox was killed
  kOutOfMemory,       // over its memory limit: the sandbox was killed
  kTooManyProcesses,  // over its process limit
  kResultTooLarge,    // the result (with its logs) exceeded the cap
  kCrashed,           // the sandbox died (signal, exit) or broke its channel
  kStartFailed,       // no sandbox: confinement or the handler's import failed
  kOverloaded,        // over the function's concurrency and queue, or the host's caps
  kNotFound,          // no such function
  kShuttingDown,      // thatchd is draining
};

// Every Status, in order: for tables that must cover them all.
inline constexpr Status kAllStatuses[] = {
    Status::kOk,          Status::kHandlerError,     Status::kBadRequest,     Status::kTimeout,
    Status::kOutOfMemory, Status::kTooManyProcesses, Status::kResultTooLarge, Status::kCrashed,
    Status::kStartFailed, Status::kOverloaded,       Status::kNotFound,       Status::kShuttingDown,
};

// "ok", "handler_error", "bad_request", ... as thatchd logs and counts them.
constexpr const char* statusName(Status status) {
  switch (status) {
    case Status::kOk:
      return "ok";
    case Status::kHandlerError:
      return "handler_error";
    case Status::kBadRequest:
      return "bad_request";
    case Status::kTimeout:
      return "timeout";
    case Status::kOutOfMemory:
      return "out_of_memory";
    case Status::kTooManyProcesses:
      return "too_many_processes";
    case Status::kResultTooLarge:
      return "result_too_large";
    case Status::kCrashed:
      return "crashed";
    case Status::kStartFailed:
      return "start_failed";
    case Status::kOverloaded:
      return "overloaded";
    case Status::kNotFound:
      return "not_found";
    case Status::kShuttingDown:
      return "shutting_down";
  }
  return "unknown";  // not a Status: a cast from a newer peer's number
}

// kAllStatuses holds every Status: one past its end is no Status at all
// (statusName's switch is exhaustive, so a new Status needs a name).
constexpr bool listsEveryStatus() {
  constexpr size_t n = sizeof kAllStatuses / sizeof kAllStatuses[0];
  for (size_t i = 0; i < n; ++i)
    if (kAllStatuses[i] != static_cast<Status>(i) ||
        std::string_view(statusName(kAllStatuses[i])) == "unknown")
      return false;
  return std::string_view(statusName(static_cast<Status>(n))) == "unknown";
}
static_assert(listsEveryStatus(), "kAllStatuses must list every Status, in order");

enum class Network {
  kNone,    // only `lo`
  kEgress,  // outbound connections through the host's bridge
};

// "none", "egress": as the CLI, the registry's files and the docs spell them.
constexpr const char* networkName(Network network) {
  switch (network) {
    case Network::kNone:
      return "none";
    case Network::kEgress:
      return "egress";
  }
  return "unknown";
}

// The inverse of networkName(); nullopt for any other word.
constexpr std::optional<Network> networkNamed(std::string_view name) {
  for (Network network : {Network::kNone, Network::kEgress})
    if (name == networkName(network)) return network;
  return std::nullopt;
}

// A version of a layer that a function uses: files shown read-only under
// /opt in its sandboxes, as Lambda's layers are. Written NAME:VERSION.
struct LayerRef {
  std::string name;
  uint64_t version = 0;  // 1, 2, ...
  bool operator==(const LayerRef&) const = default;
};

// As on Lambda.
inline constexpr size_t kMaxLayers = 5;

// "deps:2".
inline std::string layerRefText(const LayerRef& layer) {
  return layer.name + ":" + std::to_string(layer.version);
}

// The inverse of layerRefText(): NAME:VERSION, the version digits without a
// leading zero; nullopt otherwise. Whether NAME is a valid name is for
// thatchd to say.
inline std::optional<LayerRef> layerRefNamed(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  std::string_view digits = text.substr(colon + 1);
  uint64_t version = 0;
  if (digits.empty() || digits[0] < '1' || digits[0] > '9') return std::nullopt;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), version);
  if (error != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return LayerRef{std::string(text.substr(0, colon)), version};
}

struct FunctionConfig {
  std::string runtime = "python3.11";
  std::string handler = "handler.handler";  // "module.func" under the code's root; may be dotted
  uint64_t memoryBytes = 0;                 // 0: the daemon's default
  std::chrono::milliseconds timeout{0};     // 0: the daemon's default
  unsigned concurrency = 0;                 // 0: the daemon's default
  std::vector<std::pair<std::string, std::string>> env;  // in order
  Network network = Network::kNone;
  bool raw = false;        // the handler's event is the payload's bytes, not decoded JSON
  bool tmpNoexec = false;  // /tmp not executable (Lambda's is, as thatch's is by default)
  // Merged read-only under /opt in this order: a later layer's file wins.
  // At most kMaxLayers, each layer once.
  std::vector<LayerRef> layers;
  bool operator==(const FunctionConfig&) const = default;
};

}  // namespace thatch
