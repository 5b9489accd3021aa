// Keep-alive policies: which idle warm sandbox to give up when the host is
// over its caps. WarmPools (warm_pools.h) owns the idle set and asks the
// policy only for the choice; docs/thatching.md explains how to add one.
#pragma once

#include <compare>
#include <cstdint>
#include <memory>
#include <string>

#include "supervisor/clock.h"

namespace supervisor {

// A function version: sandboxes are never shared across these.
struct FunctionKey {
  std::string name;
  uint64_t version = 0;
  auto operator<=>(const FunctionKey&) const = default;
};

struct IdleSandbox {
  uint64_t id;
  FunctionKey function;
  uint64_t memoryBytes;
  TimePoint idleSince;
  uint64_t uses;  // how many times WarmPools::take() handed it out (reuses)
};

// Chooses which idle sandbox to give up when the host is over its caps. LRU
// to start; Greedy-Dual (FaasCache) can replace it. A histogram policy
// (Serverless in the Wild) decides TTLs and prewarming instead: it would set
// PoolLimits beside this one (docs/thatching.md).
//
// WarmPools calls onIdle/onLeave for every sandbox entering/leaving the idle
// set, in the order of its clock, so a policy mirrors that set exactly. After
// chooseVictim() returns an id, the next call is onLeave() of that id.
class KeepAlivePolicy {
 public:
  virtual ~KeepAlivePolicy() = default;
  virtual void onIdle(const IdleSandbox& sandbox) = 0;  // entered the idle set
  virtual void onLeave(uint64_t id) = 0;                // left it: reused, expired or evicted
  // Optional information for smarter policies: a sandbox of `function` took
  // `startCost` to start cold.
  virtual void onColdStart(const FunctionKey& /*function*/, Duration /*startCost*/) {}
  virtual uint64_t chooseVictim() = 0;  // among the idle set; only called when non-empty
};

// Evicts the sandbox idle the longest (ties: the one that became idle first).
std::unique_ptr<KeepAlivePolicy> makeLruPolicy();

// FaasCache's Greedy-Dual keep-alive (Fuerst & Sharma, ASPLOS 2021): a sandbox
// entering the idle set gets priority = clock + frequency * cost / size, and
// the lowest priority is evicted; the clock then becomes the victim's
// priority, which ages everything kept. frequency = idle entries of its
// function (one per finished invocation; a prewarm counts too), reset when
// the function's last idle sandbox is evicted; cost = its cold-start time
// (from onColdStart, an average of recent ones; `defaultStartCost` until
// measured); size = its memory.
std::unique_ptr<KeepAlivePolicy> makeGreedyDualPolicy(
    Duration defaultStartCost = std::chrono::milliseconds(100));

}  // namespace supervisor
