#include "supervisor/warm_pools.h"

#include <algorithm>
#include <iterator>
#include <stdexcept>
#include <string>
#include <utility>

namespace supervisor {

WarmPools::WarmPools(const Clock& clock, std::unique_ptr<KeepAlivePolicy> policy, HostLimits host)
    : clock_(clock), policy_(std::move(policy)), host_(host) {
  if (!policy_) throw std::invalid_argument("WarmPools needs a keep-alive policy");
}

void WarmPools::setLimits(const FunctionKey& function, PoolLimits limits) {
  pools_[function].limits = limits;
}

PoolLimits WarmPools::limits(const FunctionKey& function) const {
  auto it = pools_.find(function);
  return it == pools_.end() ? PoolLimits{} : limitsOf(it->second);
}

std::optional<uint64_t> WarmPools::take(const FunctionKey& function) {
  auto pool = pools_.find(function);
  if (pool == pools_.end() || pool->second.idle.empty()) {
    ++counters_.misses;
    return std::nullopt;
  }
  auto entry = std::prev(pool->second.idle.end());
  uint64_t id = entry->id;
  taken_.insert_or_assign(id, Taken{function, entry->uses + 1});
  forget(Location{pool, entry});
  ++counters_.reuses;
  return id;
}

std::vector<uint64_t> WarmPools::putIdle(const FunctionKey& function, uint64_t id,
                                         uint64_t memoryBytes, From from) {
  if (byId_.count(id) != 0)
    throw std::logic_error("sandbox " + std::to_string(id) + " returned to its pool twice");
  uint64_t uses = 0;
  if (auto taken = taken_.find(id); taken != taken_.end()) {
    if (taken->second.function != function)
      throw std::logic_error("sandbox " + std::to_string(id) + " of " +
                             taken->second.function.name + " version " +
                             std::to_string(taken->second.function.version) +
                             " returned to the pool of another version");
    uses = taken->second.uses;
    taken_.erase(taken);
  }

  auto existing = pools_.find(function);
  size_t count = existing == pools_.end() ? 0 : existing->second.idle.size();
  PoolLimits limits = existing == pools_.end() ? PoolLimits{} : limitsOf(existing->second);
  if (existing != pools_.end()) existing->second.lastMemoryBytes = memoryBytes;
  if (from == From::kInvocation && !policy_->keepAfterInvocation(function)) {
    ++counters_.unloaded;
    return {id};
  }
  if (count >= limits.maxWarm) {
    ++counters_.rejectedAtMax;
    return {id};
  }
  // Checked before evicting: evicting every other sandbox would not make
  // room for it, so none is given up for it.
  if (host_.maxWarm == 0 || memoryBytes > host_.maxWarmMemoryBytes) {
    ++counters_.rejectedTooLarge;
    return {id};
  }

  // Before inserting, so that the policy cannot pick the newcomer (and so
  // that eviction may empty and erase this very pool without harm).
  std::vector<uint64_t> destroy;
  makeRoom(memoryBytes, destroy);

  auto pool = pools_.try_emplace(function).first;
  pool->second.lastMemoryBytes = memoryBytes;
  TimePoint now = clock_.now();
  auto entry = pool->second.idle.insert(pool->second.idle.end(), Idle{id, memoryBytes, now, uses});
  byId_.emplace(id, Location{pool, entry});
  idleMemoryBytes_ += memoryBytes;
  policy_->onIdle(IdleSandbox{id, function, memoryBytes, now, uses});
  return destroy;
}

void WarmPools::makeRoom(uint64_t memoryBytes, std::vector<uint64_t>& destroy) {
  // Terminates: each round forgets one, and with none left the newcomer fits
  // (putIdle rejected it otherwise).
  while (byId_.size() + 1 > host_.maxWarm ||
         idleMemoryBytes_ + memoryBytes > host_.maxWarmMemoryBytes) {
    uint64_t victim = policy_->chooseVictim();
    auto it = byId_.find(victim);
    if (it == byId_.end())
      throw std::logic_error("keep-alive policy chose sandbox " + std::to_string(victim) +
                             ", which is not idle");
    forget(it->second);
    ++counters_.evictions;
    destroy.push_back(victim);
  }
}

std::optional<uint64_t> WarmPools::evictOne() {
  if (byId_.empty()) return std::nullopt;
  uint64_t victim = policy_->chooseVictim();
  auto it = byId_.find(victim);
  if (it == byId_.end())
    throw std::logic_error("keep-alive policy chose sandbox " + std::to_string(victim) +
                           ", which is not idle");
  forget(it->second);
  ++counters_.evictions;
  return victim;
}

std::vector<uint64_t> WarmPools::expire() {
  TimePoint now = clock_.now();
  std::vector<uint64_t> expired;
  for (auto& [function, pool] : pools_) {
    PoolLimits limits = limitsOf(pool);
    Duration keepAlive = keepAliveOf(function, pool);
    size_t expirable = pool.idle.size() > limits.minWarm ? pool.idle.size() - limits.minWarm : 0;
    // Oldest first; the minWarm most recent ones are never looked at.
    for (auto entry = pool.idle.begin(); expirable > 0; ++entry, --expirable) {
      if (now - entry->idleSince < keepAlive) break;
      expired.push_back(entry->id);
    }
  }
  // Forgotten after the walk, since forgetting may erase a pool.
  for (uint64_t id : expired) forget(byId_.at(id));
  counters_.expirations += expired.size();
  return expired;
}

std::optional<TimePoint> WarmPools::nextExpiry() const {
  std::optional<TimePoint> next;
  for (const auto& [function, pool] : pools_) {
    PoolLimits limits = limitsOf(pool);
    if (pool.idle.size() <= limits.minWarm) continue;
    TimePoint since = pool.idle.front().idleSince;
    Duration keepAlive = keepAliveOf(function, pool);
    if (keepAlive > TimePoint::max() - since) continue;  // a keep-alive meaning "never"
    TimePoint at = since + keepAlive;
    if (!next || at < *next) next = at;
  }
  return next;
}

bool WarmPools::remove(uint64_t id) {
  taken_.erase(id);
  auto it = byId_.find(id);
  if (it == byId_.end()) return false;
  forget(it->second);
  return true;
}

void WarmPools::invocationStarted(const FunctionKey& function) {
  policy_->onInvocationStart(function, clock_.now());
}

void WarmPools::invocationEnded(const FunctionKey& function) {
  policy_->onInvocationEnd(function, clock_.now());
}

Duration WarmPools::keepAliveOf(const FunctionKey& function, const Pool& pool) const {
  return policy_->keepAliveFor(function).value_or(limitsOf(pool).idleTtl);
}

std::vector<FunctionKey> WarmPools::takePrewarmsDue() {
  std::vector<FunctionKey> due;
  for (FunctionKey& function : policy_->takePrewarmsDue(clock_.now()))
    if (idleCount(function) == 0) due.push_back(std::move(function));
  return due;
}

std::vector<uint64_t> WarmPools::dropFunction(const FunctionKey& function) {
  policy_->onDrop(function);
  auto pool = pools_.find(function);
  if (pool == pools_.end()) return {};
  std::vector<uint64_t> dropped = forgetIdle(pool->second);
  pools_.erase(pool);
  return dropped;
}

std::vector<uint64_t> WarmPools::drain() {
  std::vector<uint64_t> drained;
  for (auto pool = pools_.begin(); pool != pools_.end();) {
    std::vector<uint64_t> ids = forgetIdle(pool->second);
    drained.insert(drained.end(), ids.begin(), ids.end());
    pool = pool->second.limits ? std::next(pool) : pools_.erase(pool);
  }
  return drained;
}

void WarmPools::recordColdStart(const FunctionKey& function, Duration startCost) {
  policy_->onColdStart(function, startCost);
}

unsigned WarmPools::prewarmDeficit(const FunctionKey& function, unsigned starting) const {
  auto pool = pools_.find(function);
  if (pool == pools_.end()) return 0;
  PoolLimits limits = limitsOf(pool->second);
  uint64_t target = std::min(limits.minWarm, limits.maxWarm);
  uint64_t have = uint64_t{pool->second.idle.size()} + starting;
  if (have >= target) return 0;
  uint64_t deficit = target - have;

  uint64_t hostUsed = uint64_t{byId_.size()} + starting;
  deficit = std::min<uint64_t>(deficit, hostUsed >= host_.maxWarm ? 0 : host_.maxWarm - hostUsed);

  if (uint64_t size = pool->second.lastMemoryBytes; size > 0) {
    uint64_t room = host_.maxWarmMemoryBytes > idleMemoryBytes_
                        ? host_.maxWarmMemoryBytes - idleMemoryBytes_
                        : 0;
    uint64_t fit = room / size;
    deficit = std::min<uint64_t>(deficit, fit > starting ? fit - starting : 0);
  }
  return static_cast<unsigned>(deficit);
}

std::vector<FunctionKey> WarmPools::functionsBelowMinimum() const {
  std::vector<FunctionKey> below;
  for (const auto& [function, pool] : pools_) {
    PoolLimits limits = limitsOf(pool);
    if (pool.idle.size() < std::min(limits.minWarm, limits.maxWarm)) below.push_back(function);
  }
  return below;
}

size_t WarmPools::idleCount(const FunctionKey& function) const {
  auto pool = pools_.find(function);
  return pool == pools_.end() ? 0 : pool->second.idle.size();
}

void WarmPools::forget(Location location) {
  uint64_t id = location.entry->id;
  idleMemoryBytes_ -= location.entry->memoryBytes;
  location.pool->second.idle.erase(location.entry);
  byId_.erase(id);
  policy_->onLeave(id);
  // A pool with default limits and nothing idle carries no information.
  if (!location.pool->second.limits && location.pool->second.idle.empty())
    pools_.erase(location.pool);
}

std::vector<uint64_t> WarmPools::forgetIdle(Pool& pool) {
  std::vector<uint64_t> ids;
  for (const Idle& entry : pool.idle) {
    ids.push_back(entry.id);
    idleMemoryBytes_ -= entry.memoryBytes;
    byId_.erase(entry.id);
    policy_->onLeave(entry.id);
  }
  pool.idle.clear();
  return ids;
}

}  // namespace supervisor
