// How many stem cells a zygote keeps: as many as the cold starts that arrive
// while replacements warm up, within [2, the configured maximum] (two: one
// for a request, one for the next while the first's replacement warms up).
// Pure code on a caller's clock (nanoseconds), so that it is tested on a
// fake one.
//
// Demand is every spawn request that a stem could serve, claimed or not,
// as a decaying rate (time constant 1 s), so that the pool grows within a
// burst; the highest rate seen is held and decays only slowly (30 s), so
// that the pool shrinks after a while without cold starts, not in the
// first pause. The pool is sized by Little's law on that rate: rate x
// warm-up time (measured, fork to warm) is how many stems are warming at
// once, doubled for the bursts of a random arrival process, plus one that
// is always warm.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace runtime {

class StemPolicy {
 public:
  static constexpr double kFastSeconds = 1;
  static constexpr double kSlowSeconds = 30;
  // Until a stem has warmed up, the time a warm-up is assumed to take.
  static constexpr double kAssumedWarmUpSeconds = 0.05;
  static constexpr unsigned kMinimum = 2;

  explicit StemPolicy(unsigned maximum) : maximum_(maximum) {}

  unsigned maximum() const { return maximum_; }

  // A spawn request a stem cell could have served, claimed or not.
  void requested(uint64_t nowNs) {
    fast_.add(nowNs, kFastSeconds);
    held_.raise(nowNs, kSlowSeconds, fast_.at(nowNs, kFastSeconds));
  }

  // A stem cell turned warm `warmUpNs` after it was forked (a moving
  // average: the last eight or so count).
  void warmed(uint64_t warmUpNs) {
    double seconds = warmUpNs / 1e9;
    warmUpSeconds_ = warmedOnce_ ? warmUpSeconds_ + (seconds - warmUpSeconds_) / 8 : seconds;
    warmedOnce_ = true;
  }

  // How many stem cells to keep, warm or warming, at `nowNs`.
  unsigned target(uint64_t nowNs) const {
    if (maximum_ == 0) return 0;
    double warming = rate(nowNs) * warmUpSeconds_;
    // A tenth of a stem of slack, so that a rate decayed to almost nothing
    // does not keep a second one.
    double wanted = std::max<double>(kMinimum, 1 + std::ceil(2 * warming - 0.1));
    return static_cast<unsigned>(std::min(wanted, static_cast<double>(maximum_)));
  }

  // Requests per second, as the pool is sized (for logs and tests).
  double rate(uint64_t nowNs) const {
    return std::max(fast_.at(nowNs, kFastSeconds), held_.at(nowNs, kSlowSeconds));
  }
  double warmUpSeconds() const { return warmUpSeconds_; }

 private:
  // Events per second, each weighing exp(-age / tau) / tau.
  struct DecayingRate {
    double value = 0;
    uint64_t asOfNs = 0;
    double at(uint64_t nowNs, double tau) const {
      if (nowNs <= asOfNs) return value;
      return value * std::exp(-((nowNs - asOfNs) / 1e9) / tau);
    }
    void add(uint64_t nowNs, double tau) {
      value = at(nowNs, tau) + 1 / tau;
      asOfNs = std::max(asOfNs, nowNs);
    }
    void raise(uint64_t nowNs, double tau, double to) {
      value = std::max(at(nowNs, tau), to);
      asOfNs = std::max(asOfNs, nowNs);
    }
  };

  unsigned maximum_;
  DecayingRate fast_, held_;
  double warmUpSeconds_ = kAssumedWarmUpSeconds;
  bool warmedOnce_ = false;
};

}  // namespace runtime
