// The stem cell pool's size as a function of the cold starts seen, on a fake
// clock: grows within a burst, shrinks after a quiet while, stays within
// [2, maximum].

#include "runtime/stem_policy.h"

#include <gtest/gtest.h>

namespace {

using runtime::StemPolicy;

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kSecond = 1000 * kMs;

// `count` requests evenly over [start, start + span); returns the end.
uint64_t requests(StemPolicy& policy, uint64_t start, uint64_t span, int count) {
  for (int i = 0; i < count; ++i) policy.requested(start + span * i / count);
  return start + span;
}

TEST(StemPolicyTest, KeepsTheMinimumWhenNothingHasHappened) {
  StemPolicy policy(16);
  EXPECT_EQ(policy.target(0), StemPolicy::kMinimum);
  EXPECT_EQ(policy.target(3600 * kSecond), StemPolicy::kMinimum);
  StemPolicy single(1);
  EXPECT_EQ(single.target(0), 1u);
}

TEST(StemPolicyTest, NoneWhenTheMaximumIsZero) {
  StemPolicy policy(0);
  requests(policy, 0, kSecond, 100);
  EXPECT_EQ(policy.target(kSecond), 0u);
}

TEST(StemPolicyTest, SizesToTheRateTimesTheWarmUp) {
  StemPolicy policy(64);
  policy.warmed(40 * kMs);
  // 200 cold starts a second for 5 s, 40 ms each to warm a replacement:
  // ~8 warming at once, 2x for bursts, plus one.
  uint64_t now = requests(policy, 0, 5 * kSecond, 1000);
  EXPECT_NEAR(policy.rate(now), 200, 10);
  EXPECT_GE(policy.target(now), 16u);
  EXPECT_LE(policy.target(now), 19u);
}

TEST(StemPolicyTest, SlowerWarmUpsNeedMoreStems) {
  StemPolicy quick(64), slow(64);
  quick.warmed(10 * kMs);
  slow.warmed(100 * kMs);
  uint64_t now = requests(quick, 0, 2 * kSecond, 200);
  requests(slow, 0, 2 * kSecond, 200);
  EXPECT_LT(quick.target(now), slow.target(now));
}

TEST(StemPolicyTest, GrowsWithinABurst) {
  StemPolicy policy(32);
  policy.warmed(50 * kMs);
  EXPECT_EQ(policy.target(0), StemPolicy::kMinimum);
  // 100 cold starts in 200 ms: the pool is larger well before the burst ends.
  uint64_t now = requests(policy, 0, 100 * kMs, 50);
  EXPECT_GE(policy.target(now), 4u);
  now = requests(policy, now, 100 * kMs, 50);
  EXPECT_GE(policy.target(now), 8u);
}

TEST(StemPolicyTest, ShrinksWhenIdleButNotAtOnce) {
  StemPolicy policy(32);
  policy.warmed(50 * kMs);
  uint64_t now = requests(policy, 0, 10 * kSecond, 2000);
  unsigned busy = policy.target(now);
  EXPECT_GE(busy, 10u);
  // A pause of a few seconds keeps most of the pool...
  EXPECT_GE(policy.target(now + 5 * kSecond), busy / 2);
  // ...a quiet minute shrinks it, and a quiet few minutes leave the minimum.
  EXPECT_LT(policy.target(now + 60 * kSecond), busy / 2);
  EXPECT_EQ(policy.target(now + 300 * kSecond), StemPolicy::kMinimum);
}

TEST(StemPolicyTest, NeverAboveTheMaximum) {
  StemPolicy policy(4);
  policy.warmed(200 * kMs);
  uint64_t now = requests(policy, 0, kSecond, 1000);
  EXPECT_EQ(policy.target(now), 4u);
}

TEST(StemPolicyTest, TheWarmUpTimeIsAMovingAverage) {
  StemPolicy policy(8);
  EXPECT_DOUBLE_EQ(policy.warmUpSeconds(), StemPolicy::kAssumedWarmUpSeconds);
  policy.warmed(20 * kMs);
  EXPECT_DOUBLE_EQ(policy.warmUpSeconds(), 0.020);
  for (int i = 0; i < 50; ++i) policy.warmed(80 * kMs);
  EXPECT_NEAR(policy.warmUpSeconds(), 0.080, 0.001);
  policy.warmed(880 * kMs);  // one slow warm-up moves it by an eighth
  EXPECT_NEAR(policy.warmUpSeconds(), 0.180, 0.001);
}

TEST(StemPolicyTest, RequestsOutOfOrderDoNotMoveTheClockBack) {
  StemPolicy policy(8);
  policy.requested(10 * kSecond);
  policy.requested(5 * kSecond);
  EXPECT_NEAR(policy.rate(10 * kSecond), 2 / StemPolicy::kFastSeconds, 0.01);
}

}  // namespace
