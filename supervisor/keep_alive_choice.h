// [pool] keep_alive: the names an operator chooses a keep-alive policy by,
// and the policy each builds (docs/thatching.md, "Choosing a policy").
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "supervisor/clock.h"
#include "supervisor/keep_alive.h"

namespace supervisor {

enum class KeepAliveKind { kTtl, kLru, kGreedyDual, kHistogram };

// Every kind, in the order the docs and thatch-replay list them.
std::span<const KeepAliveKind> allKeepAliveKinds();
const char* keepAliveName(KeepAliveKind kind);
std::optional<KeepAliveKind> parseKeepAlive(std::string_view name);
// "\"ttl\", \"lru\", ..." for error messages.
std::string keepAliveNames();

// `idleTtl` is the pool's ([pool] idle_ttl): the histogram policy's fixed
// keep-alive while a function's histogram is not representative.
std::unique_ptr<KeepAlivePolicy> makeKeepAlivePolicy(KeepAliveKind kind, Duration idleTtl);

}  // namespace supervisor
