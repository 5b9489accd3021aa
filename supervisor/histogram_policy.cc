#include "supervisor/histogram_policy.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>

namespace supervisor {

void IdleTimeHistogram::add(Duration idleTime, const HistogramOptions& options) {
  auto bin = static_cast<uint64_t>(std::max(idleTime, Duration::zero()) / options.binWidth);
  if (bin >= counts_.size()) {
    ++outOfBounds_;
    return;
  }
  ++counts_[bin];
  ++inRange_;
}

double IdleTimeHistogram::coefficientOfVariation() const {
  double n = static_cast<double>(counts_.size());
  double mean = static_cast<double>(inRange_) / n;
  if (mean == 0) return 0;
  double squares = 0;
  for (uint32_t count : counts_) squares += (count - mean) * (count - mean);
  return std::sqrt(squares / n) / mean;
}

// The first bin at which the in-range idle times reach `percentile`.
unsigned IdleTimeHistogram::binAtPercentile(double percentile) const {
  double wanted = percentile / 100 * static_cast<double>(inRange_);
  uint64_t seen = 0;
  for (unsigned bin = 0; bin < counts_.size(); ++bin) {
    seen += counts_[bin];
    if (seen > 0 && static_cast<double>(seen) >= wanted) return bin;
  }
  return static_cast<unsigned>(counts_.size()) - 1;
}

KeepAliveWindows IdleTimeHistogram::windows(const HistogramOptions& options) const {
  using Basis = KeepAliveWindows::Basis;
  KeepAliveWindows fixed{Basis::kTooFewSamples, Duration::zero(), options.fallbackKeepAlive};
  if (samples() < options.minSamples) return fixed;
  if (static_cast<double>(outOfBounds_) > options.maxOutOfBounds * static_cast<double>(samples())) {
    fixed.basis = Basis::kOutOfBounds;
    return fixed;
  }
  if (coefficientOfVariation() <= options.minCv) {
    fixed.basis = Basis::kNotConcentrated;
    return fixed;
  }
  // The head's bin's lower edge and the tail's bin's upper edge: idle times
  // are only known to the bin.
  Duration head = binAtPercentile(options.headPercentile) * options.binWidth;
  Duration tail = (binAtPercentile(options.tailPercentile) + 1) * options.binWidth;
  auto scaled = [](Duration d, double by) {
    return std::chrono::duration_cast<Duration>(
        std::chrono::duration<double, Duration::period>(static_cast<double>(d.count()) * by));
  };
  Duration prewarm = scaled(head, 1 - options.margin);
  return {Basis::kHistogram, prewarm, scaled(tail, 1 + options.margin) - prewarm};
}

namespace {

class HistogramPolicy final : public KeepAlivePolicy {
 public:
  explicit HistogramPolicy(HistogramOptions options)
      : options_(options), eviction_(makeLruPolicy()) {}

  const char* name() const override { return "histogram"; }

  void onIdle(const IdleSandbox& sandbox) override {
    eviction_->onIdle(sandbox);
    cancelPrewarm(stateOf(sandbox.function));  // one is loaded: nothing to warm
  }
  void onLeave(uint64_t id) override { eviction_->onLeave(id); }
  uint64_t chooseVictim() override { return eviction_->chooseVictim(); }

  void onInvocationStart(const FunctionKey& function, TimePoint now) override {
    FunctionState& state = stateOf(function);
    if (state.running++ == 0 && state.idleSince) {
      state.histogram.add(now - *state.idleSince, options_);
      state.windows = state.histogram.windows(options_);
      state.idleSince.reset();
    }
    cancelPrewarm(state);
  }

  void onInvocationEnd(const FunctionKey& function, TimePoint now) override {
    FunctionState& state = stateOf(function);
    // None running: it began before its version was dropped (onDrop), and
    // what it would teach is about a version that is gone.
    if (state.running == 0) return;
    if (--state.running > 0) return;
    state.idleSince = now;
    if (state.windows.prewarm > Duration::zero()) {
      state.prewarmAt = now + state.windows.prewarm;
      due_.emplace(*state.prewarmAt, function);
    }
  }

  void onDrop(const FunctionKey& function) override {
    auto it = functions_.find(function);
    if (it == functions_.end()) return;
    cancelPrewarm(it->second);
    functions_.erase(it);
  }

  std::optional<Duration> keepAliveFor(const FunctionKey& function) const override {
    auto it = functions_.find(function);
    return it == functions_.end() ? options_.fallbackKeepAlive : it->second.windows.keepAlive;
  }

  bool keepAfterInvocation(const FunctionKey& function) const override {
    auto it = functions_.find(function);
    return it == functions_.end() || it->second.windows.prewarm == Duration::zero();
  }

  std::vector<FunctionKey> takePrewarmsDue(TimePoint now) override {
    std::vector<FunctionKey> due;
    while (!due_.empty() && due_.begin()->first <= now) {
      due.push_back(due_.begin()->second);
      functions_.at(due.back()).prewarmAt.reset();
      due_.erase(due_.begin());
    }
    return due;
  }

  std::optional<TimePoint> nextPrewarm() const override {
    if (due_.empty()) return std::nullopt;
    return due_.begin()->first;
  }

 private:
  struct FunctionState {
    explicit FunctionState(const HistogramOptions& options)
        : histogram(options),
          windows{KeepAliveWindows::Basis::kTooFewSamples, Duration::zero(),
                  options.fallbackKeepAlive} {}
    IdleTimeHistogram histogram;
    KeepAliveWindows windows;  // recomputed at each new idle time
    unsigned running = 0;
    std::optional<TimePoint> idleSince;  // none while running, or before the first end
    std::optional<TimePoint> prewarmAt;  // in due_
  };

  FunctionState& stateOf(const FunctionKey& function) {
    return functions_.try_emplace(function, options_).first->second;
  }

  void cancelPrewarm(FunctionState& state) {
    if (!state.prewarmAt) return;
    for (auto it = due_.lower_bound({*state.prewarmAt, FunctionKey{}});
         it != due_.end() && it->first == *state.prewarmAt; ++it) {
      if (&functions_.at(it->second) != &state) continue;
      due_.erase(it);
      break;
    }
    state.prewarmAt.reset();
  }

  HistogramOptions options_;
  std::unique_ptr<KeepAlivePolicy> eviction_;
  std::map<FunctionKey, FunctionState> functions_;
  std::set<std::pair<TimePoint, FunctionKey>> due_;  // pre-warm times, earliest first
};

}  // namespace

std::unique_ptr<KeepAlivePolicy> makeHistogramPolicy(HistogramOptions options) {
  return std::make_unique<HistogramPolicy>(options);
}

}  // namespace supervisor
