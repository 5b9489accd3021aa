// The hybrid histogram keep-alive policy of "Serverless in the Wild"
// (Shahrad et al., USENIX ATC 2020): per function, a histogram of its idle
// times gives a pre-warm window (unloaded after an invocation until then) and
// a keep-alive window; a fixed keep-alive while the histogram says nothing
// useful. docs/thatching.md, "Histogram".
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "supervisor/clock.h"
#include "supervisor/keep_alive.h"

namespace supervisor {

struct HistogramOptions {
  Duration binWidth = std::chrono::minutes(1);
  unsigned bins = 240;  // the range: 4 hours of 1-minute bins, as in the paper
  // While not representative, and when too many idle times are beyond the
  // range (the paper forecasts those with ARIMA; thatch does not).
  Duration fallbackKeepAlive = std::chrono::minutes(10);
  unsigned minSamples = 10;     // idle times seen before the histogram is trusted
  double minCv = 2.0;           // coefficient of variation of the bin counts
  double maxOutOfBounds = 0.5;  // share of idle times beyond the range
  double headPercentile = 5;
  double tailPercentile = 99;
  double margin = 0.1;  // the head shortened and the tail lengthened by this share
};

// What the histogram decides for one function.
struct KeepAliveWindows {
  enum class Basis { kHistogram, kTooFewSamples, kNotConcentrated, kOutOfBounds };
  Basis basis = Basis::kTooFewSamples;
  Duration prewarm{};    // after an invocation, unloaded this long (0: kept at once)
  Duration keepAlive{};  // then kept idle this long
};

// A function's idle times (end of one invocation to the start of the next),
// in bins of options.binWidth over options.bins bins, and those beyond.
class IdleTimeHistogram {
 public:
  explicit IdleTimeHistogram(const HistogramOptions& options) : counts_(options.bins, 0) {}
  void add(Duration idleTime, const HistogramOptions& options);
  KeepAliveWindows windows(const HistogramOptions& options) const;
  uint64_t samples() const { return inRange_ + outOfBounds_; }

 private:
  double coefficientOfVariation() const;
  unsigned binAtPercentile(double percentile) const;

  std::vector<uint32_t> counts_;
  uint64_t inRange_ = 0;
  uint64_t outOfBounds_ = 0;
};

// Evicts (under the host caps) as LRU does.
std::unique_ptr<KeepAlivePolicy> makeHistogramPolicy(HistogramOptions options = {});

}  // namespace supervisor
