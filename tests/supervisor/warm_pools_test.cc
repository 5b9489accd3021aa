#include "supervisor/warm_pools.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <vector>

#include "supervisor/keep_alive.h"

namespace supervisor {
namespace {

using namespace std::chrono_literals;
using Ids = std::vector<uint64_t>;

FunctionKey fn(const std::string& name, uint64_t version = 1) {
  return FunctionKey{name, version};
}

Ids sorted(Ids ids) {
  std::sort(ids.begin(), ids.end());
  return ids;
}

HostLimits roomy() {
  return HostLimits{1000, 1ull << 40};
}

TEST(WarmPools, TakeIsLifo) {
  FakeClock clock;
  WarmPools pools(clock, makeLruPolicy(), roomy());
  for (uint64_t id : {1, 2, 3}) {
    EXPECT_EQ(pools.putIdle(fn("f"), id, 10), Ids{});
    clock.advance(1s);
  }
  EXPECT_EQ(pools.take(fn("f")), 3u);
  EXPECT_EQ(pools.take(fn("f")), 2u);
  EXPECT_EQ(pools.putIdle(fn("f"), 2, 10), Ids{});
  EXPECT_EQ(pools.take(fn("f")), 2u);
  EXPECT_EQ(pools.take(fn("f")), 1u);
  EXPECT_EQ(pools.take(fn("f")), std::nullopt);
  EXPECT_EQ(pools.counters().reuses, 4u);
  EXPECT_EQ(pools.counters().misses, 1u);
  EXPECT_EQ(pools.idleCount(), 0u);
  EXPECT_EQ(pools.idleMemoryBytes(), 0u);
}

TEST(WarmPools, VersionsAreIsolated) {
  FakeClock clock;
  WarmPools pools(clock, makeLruPolicy(), roomy());
  pools.putIdle(fn("f", 1), 11, 10);
  pools.putIdle(fn("f", 2), 12, 10);
  pools.putIdle(fn("g", 1), 21, 10);
  EXPECT_EQ(pools.idleCount(fn("f", 1)), 1u);
  EXPECT_EQ(pools.idleCount(fn("f", 2)), 1u);
  EXPECT_EQ(pools.take(fn("f", 3)), std::nullopt);
  EXPECT_EQ(pools.take(fn("f", 2)), 12u);
  EXPECT_EQ(pools.take(fn("f", 2)), std::nullopt);
  EXPECT_EQ(pools.take(fn("f", 1)), 11u);
  EXPECT_EQ(pools.take(fn("f", 1)), std::nullopt);
  EXPECT_EQ(pools.take(fn("g", 1)), 21u);
  // A sandbox taken for version 1 cannot come back as version 2's.
  EXPECT_THROW(pools.putIdle(fn("f", 2), 11, 10), std::logic_error);
  EXPECT_EQ(pools.putIdle(fn("f", 1), 11, 10), Ids{});
  EXPECT_THROW(pools.putIdle(fn("f", 1), 11, 10), std::logic_error);  // already idle
  EXPECT_EQ(pools.idleCount(), 1u);
}

TEST(WarmPools, IdleAtExactlyTheTtlIsExpired) {
  FakeClock clock;
  WarmPools pools(clock, makeLruPolicy(), roomy());
  pools.setLimits(fn("f"), PoolLimits{0, 8, 10s});
  TimePoint start = clock.now();
  pools.putIdle(fn("f"), 1, 10);
  EXPECT_EQ(pools.nextExpiry(), start + 10s);

  clock.advance(10s - 1ns);
  EXPECT_EQ(pools.expire(), Ids{});
  EXPECT_EQ(pools.idleCount(), 1u);
  EXPECT_EQ(pools.nextExpiry(), start + 10s);

  clock.advance(1ns);  // a timer set for nextExpiry() finds work
  EXPECT_EQ(pools.expire(), Ids{1});
  EXPECT_EQ(pools.counters().expirations, 1u);
  EXPECT_EQ(pools.nextExpiry(), std::nullopt);
  EXPECT_EQ(pools.take(fn("f")), std::nullopt);
  EXPECT_EQ(pools.expire(), Ids{});
}

TEST(WarmPools, JustAfterTheTtlIsExpired) {
  FakeClock clock;
  WarmPools pools(clock, makeLruPolicy(), roomy());
  pools.setLimits(fn("f"), PoolLimits{0, 8, 10s});
  pools.putIdle(fn("f"), 1, 10);
  clock.advance(10s + 1ns);
  EXPECT_EQ(pools.expire(), Ids{1});
}

TEST(WarmPools, ExpiryKeepsTheMinWarmMostRecent) {
  FakeClock clock;
  WarmPools pools(clock, makeLruPolicy(), roomy());
  pools.setLimits(fn("f"), PoolLimits{2, 8, 10s});
  for (uint64_t id : {1, 2, 3, 4}) {
    pools.putIdle(fn("f"), id, 10);
    clock.advance(1s);
  }
  clock.advance(1h);
  EXPECT_EQ(pools.expire(), (Ids{1, 2}));
  EXPECT_EQ(pools.nextExpiry(), std::nullopt);  // the pool is at its minimum
  clock.advance(1h);
  EXPECT_EQ(pools.expire(), Ids{});
  EXPECT_EQ(pools.take(fn("f")), 4u);
  EXPECT_EQ(pools.take(fn("f")), 3u);
  EXPECT_EQ(pools.take(fn("f")), std::nullopt);
}

TEST(WarmPools, ExpiryIsPerPoolTtl) {
  FakeClock clock;
  WarmPools pools(clock, makeLruPolicy(), roomy());
  TimePoint start = clock.now();
  pools.setLimits(fn("short"), PoolLimits{0, 8, 5s});
  pools.setLimits(fn("long"), PoolLimits{0, 8, 60s});
  pools.putIdle(fn("long"), 1, 10);
  pools.putIdle(fn("short"), 2, 10);
  EXPECT_EQ(pools.nextExpiry(), start + 5s);
  clock.advance(5s);
  EXPECT_EQ(pools.expire(), Ids{2});
  EXPECT_EQ(pools.nextExpiry(), start + 60s);
  clock.advance(55s);
  EXPECT_EQ(pools.expire(), Ids{1});
}

TEST(WarmPools, NextExpiryFollowsTakePutRemoveAndExpire) {
  FakeClock clock;
  WarmPools pools(clock, makeLruPolicy(), roomy());
  pools.setLimits(fn("f"), PoolLimits{1, 8, 10s});
  TimePoint start = clock.now();
  EXPECT_EQ(pools.nextExpiry(), std::nullopt);

  pools.putIdle(fn("f"), 1, 10);
  EXPECT_EQ(pools.nextExpiry(), std::nullopt);  // the only one is kept as minWarm
  clock.advance(3s);
  pools.putIdle(fn("f"), 2, 10);
  EXPECT_EQ(pools.nextExpiry(), start + 10s);  // the oldest of those beyond minWarm
  clock.advance(3s);
  pools.putIdle(fn("f"), 3, 10);
  EXPECT_EQ(pools.nextExpiry(), start + 10s);

  EXPECT_EQ(pools.take(fn("f")), 3u);  // LIFO: the oldest still decides
  EXPECT_EQ(pools.nextExpiry(), start + 10s);
  EXPECT_TRUE(pools.remove(1));
  EXPECT_EQ(pools.nextExpiry(), std::nullopt);  // 2 alone is the minimum
  pools.putIdle(fn("f"), 3, 10);                // idle since start + 6s
  EXPECT_EQ(pools.nextExpiry(), start + 13s);

  clock.advance(7s);  // start + 13s
  EXPECT_EQ(pools.expire(), Ids{2});
  EXPECT_EQ(pools.nextExpiry(), std::nullopt);
  EXPECT_EQ(pools.take(fn("f")), 3u);
}

TEST(WarmPools, MaxWarmPerPool) {
  FakeClock clock;
  WarmPools pools(clock, makeLruPolicy(), roomy());
  pools.setLimits(fn("f"), PoolLimits{0, 2, 10min});
  EXPECT_EQ(pools.putIdle(fn("f"), 1, 10), Ids{});
  EXPECT_EQ(pools.putIdle(fn("f"), 2, 10), Ids{});
  EXPECT_EQ(pools.putIdle(fn("f"), 3, 10), Ids{3});
  EXPECT_EQ(pools.counters().rejectedAtMax, 1u);
  EXPECT_EQ(pools.counters().evictions, 0u);
  EXPECT_EQ(pools.idleCount(fn("f")), 2u);
  EXPECT_EQ(pools.putIdle(fn("g"), 4, 10), Ids{});  // another pool is not limited by f's
  EXPECT_EQ(pools.take(fn("f")), 2u);
  EXPECT_EQ(pools.putIdle(fn("f"), 5, 10), Ids{});

  pools.setLimits(fn("none"), PoolLimits{0, 0, 10min});
  EXPECT_EQ(pools.putIdle(fn("none"), 6, 10), Ids{6});
  EXPECT_EQ(pools.take(fn("none")), std::nullopt);
}

TEST(WarmPools, DefaultMaxWarmIsEight) {
  FakeClock clock;
  WarmPools pools(clock, makeLruPolicy(), roomy());
  for (uint64_t id = 0; id < 8; ++id) EXPECT_EQ(pools.putIdle(fn("f"), id, 1), Ids{});
  EXPECT_EQ(pools.putIdle(fn("f"), 8, 1), Ids{8});
}

TEST(WarmPools, HostCountCapEvictsTheLeastRecentlyIdleAcrossFunctions) {
  FakeClock clock;
  WarmPools pools(clock, makeLruPolicy(), HostLimits{3, 1ull << 40});
  pools.putIdle(fn("f"), 1, 10);
  clock.advance(1s);
  pools.putIdle(fn("g"), 2, 10);
  clock.advance(1s);
  pools.putIdle(fn("f"), 3, 10);
  clock.advance(1s);
  EXPECT_EQ(pools.putIdle(fn("h"), 4, 10), Ids{1});
  EXPECT_EQ(pools.counters().evictions, 1u);
  EXPECT_EQ(pools.idleCount(), 3u);

  // Reuse makes a sandbox recent again: 2 is now the least recently idle.
  EXPECT_EQ(pools.take(fn("f")), 3u);
  clock.advance(1s);
  EXPECT_EQ(pools.putIdle(fn("f"), 3, 10), Ids{});
  clock.advance(1s);
  EXPECT_EQ(pools.putIdle(fn("f"), 5, 10), Ids{2});
  EXPECT_EQ(pools.take(fn("g")), std::nullopt);
  EXPECT_EQ(pools.take(fn("f")), 5u);
  EXPECT_EQ(pools.take(fn("f")), 3u);
  EXPECT_EQ(pools.take(fn("f")), std::nullopt);
}

TEST(WarmPools, HostMemoryCapEvictsUntilUnder) {
  FakeClock clock;
  WarmPools pools(clock, makeLruPolicy(), HostLimits{100, 100});
  for (uint64_t id : {1, 2, 3}) pools.putIdle(fn("f" + std::to_string(id)), id, 30);
  EXPECT_EQ(pools.idleMemoryBytes(), 90u);
  // 90 + 70 > 100: without 1, 130; without 1 and 2, exactly 100 (allowed).
  EXPECT_EQ(pools.putIdle(fn("big"), 4, 70), (Ids{1, 2}));
  EXPECT_EQ(pools.idleMemoryBytes(), 100u);
  EXPECT_EQ(pools.idleCount(), 2u);
  EXPECT_EQ(pools.counters().evictions, 2u);
  EXPECT_EQ(pools.take(fn("f3")), 3u);
  EXPECT_EQ(pools.take(fn("big")), 4u);
}

TEST(WarmPools, ASandboxBiggerThanTheWholeCapIsDestroyedItself) {
  FakeClock clock;
  WarmPools pools(clock, makeLruPolicy(), HostLimits{100, 100});
  pools.putIdle(fn("f"), 1, 50);
  EXPECT_EQ(pools.putIdle(fn("huge"), 2, 101), Ids{2});
  EXPECT_EQ(pools.counters().rejectedTooLarge, 1u);
  EXPECT_EQ(pools.counters().evictions, 0u);  // nothing was given up for it
  EXPECT_EQ(pools.idleCount(), 1u);
  EXPECT_EQ(pools.idleMemoryBytes(), 50u);
  EXPECT_EQ(pools.take(fn("huge")), std::nullopt);

  WarmPools none(clock, makeLruPolicy(), HostLimits{0, 100});
  EXPECT_EQ(none.putIdle(fn("f"), 1, 1), Ids{1});
}

// Records what WarmPools tells its policy, and evicts whatever the test says.
struct PolicyLog {
  std::set<uint64_t> idle;
  std::vector<IdleSandbox> entered;
  std::vector<uint64_t> left;
  std::vector<uint64_t> victims;  // chooseVictim() answers, in order
  std::vector<std::set<uint64_t>> idleWhenAsked;
  std::vector<std::pair<FunctionKey, Duration>> coldStarts;
};

class ScriptedPolicy final : public KeepAlivePolicy {
 public:
  explicit ScriptedPolicy(PolicyLog& log) : log_(log) {}
  const char* name() const override { return "scripted"; }
  void onIdle(const IdleSandbox& sandbox) override {
    EXPECT_TRUE(log_.idle.insert(sandbox.id).second);
    log_.entered.push_back(sandbox);
  }
  void onLeave(uint64_t id) override {
    EXPECT_EQ(log_.idle.erase(id), 1u);
    log_.left.push_back(id);
  }
  void onColdStart(const FunctionKey& function, Duration startCost) override {
    log_.coldStarts.emplace_back(function, startCost);
  }
  uint64_t chooseVictim() override {
    log_.idleWhenAsked.push_back(log_.idle);
    uint64_t victim = log_.victims.front();
    log_.victims.erase(log_.victims.begin());
    return victim;
  }

 private:
  PolicyLog& log_;
};

TEST(WarmPools, EvictsWhatThePolicyChooses) {
  FakeClock clock;
  PolicyLog log;
  WarmPools pools(clock, std::make_unique<ScriptedPolicy>(log), HostLimits{3, 1000});
  for (uint64_t id : {1, 2, 3}) {
    pools.putIdle(fn("f"), id, 10);
    clock.advance(1s);
  }
  log.victims = {2};  // neither the oldest nor the newest
  EXPECT_EQ(pools.putIdle(fn("g"), 4, 10), Ids{2});
  // The newcomer was not yet a candidate when the policy chose.
  EXPECT_EQ(log.idleWhenAsked.back(), (std::set<uint64_t>{1, 2, 3}));
  EXPECT_EQ(log.left, Ids{2});
  EXPECT_EQ(log.idle, (std::set<uint64_t>{1, 3, 4}));

  log.victims = {4, 3};  // 30 + 985 bytes > 1000, and 20 + 985 still: two go
  EXPECT_EQ(pools.putIdle(fn("h"), 5, 985), (Ids{4, 3}));
  EXPECT_EQ(log.idle, (std::set<uint64_t>{1, 5}));
  EXPECT_EQ(pools.take(fn("f")), 1u);
  EXPECT_EQ(log.idle, (std::set<uint64_t>{5}));

  log.victims = {42};  // not idle: a policy bug, reported as such
  EXPECT_THROW(pools.putIdle(fn("f"), 6, 100), std::logic_error);
}

TEST(WarmPools, TellsThePolicyUsesAndColdStarts) {
  FakeClock clock;
  PolicyLog log;
  WarmPools pools(clock, std::make_unique<ScriptedPolicy>(log), roomy());
  pools.recordColdStart(fn("f"), 30ms);
  pools.putIdle(fn("f"), 1, 10);
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(pools.take(fn("f")), 1u);
    clock.advance(1s);
    pools.putIdle(fn("f"), 1, 12);
  }
  ASSERT_EQ(log.entered.size(), 3u);
  EXPECT_EQ(log.entered[0].uses, 0u);
  EXPECT_EQ(log.entered[1].uses, 1u);
  EXPECT_EQ(log.entered[2].uses, 2u);
  EXPECT_EQ(log.entered[2].memoryBytes, 12u);
  EXPECT_EQ(log.entered[2].function, fn("f"));
  EXPECT_EQ(log.entered[2].idleSince, clock.now());
  ASSERT_EQ(log.coldStarts.size(), 1u);
  EXPECT_EQ(log.coldStarts[0].second, 30ms);
  EXPECT_EQ(log.left, (Ids{1, 1}));
}

TEST(WarmPools, DropFunctionTakesOnlyThatVersionAndForgetsItsLimits) {
  FakeClock clock;
  WarmPools pools(clock, makeLruPolicy(), roomy());
  pools.setLimits(fn("f", 1), PoolLimits{2, 8, 10min});
  pools.putIdle(fn("f", 1), 1, 10);
  pools.putIdle(fn("f", 2), 2, 10);
  pools.putIdle(fn("f", 1), 3, 10);
  EXPECT_EQ(pools.functionsBelowMinimum(), std::vector<FunctionKey>{});
  EXPECT_EQ(sorted(pools.dropFunction(fn("f", 1))), (Ids{1, 3}));
  EXPECT_EQ(pools.take(fn("f", 1)), std::nullopt);
  EXPECT_EQ(pools.idleCount(), 1u);
  EXPECT_EQ(pools.idleMemoryBytes(), 10u);
  EXPECT_EQ(pools.functionsBelowMinimum(), std::vector<FunctionKey>{});  // no prewarm of it
  EXPECT_EQ(pools.limits(fn("f", 1)).minWarm, 0u);
  EXPECT_EQ(pools.dropFunction(fn("f", 1)), Ids{});
  EXPECT_EQ(pools.take(fn("f", 2)), 2u);
}

TEST(WarmPools, RemoveForgetsADeadSandbox) {
  FakeClock clock;
  WarmPools pools(clock, makeLruPolicy(), roomy());
  pools.setLimits(fn("f"), PoolLimits{0, 8, 10s});
  pools.putIdle(fn("f"), 1, 10);
  pools.putIdle(fn("f"), 2, 20);
  EXPECT_TRUE(pools.remove(2));
  EXPECT_FALSE(pools.remove(2));
  EXPECT_FALSE(pools.remove(99));
  EXPECT_EQ(pools.idleMemoryBytes(), 10u);
  EXPECT_EQ(pools.take(fn("f")), 1u);
  EXPECT_EQ(pools.take(fn("f")), std::nullopt);
  EXPECT_FALSE(pools.remove(1));  // taken: not idle, but forgotten all the same
  pools.putIdle(fn("f"), 3, 10);
  clock.advance(1h);
  EXPECT_EQ(pools.expire(), Ids{3});  // 2 is not handed back again
}

TEST(WarmPools, DrainHandsBackEverythingOnce) {
  FakeClock clock;
  WarmPools pools(clock, makeLruPolicy(), roomy());
  pools.setLimits(fn("f"), PoolLimits{2, 8, 10s});
  pools.putIdle(fn("f"), 1, 10);
  pools.putIdle(fn("g"), 2, 10);
  pools.putIdle(fn("g", 2), 3, 10);
  EXPECT_EQ(sorted(pools.drain()), (Ids{1, 2, 3}));
  EXPECT_EQ(pools.drain(), Ids{});
  EXPECT_EQ(pools.idleCount(), 0u);
  EXPECT_EQ(pools.idleMemoryBytes(), 0u);
  EXPECT_EQ(pools.nextExpiry(), std::nullopt);
  clock.advance(1h);
  EXPECT_EQ(pools.expire(), Ids{});
  EXPECT_EQ(pools.take(fn("g")), std::nullopt);
  EXPECT_EQ(pools.functionsBelowMinimum(), std::vector<FunctionKey>{fn("f")});  // limits kept
}

TEST(WarmPools, PrewarmDeficitCountsStartingOnes) {
  FakeClock clock;
  WarmPools pools(clock, makeLruPolicy(), roomy());
  EXPECT_EQ(pools.prewarmDeficit(fn("f"), 0), 0u);  // default minWarm is 0
  pools.setLimits(fn("f"), PoolLimits{3, 8, 10min});
  pools.setLimits(fn("g"), PoolLimits{1, 8, 10min});
  EXPECT_EQ(pools.functionsBelowMinimum(), (std::vector<FunctionKey>{fn("f"), fn("g")}));
  EXPECT_EQ(pools.prewarmDeficit(fn("f"), 0), 3u);
  EXPECT_EQ(pools.prewarmDeficit(fn("f"), 2), 1u);
  EXPECT_EQ(pools.prewarmDeficit(fn("f"), 5), 0u);
  pools.putIdle(fn("f"), 1, 10);
  EXPECT_EQ(pools.prewarmDeficit(fn("f"), 1), 1u);
  pools.putIdle(fn("f"), 2, 10);
  pools.putIdle(fn("f"), 3, 10);
  EXPECT_EQ(pools.prewarmDeficit(fn("f"), 0), 0u);
  EXPECT_EQ(pools.functionsBelowMinimum(), std::vector<FunctionKey>{fn("g")});
  EXPECT_EQ(pools.take(fn("f")), 3u);
  EXPECT_EQ(pools.functionsBelowMinimum(), (std::vector<FunctionKey>{fn("f"), fn("g")}));

  pools.setLimits(fn("capped"), PoolLimits{5, 2, 10min});  // minWarm above maxWarm
  EXPECT_EQ(pools.prewarmDeficit(fn("capped"), 0), 2u);
}

TEST(WarmPools, PrewarmDeficitRespectsTheHostCaps) {
  FakeClock clock;
  WarmPools pools(clock, makeLruPolicy(), HostLimits{4, 100});
  pools.setLimits(fn("f"), PoolLimits{4, 8, 10min});
  pools.putIdle(fn("g"), 1, 10);
  pools.putIdle(fn("g"), 2, 10);
  EXPECT_EQ(pools.prewarmDeficit(fn("f"), 0), 2u);  // 2 of the host's 4 are g's
  EXPECT_EQ(pools.prewarmDeficit(fn("f"), 1), 1u);
  EXPECT_EQ(pools.prewarmDeficit(fn("f"), 2), 0u);

  // Once f's size is known, the memory cap counts too: 80 bytes left, 30 each.
  pools.putIdle(fn("f"), 3, 30);
  pools.remove(3);
  EXPECT_EQ(pools.prewarmDeficit(fn("f"), 0), 2u);
  EXPECT_EQ(pools.prewarmDeficit(fn("f"), 1), 1u);
  pools.putIdle(fn("g"), 4, 30);  // 50 bytes left: one more of f
  EXPECT_EQ(pools.prewarmDeficit(fn("f"), 0), 1u);
  pools.putIdle(fn("g"), 5, 30);  // 20 left, and the count cap is reached
  EXPECT_EQ(pools.prewarmDeficit(fn("f"), 0), 0u);
}

TEST(GreedyDualPolicy, EvictsCheapStartsBeforeExpensiveOnes) {
  auto policy = makeGreedyDualPolicy();
  TimePoint t{};
  policy->onColdStart(fn("slow"), 2s);
  policy->onColdStart(fn("fast"), 20ms);
  policy->onIdle(IdleSandbox{1, fn("slow"), 100 << 20, t, 0});
  policy->onIdle(IdleSandbox{2, fn("fast"), 100 << 20, t + 1s, 0});
  EXPECT_EQ(policy->chooseVictim(), 2u);  // LRU would give up 1
}

TEST(GreedyDualPolicy, EvictsBigBeforeSmallAndRareBeforeFrequent) {
  TimePoint t{};
  auto bySize = makeGreedyDualPolicy();
  bySize->onIdle(IdleSandbox{1, fn("big"), 512 << 20, t, 0});
  bySize->onIdle(IdleSandbox{2, fn("small"), 64 << 20, t, 0});
  EXPECT_EQ(bySize->chooseVictim(), 1u);

  auto byFrequency = makeGreedyDualPolicy();
  for (int i = 0; i < 5; ++i) {  // five invocations of "hot" ended
    byFrequency->onIdle(IdleSandbox{1, fn("hot"), 64 << 20, t, uint64_t(i)});
    if (i < 4) byFrequency->onLeave(1);
  }
  byFrequency->onIdle(IdleSandbox{2, fn("rare"), 64 << 20, t, 0});
  EXPECT_EQ(byFrequency->chooseVictim(), 2u);
}

TEST(GreedyDualPolicy, TheClockAgesWhatIsKept) {
  // Sizes of one byte so that priorities read as seconds of start cost.
  auto policy = makeGreedyDualPolicy();
  TimePoint t{};
  policy->onColdStart(fn("valuable"), 10s);
  policy->onIdle(IdleSandbox{1, fn("valuable"), 1, t, 0});  // priority 10
  for (uint64_t id = 2; id <= 4; ++id) {
    policy->onColdStart(fn("f" + std::to_string(id)), 3s);
    policy->onIdle(IdleSandbox{id, fn("f" + std::to_string(id)), 1, t, 0});  // clock + 3
    ASSERT_EQ(policy->chooseVictim(), id);
    policy->onLeave(id);  // clock: 3, 6, 9
  }
  policy->onColdStart(fn("f5"), 3s);
  policy->onIdle(IdleSandbox{5, fn("f5"), 1, t, 0});  // 12 > 10: the old one goes
  EXPECT_EQ(policy->chooseVictim(), 1u);
}

TEST(GreedyDualPolicy, FrequencyResetsWhenTheLastOneIsEvicted) {
  auto policy = makeGreedyDualPolicy();
  TimePoint t{};
  for (int i = 0; i < 10; ++i) {
    policy->onIdle(IdleSandbox{1, fn("was-hot"), 1, t, 0});
    policy->onLeave(1);
  }
  policy->onIdle(IdleSandbox{1, fn("was-hot"), 1, t, 0});  // frequency 11
  policy->onIdle(IdleSandbox{2, fn("other"), 1, t, 0});    // frequency 1
  ASSERT_EQ(policy->chooseVictim(), 2u);
  policy->onLeave(2);
  ASSERT_EQ(policy->chooseVictim(), 1u);
  policy->onLeave(1);  // its last idle sandbox: frequency back to 0
  for (int i = 0; i < 3; ++i) {
    policy->onIdle(IdleSandbox{4, fn("steady"), 1, t, 0});
    policy->onLeave(4);
  }
  policy->onIdle(IdleSandbox{3, fn("was-hot"), 1, t, 0});  // frequency 1 (12 without the reset)
  policy->onIdle(IdleSandbox{4, fn("steady"), 1, t, 0});   // frequency 4
  EXPECT_EQ(policy->chooseVictim(), 3u);
}

TEST(GreedyDualPolicy, DrivesWarmPools) {
  FakeClock clock;
  WarmPools pools(clock, makeGreedyDualPolicy(), HostLimits{2, 1ull << 40});
  pools.recordColdStart(fn("slow"), 3s);
  pools.recordColdStart(fn("fast"), 5ms);
  pools.putIdle(fn("slow"), 1, 64 << 20);
  clock.advance(1s);
  pools.putIdle(fn("fast"), 2, 64 << 20);
  clock.advance(1s);
  EXPECT_EQ(pools.putIdle(fn("other"), 3, 64 << 20), Ids{2});
}

// A randomized run against a plain model: a vector of idle entries in the
// order they became idle (which is also LRU order), scanned linearly.
TEST(WarmPools, RandomOperationsMatchAModel) {
  struct Entry {
    uint64_t id;
    FunctionKey function;
    uint64_t memoryBytes;
    TimePoint since;
  };
  const HostLimits host{12, 200};
  const std::vector<FunctionKey> functions = {fn("a", 1), fn("a", 2), fn("b", 1), fn("c", 7)};

  FakeClock clock;
  WarmPools pools(clock, makeLruPolicy(), host);
  std::mt19937_64 random(20240607);
  auto pick = [&](uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(random); };

  std::vector<Entry> idle;
  std::map<FunctionKey, PoolLimits> limits;
  std::map<uint64_t, FunctionKey> taken;  // handed out by take(), not yet back
  std::set<uint64_t> destroyed;
  uint64_t nextId = 1;
  auto limitsOf = [&](const FunctionKey& f) {
    auto it = limits.find(f);
    return it == limits.end() ? PoolLimits{} : it->second;
  };
  auto countOf = [&](const FunctionKey& f) {
    return std::count_if(idle.begin(), idle.end(), [&](const Entry& e) { return e.function == f; });
  };
  auto memory = [&] {
    uint64_t sum = 0;
    for (const Entry& e : idle) sum += e.memoryBytes;
    return sum;
  };
  // Every id handed back for destruction is handed back once, and never
  // again by anything.
  auto destroyAll = [&](const Ids& ids) {
    for (uint64_t id : ids) ASSERT_TRUE(destroyed.insert(id).second) << "id " << id;
  };
  auto expectedPut = [&](const FunctionKey& f, uint64_t id, uint64_t bytes) {
    Ids destroy;
    if (uint64_t(countOf(f)) >= limitsOf(f).maxWarm || bytes > host.maxWarmMemoryBytes)
      return Ids{id};
    while (idle.size() + 1 > host.maxWarm || memory() + bytes > host.maxWarmMemoryBytes) {
      destroy.push_back(idle.front().id);
      idle.erase(idle.begin());
    }
    idle.push_back(Entry{id, f, bytes, clock.now()});
    return destroy;
  };
  auto expectedExpire = [&] {
    Ids expired;
    for (const FunctionKey& f : functions) {
      PoolLimits l = limitsOf(f);
      std::vector<Entry> mine;
      for (const Entry& e : idle)
        if (e.function == f) mine.push_back(e);
      for (size_t i = 0; i + l.minWarm < mine.size(); ++i)
        if (clock.now() - mine[i].since >= l.idleTtl) expired.push_back(mine[i].id);
    }
    std::erase_if(idle, [&](const Entry& e) {
      return std::find(expired.begin(), expired.end(), e.id) != expired.end();
    });
    return sorted(expired);
  };
  auto expectedNextExpiry = [&] {
    std::optional<TimePoint> next;
    for (const FunctionKey& f : functions) {
      PoolLimits l = limitsOf(f);
      std::vector<Entry> mine;
      for (const Entry& e : idle)
        if (e.function == f) mine.push_back(e);
      if (mine.size() <= l.minWarm) continue;
      TimePoint at = mine.front().since + l.idleTtl;
      if (!next || at < *next) next = at;
    }
    return next;
  };

  uint64_t takes = 0, hits = 0;
  for (int step = 0; step < 100000; ++step) {
    const FunctionKey& f = functions[pick(functions.size())];
    uint64_t op = pick(100);
    if (op < 30) {  // a fresh sandbox, or one taken earlier, comes back
      uint64_t id;
      FunctionKey key = f;
      if (!taken.empty() && pick(2) == 0) {
        auto it = std::next(taken.begin(), pick(std::min<uint64_t>(taken.size(), 8)));
        id = it->first;
        key = it->second;
        taken.erase(it);
      } else {
        id = nextId++;
      }
      uint64_t bytes = 1 + pick(pick(20) == 0 ? 250 : 40);
      Ids expected = expectedPut(key, id, bytes);
      Ids got = pools.putIdle(key, id, bytes);
      ASSERT_EQ(got, expected) << "step " << step;
      destroyAll(got);
    } else if (op < 60) {
      ++takes;
      std::optional<uint64_t> expected;
      for (auto it = idle.rbegin(); it != idle.rend(); ++it)
        if (it->function == f) {
          expected = it->id;
          idle.erase(std::next(it).base());
          break;
        }
      std::optional<uint64_t> got = pools.take(f);
      ASSERT_EQ(got, expected) << "step " << step;
      if (got) {
        ++hits;
        ASSERT_FALSE(destroyed.count(*got));
        taken.emplace(*got, f);
      }
    } else if (op < 80) {
      clock.advance(std::chrono::milliseconds(pick(4000)));
      ASSERT_EQ(pools.nextExpiry(), expectedNextExpiry()) << "step " << step;
      Ids expected = expectedExpire();
      Ids got = pools.expire();
      ASSERT_EQ(sorted(got), expected) << "step " << step;
      destroyAll(got);
    } else if (op < 88) {  // a sandbox dies: idle, taken, or long gone
      uint64_t which = pick(3);
      if (which == 0 && !idle.empty()) {
        size_t i = pick(idle.size());
        uint64_t id = idle[i].id;
        idle.erase(idle.begin() + i);
        ASSERT_TRUE(pools.remove(id));
        destroyed.insert(id);
      } else if (which == 1 && !taken.empty()) {
        auto it = std::next(taken.begin(), pick(std::min<uint64_t>(taken.size(), 8)));
        ASSERT_FALSE(pools.remove(it->first));
        destroyed.insert(it->first);
        taken.erase(it);
      } else if (!destroyed.empty()) {
        ASSERT_FALSE(pools.remove(*destroyed.rbegin()));
      }
    } else if (op < 97) {
      PoolLimits l{unsigned(pick(3)), unsigned(pick(6)),
                   std::chrono::milliseconds(1 + pick(pick(2) == 0 ? 3000 : 20000))};
      limits[f] = l;
      pools.setLimits(f, l);
    } else if (op < 99) {
      unsigned starting = unsigned(pick(3));
      PoolLimits l = limitsOf(f);
      uint64_t want = std::min(l.minWarm, l.maxWarm);
      uint64_t have = uint64_t(countOf(f)) + starting;
      unsigned got = pools.prewarmDeficit(f, starting);
      ASSERT_LE(got, want > have ? want - have : 0);
      if (got > 0) {
        ASSERT_LE(idle.size() + starting + got, host.maxWarm);
      }
    } else if (pick(10) == 0) {
      Ids expected;
      for (const Entry& e : idle)
        if (e.function == f) expected.push_back(e.id);
      std::erase_if(idle, [&](const Entry& e) { return e.function == f; });
      limits.erase(f);
      Ids got = pools.dropFunction(f);
      ASSERT_EQ(sorted(got), sorted(expected));
      destroyAll(got);
    } else if (pick(50) == 0) {
      Ids expected;
      for (const Entry& e : idle) expected.push_back(e.id);
      idle.clear();
      Ids got = pools.drain();
      ASSERT_EQ(sorted(got), sorted(expected));
      destroyAll(got);
    }

    ASSERT_EQ(pools.idleCount(), idle.size()) << "step " << step;
    ASSERT_EQ(pools.idleMemoryBytes(), memory()) << "step " << step;
    ASSERT_LE(pools.idleCount(), host.maxWarm);
    ASSERT_LE(pools.idleMemoryBytes(), host.maxWarmMemoryBytes);
    for (const FunctionKey& g : functions) ASSERT_EQ(pools.idleCount(g), uint64_t(countOf(g)));
    ASSERT_EQ(pools.nextExpiry(), expectedNextExpiry()) << "step " << step;
  }
  // Each id created is in exactly one place: idle, taken, or destroyed.
  std::set<uint64_t> everywhere(destroyed);
  for (const Entry& e : idle) ASSERT_TRUE(everywhere.insert(e.id).second);
  for (const auto& [id, key] : taken) ASSERT_TRUE(everywhere.insert(id).second);
  EXPECT_EQ(everywhere.size(), nextId - 1);
  EXPECT_EQ(pools.counters().reuses, hits);
  EXPECT_EQ(pools.counters().misses, takes - hits);
  // The run did exercise every path.
  EXPECT_GT(pools.counters().expirations, 1000u);
  EXPECT_GT(pools.counters().evictions, 1000u);
  EXPECT_GT(pools.counters().rejectedAtMax, 1000u);
  EXPECT_GT(pools.counters().rejectedTooLarge, 100u);
  EXPECT_GT(hits, 1000u);
}

TEST(WarmPoolsEvictOne, TakesThePolicysVictimAndCountsIt) {
  FakeClock clock;
  WarmPools pools(clock, makeLruPolicy(), HostLimits{});
  EXPECT_EQ(pools.evictOne(), std::nullopt);
  FunctionKey a{"a", 1}, b{"b", 1};
  EXPECT_TRUE(pools.putIdle(a, 1, 1 << 20).empty());
  clock.advance(std::chrono::seconds(1));
  EXPECT_TRUE(pools.putIdle(b, 2, 1 << 20).empty());
  EXPECT_EQ(pools.evictOne(), std::optional<uint64_t>(1));  // idle the longest
  EXPECT_EQ(pools.take(a), std::nullopt);
  EXPECT_EQ(pools.idleCount(), 1u);
  EXPECT_EQ(pools.counters().evictions, 1u);
  EXPECT_EQ(pools.evictOne(), std::optional<uint64_t>(2));
  EXPECT_EQ(pools.evictOne(), std::nullopt);
}

}  // namespace
}  // namespace supervisor
