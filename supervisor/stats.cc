#include "supervisor/stats.h"

#include <algorithm>

namespace supervisor {

InvokeResult statusOnly(Status status, std::string message) {
  InvokeResult result;
  result.status = status;
  result.errorMessage = std::move(message);
  return result;
}

void Histogram::record(Duration d) {
  int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  int bucket = us <= 1 ? 0 : std::min(kBuckets - 1, 63 - __builtin_clzll(uint64_t(us)));
  counts[bucket]++;
  total++;
  sum += d;
}

Duration Histogram::quantile(double q) const {
  uint64_t wanted = std::max<uint64_t>(1, uint64_t(q * total + 0.999999));
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts[i];
    if (seen >= wanted) return std::chrono::microseconds(2ull << i);
  }
  return Duration::max();
}

}  // namespace supervisor
