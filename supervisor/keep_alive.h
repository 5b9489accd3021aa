// Keep-alive policies: which idle warm sandbox to give up when the host is
// over its caps, and how long sandboxes are kept. WarmPools (warm_pools.h) owns the idle set and
// asks the policy only for the choice; docs/thatching.md explains how to add one.
#pragma once

#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

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

// Decides what the idle warm sandboxes are: which one to give up when the
// host is over its caps (every policy), and, for a policy that learns from
// the invocations, how long a function's sandboxes are kept and when one is
// started before it is needed (docs/thatching.md, "Keep-alive policies").
//
// WarmPools calls onIdle/onLeave for every sandbox entering/leaving the idle
// set, in the order of its clock, so a policy mirrors that set exactly. After
// chooseVictim() returns an id, the next call is onLeave() of that id.
class KeepAlivePolicy {
 public:
  virtual ~KeepAlivePolicy() = default;
  // Its name in [pool] keep_alive, for the stats and the log.
  virtual const char* name() const = 0;
  virtual void onIdle(const IdleSandbox& sandbox) = 0;  // entered the idle set
  virtual void onLeave(uint64_t id) = 0;                // left it: reused, expired or evicted
  // Optional information for smarter policies: a sandbox of `function` took
  // `startCost` to start cold.
  virtual void onColdStart(const FunctionKey& /*function*/, Duration /*startCost*/) {}
  virtual uint64_t chooseVictim() = 0;  // among the idle set; only called when non-empty

  // An invocation of `function` began or ended (WarmPools::invocationStarted
  // and invocationEnded), at `now`.
  virtual void onInvocationStart(const FunctionKey& /*function*/, TimePoint /*now*/) {}
  virtual void onInvocationEnd(const FunctionKey& /*function*/, TimePoint /*now*/) {}
  // The function version is gone (WarmPools::dropFunction): forget it.
  virtual void onDrop(const FunctionKey& /*function*/) {}

  // How long an idle sandbox of `function` is kept: none is the pool's
  // idleTtl; Duration::max() is until the host caps need its room.
  virtual std::optional<Duration> keepAliveFor(const FunctionKey& /*function*/) const {
    return std::nullopt;
  }
  // False: a sandbox that just finished an invocation of `function` is not
  // kept (unloaded), because prewarmAt() will start one when it is needed.
  virtual bool keepAfterInvocation(const FunctionKey& /*function*/) const { return true; }
  // The functions of which one sandbox should be started now (`now` is at
  // or past their pre-warm time), each handed out once; and when the next
  // is due. The caller starts one and returns it with putIdle(kPrewarm).
  virtual std::vector<FunctionKey> takePrewarmsDue(TimePoint /*now*/) { return {}; }
  virtual std::optional<TimePoint> nextPrewarm() const { return std::nullopt; }
};

// How long the LRU and Greedy-Dual policies keep an idle sandbox.
enum class IdleExpiry {
  kPoolTtl,       // the pool's idleTtl ([pool] idle_ttl), as thatchd always did
  kUntilEvicted,  // no expiry: kept while the host caps allow (FaasCache)
};

// Evicts the sandbox idle the longest (ties: the one that became idle first).
std::unique_ptr<KeepAlivePolicy> makeLruPolicy(IdleExpiry expiry = IdleExpiry::kPoolTtl);

// FaasCache's Greedy-Dual keep-alive (Fuerst & Sharma, ASPLOS 2021): a sandbox
// entering the idle set gets priority = clock + frequency * cost / size, and
// the lowest priority is evicted; the clock then becomes the victim's
// priority, which ages everything kept. frequency = idle entries of its
// function (one per finished invocation; a prewarm counts too), reset when
// the function's last idle sandbox is evicted; cost = its cold-start time
// (from onColdStart, an average of recent ones; `defaultStartCost` until
// measured); size = its memory.
std::unique_ptr<KeepAlivePolicy> makeGreedyDualPolicy(
    Duration defaultStartCost = std::chrono::milliseconds(100),
    IdleExpiry expiry = IdleExpiry::kPoolTtl);

}  // namespace supervisor
