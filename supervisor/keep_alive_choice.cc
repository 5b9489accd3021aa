#include "supervisor/keep_alive_choice.h"

#include <stdexcept>

#include "supervisor/histogram_policy.h"

namespace supervisor {
namespace {

struct Named {
  KeepAliveKind kind;
  const char* name;
};
constexpr Named kNames[] = {
    {KeepAliveKind::kTtl, "ttl"},
    {KeepAliveKind::kLru, "lru"},
    {KeepAliveKind::kGreedyDual, "greedy-dual"},
    {KeepAliveKind::kHistogram, "histogram"},
};
constexpr KeepAliveKind kKinds[] = {KeepAliveKind::kTtl, KeepAliveKind::kLru,
                                    KeepAliveKind::kGreedyDual, KeepAliveKind::kHistogram};

}  // namespace

std::span<const KeepAliveKind> allKeepAliveKinds() {
  return kKinds;
}

const char* keepAliveName(KeepAliveKind kind) {
  for (const Named& named : kNames)
    if (named.kind == kind) return named.name;
  return "?";
}

std::optional<KeepAliveKind> parseKeepAlive(std::string_view name) {
  for (const Named& named : kNames)
    if (name == named.name) return named.kind;
  return std::nullopt;
}

std::string keepAliveNames() {
  std::string names;
  for (const Named& named : kNames)
    names += (names.empty() ? "\"" : ", \"") + std::string(named.name) + "\"";
  return names;
}

std::unique_ptr<KeepAlivePolicy> makeKeepAlivePolicy(KeepAliveKind kind, Duration idleTtl) {
  switch (kind) {
    case KeepAliveKind::kTtl:
      return makeLruPolicy(IdleExpiry::kPoolTtl);
    case KeepAliveKind::kLru:
      return makeLruPolicy(IdleExpiry::kUntilEvicted);
    case KeepAliveKind::kGreedyDual:
      return makeGreedyDualPolicy(std::chrono::milliseconds(100), IdleExpiry::kUntilEvicted);
    case KeepAliveKind::kHistogram: {
      HistogramOptions options;
      options.fallbackKeepAlive = idleTtl;
      return makeHistogramPolicy(options);
    }
  }
  throw std::logic_error("no keep-alive policy of that kind");
}

}  // namespace supervisor
