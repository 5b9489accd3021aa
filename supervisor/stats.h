// What thatchd answers and counts: an invocation's result, and the
// supervisor's statistics with their histograms.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "supervisor/admission.h"
#include "supervisor/clock.h"
#include "supervisor/warm_pools.h"
#include "thatch/types.h"

namespace supervisor {

using thatch::Status;
using thatch::statusName;

struct InvokeResult {
  Status status = Status::kOk;
  std::string payload;  // the JSON result (or raw bytes) when kOk
  std::string errorType, errorMessage, traceback;
  std::string logs;
  bool logsTruncated = false;
  bool cold = false;  // a new sandbox was started for it
  uint64_t sandboxId = 0;
  uint64_t version = 0;
  Duration queued{}, start{}, run{};
};

// A result with a status and a message only: an invocation that never ran.
InvokeResult statusOnly(Status status, std::string message = {});

// Durations in power-of-two buckets of microseconds: bucket i counts
// those in [2^i, 2^(i+1)) µs (bucket 0 also takes everything below 1 µs).
struct Histogram {
  static constexpr int kBuckets = 32;  // up to ~71 minutes
  uint64_t counts[kBuckets] = {};
  uint64_t total = 0;
  Duration sum{};  // of every duration recorded (Prometheus' _sum)
  void record(Duration d);
  // The upper bound of the bucket holding the q-quantile (0 < q <= 1).
  Duration quantile(double q) const;
};

struct Stats {
  std::map<std::string, uint64_t> invocationsByStatus;
  // The same by function, of the functions in the registry only: bounded
  // by it (a function's counts go when it is removed). Those of names not
  // in it (not found, or removed while they ran) count in
  // unknownFunctionInvocations.
  std::map<std::string, std::map<std::string, uint64_t>> invocationsByFunction;
  uint64_t unknownFunctionInvocations = 0;
  // Invocations waiting for admission now.
  uint64_t queuedInvocations = 0;
  uint64_t coldStarts = 0, warmStarts = 0;
  uint64_t liveSandboxes = 0, idleSandboxes = 0, idleMemoryBytes = 0;
  // Live sandboxes not ready yet: asked of a zygote, or importing.
  uint64_t startingSandboxes = 0;
  std::string keepAlive;  // the policy in use: [pool] keep_alive
  WarmPools::Counters pools;
  Admission::Counters admission;
  std::map<std::string, uint64_t> killsByReason;
  uint64_t zygoteRestarts = 0;
  Histogram queued, start, run;  // of every invocation that got a sandbox
  uint64_t prewarmed = 0;
  // Queued invocations sent ahead into a busy sandbox's channel; how many
  // of those started there (the rest went back to waiting, or were
  // cancelled there).
  uint64_t sentAhead = 0, sentAheadStarted = 0;
  // Answers that came through a sandbox's shared answer page while the loop
  // polled (supervisor/busy_poll.h), not its channel.
  uint64_t answeredInPage = 0;
  // [pool] freeze_idle: idle sandboxes frozen now; freezes and thaws so far.
  uint64_t frozenSandboxes = 0, freezes = 0, thaws = 0;
};

}  // namespace supervisor
