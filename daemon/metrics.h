// GET /metrics: thatchd's statistics in the Prometheus text exposition
// format 0.0.4, rendered by pure code from what the supervisor counts
// (supervisor::Stats) and what the daemon adds. docs/lambda.md#metrics
// lists the families; the names follow Prometheus' conventions (base
// units, _total for counters) and its client libraries' process_* names.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "supervisor/stats.h"

namespace thatchd {

inline constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// This process's figures (daemon/process_metrics.h reads them).
struct ProcessMetrics {
  uint64_t residentBytes = 0;
  uint64_t openFds = 0, maxFds = 0;
  uint64_t startTimeNs = 0;  // since the Unix epoch
  uint64_t cpuNs = 0;        // user and system
};

// One trigger's figures (daemon/triggers.h's TriggerStats).
struct TriggerMetrics {
  std::string id, kind, function;
  bool enabled = true;
  uint64_t deliveries = 0, messages = 0, failures = 0, skipped = 0, missed = 0, lag = 0,
           deadLettered = 0;
};

struct DaemonMetrics {
  std::string version;           // thatch_build_info
  uint64_t eventQueueDepth = 0;  // Event invocations accepted and not yet done
  std::optional<ProcessMetrics> process;
  std::vector<TriggerMetrics> triggers;  // thatch_trigger_*, by id
};

std::string renderMetrics(const supervisor::Stats& stats, const DaemonMetrics& daemon);

// A label value as the format writes it: \, " and newline escaped.
std::string escapeLabelValue(std::string_view value);

// Nanoseconds as a decimal number of seconds, exactly ("0.000002", "1.5", "0").
std::string secondsText(uint64_t ns);

}  // namespace thatchd
