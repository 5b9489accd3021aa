// The idle warm sandboxes of every function version ("thatching"): which one
// to reuse, how long to keep it, how many, and which to give up when the host
// is over its caps. Pure bookkeeping of ids on the supervisor's event loop:
// the caller owns the sandboxes, and destroys every id handed back here.
// Semantics and the policy interface: docs/thatching.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "supervisor/clock.h"
#include "supervisor/keep_alive.h"

namespace supervisor {

struct PoolLimits {
  unsigned minWarm = 0;  // kept through idle expiry, and prewarmed (capped by maxWarm)
  unsigned maxWarm = 8;  // idle ones kept; a sandbox returned beyond this is destroyed
  Duration idleTtl = std::chrono::minutes(10);  // idle this long (or longer) = expired
};

// Caps on the idle sandboxes of the whole host. Busy sandboxes are not
// counted: admission (admission.h) bounds those.
struct HostLimits {
  unsigned maxWarm = 256;
  uint64_t maxWarmMemoryBytes = 4ull << 30;
};

class WarmPools {
 public:
  WarmPools(const Clock& clock, std::unique_ptr<KeepAlivePolicy> policy, HostLimits host);
  WarmPools(const WarmPools&) = delete;
  WarmPools& operator=(const WarmPools&) = delete;

  // Defaults apply until set. Lowering maxWarm or idleTtl destroys nothing
  // now: the excess leaves through reuse or expiry.
  void setLimits(const FunctionKey& function, PoolLimits limits);
  PoolLimits limits(const FunctionKey& function) const;
  // Like lowering a pool's limits, lowering the host's destroys nothing
  // now: the next putIdle() evicts what no longer fits.
  void setHostLimits(HostLimits host) { host_ = host; }

  // The most recently idle sandbox of exactly this version (LIFO: the
  // warmest caches, and the older ones are left to expire), or none.
  std::optional<uint64_t> take(const FunctionKey& function);

  // A sandbox finished an invocation (or a prewarm) and may be kept. Returns
  // the ids to destroy now: this one if its pool is at maxWarm or it alone
  // exceeds a host cap; otherwise idle ones evicted (the policy's choice,
  // never this one) to make room for it under the host caps. Throws
  // std::logic_error if `id` is already idle, or was taken for another
  // function version.
  std::vector<uint64_t> putIdle(const FunctionKey& function, uint64_t id, uint64_t memoryBytes);

  // Idle sandboxes whose idle time reached their pool's idleTtl, except that
  // each pool keeps its minWarm most recent ones.
  std::vector<uint64_t> expire();
  // The policy's victim among all idle sandboxes, forgotten (an eviction),
  // for a caller that needs room beyond the warm caps (the host's cap on
  // live sandboxes). None if nothing is idle.
  std::optional<uint64_t> evictOne();

  // When expire() next has work (for the caller's timer): at that instant,
  // not one tick later. None if nothing can expire.
  std::optional<TimePoint> nextExpiry() const;

  // A sandbox that died: forgets it. True if it was idle. Also call it for a
  // taken sandbox that dies, so that its use count is forgotten.
  bool remove(uint64_t id);

  // All idle sandboxes of that version (function removed, or replaced by a
  // new version); its limits are forgotten too, so it is no longer prewarmed.
  std::vector<uint64_t> dropFunction(const FunctionKey& function);

  // Every idle sandbox (shutdown). Limits are kept.
  std::vector<uint64_t> drain();

  // Passes a measured cold start on to the policy (onColdStart).
  void recordColdStart(const FunctionKey& function, Duration startCost);

  // How many more to start so that idle + `starting` reaches minWarm (capped
  // by maxWarm), without taking the host over its count cap, nor over its
  // memory cap at the size this function's sandboxes last had. `starting`
  // also counts against the host caps.
  unsigned prewarmDeficit(const FunctionKey& function, unsigned starting) const;

  // Functions whose idle count is below their minimum, for the caller's
  // prewarm loop (which asks prewarmDeficit() how many to start).
  std::vector<FunctionKey> functionsBelowMinimum() const;

  size_t idleCount() const { return byId_.size(); }
  size_t idleCount(const FunctionKey& function) const;
  uint64_t idleMemoryBytes() const { return idleMemoryBytes_; }

  struct Counters {
    uint64_t reuses = 0;            // take() found one
    uint64_t misses = 0;            // take() found none
    uint64_t expirations = 0;       // expire()
    uint64_t evictions = 0;         // given up for the host caps
    uint64_t rejectedAtMax = 0;     // putIdle() into a pool at its maxWarm
    uint64_t rejectedTooLarge = 0;  // putIdle() of one that alone exceeds a host cap
  };
  const Counters& counters() const { return counters_; }

 private:
  struct Idle {
    uint64_t id;
    uint64_t memoryBytes;
    TimePoint idleSince;
    uint64_t uses;
  };
  struct Pool {
    std::optional<PoolLimits> limits;  // none: the defaults
    uint64_t lastMemoryBytes = 0;      // 0: never seen
    std::list<Idle> idle;              // oldest first (idleSince is monotonic)
  };
  using Pools = std::map<FunctionKey, Pool>;
  struct Location {
    Pools::iterator pool;
    std::list<Idle>::iterator entry;
  };

  struct Taken {
    FunctionKey function;
    uint64_t uses;
  };

  static PoolLimits limitsOf(const Pool& pool) { return pool.limits.value_or(PoolLimits{}); }
  // Forgets one idle sandbox and tells the policy; erases its pool if that
  // holds nothing worth keeping.
  void forget(Location location);
  // Forgets every idle sandbox of `pool` (oldest first), keeping the pool.
  std::vector<uint64_t> forgetIdle(Pool& pool);
  // Evicts until one more sandbox of `memoryBytes` fits under the host caps.
  void makeRoom(uint64_t memoryBytes, std::vector<uint64_t>& destroy);

  const Clock& clock_;
  std::unique_ptr<KeepAlivePolicy> policy_;
  HostLimits host_;
  Pools pools_;
  std::unordered_map<uint64_t, Location> byId_;
  // Sandboxes handed out by take(), until they come back or die.
  std::unordered_map<uint64_t, Taken> taken_;
  uint64_t idleMemoryBytes_ = 0;
  Counters counters_;
};

}  // namespace supervisor
