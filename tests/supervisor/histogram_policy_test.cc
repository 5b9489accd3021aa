// The histogram keep-alive policy's decisions, alone and through WarmPools,
// against a fake clock.
#include "supervisor/histogram_policy.h"

#include <gtest/gtest.h>

#include <vector>

#include "supervisor/keep_alive_choice.h"
#include "supervisor/warm_pools.h"

namespace supervisor {
namespace {

using namespace std::chrono_literals;
using Basis = KeepAliveWindows::Basis;
using Ids = std::vector<uint64_t>;

KeepAliveWindows windowsOf(const std::vector<Duration>& idleTimes, HistogramOptions options = {}) {
  IdleTimeHistogram histogram(options);
  for (Duration idle : idleTimes) histogram.add(idle, options);
  return histogram.windows(options);
}

TEST(IdleTimeHistogram, TooFewSamplesKeepTheFixedKeepAlive) {
  KeepAliveWindows w = windowsOf(std::vector<Duration>(9, 30min));
  EXPECT_EQ(w.basis, Basis::kTooFewSamples);
  EXPECT_EQ(w.prewarm, 0s);
  EXPECT_EQ(w.keepAlive, 10min);
}

TEST(IdleTimeHistogram, ConcentratedIdleTimesGiveHeadAndTail) {
  // All in the 30-minute bin: head 30 min, tail 31 min (its upper edge);
  // pre-warm 30 × 0.9 = 27 min, keep-alive 31 × 1.1 − 27 = 7.1 min.
  KeepAliveWindows w = windowsOf(std::vector<Duration>(10, 30min + 20s));
  EXPECT_EQ(w.basis, Basis::kHistogram);
  EXPECT_EQ(w.prewarm, 27min);
  EXPECT_EQ(w.keepAlive, 426s);
}

TEST(IdleTimeHistogram, HeadAndTailArePercentiles) {
  // 100 idle times: 5 in bin 2, 94 in bin 10, 1 in bin 50. The 5th
  // percentile is bin 2; the 99th is bin 10 (the one at 50 is beyond it).
  std::vector<Duration> idle(5, 2min);
  idle.insert(idle.end(), 94, 10min);
  idle.push_back(50min);
  KeepAliveWindows w = windowsOf(idle);
  EXPECT_EQ(w.basis, Basis::kHistogram);
  EXPECT_EQ(w.prewarm, 108s);           // 2 min × 0.9
  EXPECT_EQ(w.keepAlive, 726s - 108s);  // 11 min × 1.1, from the invocation's end
}

TEST(IdleTimeHistogram, ShortIdleTimesAreNotUnloaded) {
  KeepAliveWindows w = windowsOf(std::vector<Duration>(20, 10s));
  EXPECT_EQ(w.basis, Basis::kHistogram);
  EXPECT_EQ(w.prewarm, 0s);
  EXPECT_EQ(w.keepAlive, 66s);  // bin 0's upper edge, 1 min, × 1.1
}

TEST(IdleTimeHistogram, SpreadIdleTimesAreNotRepresentative) {
  std::vector<Duration> idle;
  for (int minute = 0; minute < 240; ++minute) idle.push_back(minute * 1min);
  EXPECT_EQ(windowsOf(idle).basis, Basis::kNotConcentrated);
  EXPECT_EQ(windowsOf(idle).keepAlive, 10min);
}

TEST(IdleTimeHistogram, IdleTimesBeyondTheRangeFallBack) {
  std::vector<Duration> idle(6, 5h);
  idle.insert(idle.end(), 5, 30min);
  KeepAliveWindows w = windowsOf(idle);
  EXPECT_EQ(w.basis, Basis::kOutOfBounds);
  EXPECT_EQ(w.prewarm, 0s);
  EXPECT_EQ(w.keepAlive, 10min);
  // Up to half beyond the range: the ones inside decide.
  idle.pop_back();
  idle.insert(idle.end(), 2, 30min);
  EXPECT_EQ(windowsOf(idle).basis, Basis::kHistogram);
}

// One invocation of `f` from now, lasting `run`, in the sandbox the pool
// gives or a new one; returns what putIdle() gave back.
struct Driver {
  FakeClock& clock;
  WarmPools& pools;
  uint64_t nextId = 1;
  unsigned cold = 0;

  Ids invoke(const FunctionKey& f, Duration run) {
    pools.invocationStarted(f);
    std::optional<uint64_t> id = pools.take(f);
    if (!id) {
      id = nextId++;
      ++cold;
    }
    clock.advance(run);
    pools.invocationEnded(f);
    return pools.putIdle(f, *id, 100);
  }

  // A timer-like function: eleven 1 s calls 30 minutes apart, enough for
  // a representative histogram, so that a pre-warm is planned.
  void trainEveryHalfHour(const FunctionKey& f) {
    for (int i = 0; i < 11; ++i) {
      invoke(f, 1s);
      clock.advance(30min);
      pools.expire();
    }
  }
};

TEST(HistogramPolicy, UnloadsAfterAnInvocationAndPrewarmsBeforeTheNext) {
  FakeClock clock;
  WarmPools pools(clock, makeHistogramPolicy(), HostLimits{100, 1ull << 40});
  Driver driver{clock, pools};
  FunctionKey f{"timer", 1};
  EXPECT_STREQ(pools.policyName(), "histogram");

  // 30 minutes idle after each 1 s call: until it has 10 idle times the
  // sandbox is kept for the fixed 10 minutes, so each call is cold.
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(driver.invoke(f, 1s).empty());
    EXPECT_EQ(pools.nextPrewarm(), std::nullopt);
    clock.advance(30min);
    EXPECT_EQ(pools.expire().size(), 1u);
  }

  // Its 10th idle time was seen as this call began: the sandbox is unloaded.
  EXPECT_EQ(driver.invoke(f, 1s), Ids{11});
  EXPECT_EQ(driver.cold, 11u);
  EXPECT_EQ(pools.counters().unloaded, 1u);
  EXPECT_EQ(pools.idleCount(f), 0u);
  TimePoint ended = clock.now();
  ASSERT_EQ(pools.nextPrewarm(), ended + 27min);

  clock.advance(27min - 1ns);
  EXPECT_TRUE(pools.takePrewarmsDue().empty());
  clock.advance(1ns);
  EXPECT_EQ(pools.takePrewarmsDue(), std::vector<FunctionKey>{f});
  EXPECT_TRUE(pools.takePrewarmsDue().empty());  // handed out once
  EXPECT_TRUE(pools.putIdle(f, 100, 100, WarmPools::From::kPrewarm).empty());

  // Kept for the keep-alive window from then: 7.1 minutes.
  ASSERT_EQ(pools.nextExpiry(), ended + 27min + 426s);
  clock.advance(3min);                        // the next call, 30 min idle
  EXPECT_EQ(driver.invoke(f, 1s), Ids{100});  // warm, and unloaded again
  EXPECT_EQ(driver.cold, 11u);
  EXPECT_EQ(pools.counters().reuses, 1u);
  EXPECT_EQ(pools.nextPrewarm(), clock.now() + 27min);
}

TEST(HistogramPolicy, AnInvocationCancelsItsPrewarm) {
  FakeClock clock;
  WarmPools pools(clock, makeHistogramPolicy(), HostLimits{100, 1ull << 40});
  Driver driver{clock, pools};
  FunctionKey f{"timer", 1};
  driver.trainEveryHalfHour(f);
  ASSERT_TRUE(pools.nextPrewarm().has_value());
  clock.advance(-20min);  // well before the pre-warm time: a call comes early
  pools.invocationStarted(f);
  EXPECT_EQ(pools.nextPrewarm(), std::nullopt);
  pools.invocationEnded(f);
  EXPECT_TRUE(pools.nextPrewarm().has_value());
}

TEST(HistogramPolicy, ConcurrentInvocationsMakeOneIdleTime) {
  // The function is idle only while none of its invocations runs.
  FakeClock clock;
  WarmPools pools(clock, makeHistogramPolicy(), HostLimits{100, 1ull << 40});
  FunctionKey f{"http", 1};
  for (int i = 0; i < 12; ++i) {
    pools.invocationStarted(f);
    pools.invocationStarted(f);
    clock.advance(1s);
    pools.invocationEnded(f);
    clock.advance(45min);  // one still runs: not idle
    pools.invocationEnded(f);
    clock.advance(10s);
  }
  // Ten idle times of 10 s: kept at once, for 66 s.
  EXPECT_TRUE(pools.putIdle(f, 1, 100).empty());
  EXPECT_EQ(pools.nextExpiry(), clock.now() + 66s);
  EXPECT_EQ(pools.nextPrewarm(), std::nullopt);
}

TEST(HistogramPolicy, DroppedFunctionsAreForgotten) {
  FakeClock clock;
  WarmPools pools(clock, makeHistogramPolicy(), HostLimits{100, 1ull << 40});
  Driver driver{clock, pools};
  FunctionKey f{"timer", 1};
  driver.trainEveryHalfHour(f);
  ASSERT_TRUE(pools.nextPrewarm().has_value());
  pools.invocationStarted(f);
  pools.dropFunction(f);  // a new version, while this one still runs
  pools.invocationEnded(f);
  EXPECT_EQ(pools.nextPrewarm(), std::nullopt);
  EXPECT_TRUE(pools.putIdle(f, 50, 100).empty());  // a stranger again: the fixed 10 minutes
  EXPECT_EQ(pools.nextExpiry(), clock.now() + 10min);
}

TEST(KeepAliveChoice, EveryNameBuildsItsPolicy) {
  for (KeepAliveKind kind : allKeepAliveKinds()) {
    EXPECT_EQ(parseKeepAlive(keepAliveName(kind)), kind);
    EXPECT_STREQ(makeKeepAlivePolicy(kind, 10min)->name(), keepAliveName(kind));
  }
  EXPECT_EQ(parseKeepAlive("LRU"), std::nullopt);
}

TEST(KeepAliveChoice, OnlyTtlExpiresByIdleTtl) {
  FunctionKey f{"f", 1};
  for (KeepAliveKind kind : allKeepAliveKinds()) {
    FakeClock clock;
    WarmPools pools(clock, makeKeepAlivePolicy(kind, 1h), HostLimits{100, 1ull << 40});
    pools.setLimits(f, PoolLimits{0, 8, 5min});
    pools.putIdle(f, 1, 100);
    std::optional<TimePoint> next = pools.nextExpiry();
    switch (kind) {
      case KeepAliveKind::kTtl:
        EXPECT_EQ(next, clock.now() + 5min);
        break;
      case KeepAliveKind::kLru:
      case KeepAliveKind::kGreedyDual:
        EXPECT_EQ(next, std::nullopt) << keepAliveName(kind);
        clock.advance(24h * 365);
        EXPECT_TRUE(pools.expire().empty());
        break;
      case KeepAliveKind::kHistogram:  // knows nothing yet: the fallback it was given
        EXPECT_EQ(next, clock.now() + 1h);
        break;
    }
  }
}

}  // namespace
}  // namespace supervisor
