// thatch-replay's core: an Azure Functions 2019 trace (the public dataset's
// per-minute invocation counts, with optional durations and memory) replayed
// through the real WarmPools and keep-alive policies on a simulated clock.
// docs/thatching.md, "Tuning from a trace".
#pragma once

#include <cstdint>
#include <istream>
#include <stdexcept>
#include <string>
#include <vector>

#include "supervisor/clock.h"
#include "supervisor/keep_alive_choice.h"
#include "supervisor/warm_pools.h"

namespace replay {

using supervisor::Duration;

// "FILE:LINE:COLUMN: what" for a malformed file (COLUMN counts fields from 1).
class TraceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TraceFunction {
  std::string owner, app, function, trigger;
  std::vector<uint32_t> perMinute;  // invocations in each minute of the day
  Duration duration;                // each invocation's (the function's average)
  uint64_t memoryBytes;             // a sandbox's (its app's average allocation)
};

struct Trace {
  std::vector<TraceFunction> functions;
  unsigned minutes = 0;
};

// Until a durations or memory file says otherwise.
constexpr Duration kDefaultDuration = std::chrono::seconds(1);
constexpr uint64_t kDefaultMemoryBytes = 128ull << 20;

// invocations_per_function_md.anon.d01.csv:
//   HashOwner,HashApp,HashFunction,Trigger,1,2,...,1440
Trace readInvocations(std::istream& in, const std::string& name);
// function_durations_percentiles.anon.d01.csv: HashOwner,HashApp,
// HashFunction,Average,... (ms). Functions it does not list keep theirs.
void readDurations(Trace& trace, std::istream& in, const std::string& name);
// app_memory_percentiles.anon.d01.csv: HashOwner,HashApp,SampleCount,
// AverageAllocatedMb,... Apps it does not list keep theirs.
void readMemory(Trace& trace, std::istream& in, const std::string& name);

struct Options {
  supervisor::KeepAliveKind policy = supervisor::KeepAliveKind::kTtl;
  Duration idleTtl = std::chrono::minutes(10);  // [pool] idle_ttl
  supervisor::HostLimits host;                  // [host] max_warm, max_warm_memory
  unsigned maxWarm = 8;                         // [pool] max_warm
  // Expiry and pre-warms are done on this period (thatchd's housekeeping
  // tick is 100 ms; coarser replays faster).
  Duration tick = std::chrono::seconds(1);
};

struct Result {
  uint64_t invocations = 0;
  uint64_t coldStarts = 0;
  uint64_t prewarms = 0;          // sandboxes the policy started before a call
  uint64_t sandboxesStarted = 0;  // cold starts + prewarms
  double wastedGibSeconds = 0;    // idle sandboxes' memory × their idle time
  // Over the functions invoked at least once: the share of their calls
  // that were cold, at these percentiles.
  double coldRatioP75 = 0;
  double coldRatioP99 = 0;
  double coldPercent() const;
};

Result run(const Trace& trace, const Options& options);

}  // namespace replay
