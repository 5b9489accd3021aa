// thatch-replay's core on hand-made traces with known answers.
#include "bench/replay.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

namespace replay {
namespace {

using namespace std::chrono_literals;
using supervisor::KeepAliveKind;

// A trace of `minutes` minutes; each row is "name" and its counts by minute
// (minutes not given are 0).
Trace traceOf(unsigned minutes, const std::vector<std::pair<std::string, std::vector<int>>>& rows) {
  std::string csv = "HashOwner,HashApp,HashFunction,Trigger";
  for (unsigned m = 1; m <= minutes; ++m) csv += "," + std::to_string(m);
  csv += "\n";
  for (const auto& [name, counts] : rows) {
    csv += "o,a," + name + ",http";
    for (unsigned m = 0; m < minutes; ++m)
      csv += "," + std::to_string(m < counts.size() ? counts[m] : 0);
    csv += "\n";
  }
  std::istringstream in(csv);
  return readInvocations(in, "trace.csv");
}

Result runWith(const Trace& trace, KeepAliveKind policy, Duration idleTtl = 10min) {
  Options options;
  options.policy = policy;
  options.idleTtl = idleTtl;
  return run(trace, options);
}

TEST(Replay, ColdStartsPerPolicyOnAKnownTrace) {
  // Each call lasts 1 s (no durations file). every: each minute, one cold
  // start. burst: three calls in minute 1, two in minute 10, 8m24s apart:
  // warm under every policy. twice: minutes 1 and 13, 11m59s apart: cold
  // again past the 10-minute TTL (and under the histogram, which knows
  // nothing of it yet), warm where nothing expires.
  Trace trace = traceOf(15, {{"every", std::vector<int>(15, 1)},
                             {"burst", {3, 0, 0, 0, 0, 0, 0, 0, 0, 2}},
                             {"twice", {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}}});
  struct Expected {
    KeepAliveKind policy;
    uint64_t coldStarts;
  };
  for (Expected e :
       {Expected{KeepAliveKind::kTtl, 4}, Expected{KeepAliveKind::kLru, 3},
        Expected{KeepAliveKind::kGreedyDual, 3}, Expected{KeepAliveKind::kHistogram, 4}}) {
    Result r = runWith(trace, e.policy);
    EXPECT_EQ(r.invocations, 22u);
    EXPECT_EQ(r.coldStarts, e.coldStarts) << supervisor::keepAliveName(e.policy);
    EXPECT_EQ(r.sandboxesStarted, e.coldStarts);
    // every 1/15, burst 1/5, twice 1/2 or 2/2: the 75th and 99th are twice's.
    EXPECT_DOUBLE_EQ(r.coldRatioP99, e.coldStarts == 4 ? 1.0 : 0.5);
  }
}

TEST(Replay, TheHistogramPrewarmsAPeriodicFunction) {
  // Every 3 minutes for 45 minutes, a 1-minute idle_ttl: under ttl each of
  // the 15 calls is cold. The histogram has its 10 idle times of 2m59s
  // (bin 2) as the 11th call begins: from then the sandbox is unloaded after
  // each call and pre-warmed 1m48s after it ended, kept 1m30s, and each
  // later call finds it.
  std::vector<int> every3(45, 0);
  for (size_t m = 0; m < every3.size(); m += 3) every3[m] = 1;
  Trace trace = traceOf(45, {{"timer", every3}});
  Result ttl = runWith(trace, KeepAliveKind::kTtl, 1min);
  EXPECT_EQ(ttl.coldStarts, 15u);
  EXPECT_EQ(ttl.prewarms, 0u);
  EXPECT_DOUBLE_EQ(ttl.wastedGibSeconds, 15 * 60 * 0.125);  // 128 MiB idle 60 s after each

  Result histogram = runWith(trace, KeepAliveKind::kHistogram, 1min);
  EXPECT_EQ(histogram.coldStarts, 11u);
  EXPECT_EQ(histogram.prewarms, 5u);
  EXPECT_EQ(histogram.sandboxesStarted, 16u);
  // 60 s after each of the first ten; the pre-warmed ones idle 71 s until
  // the next call, the last 41 s until the trace ends.
  EXPECT_DOUBLE_EQ(histogram.wastedGibSeconds, (10 * 60 + 4 * 71 + 41) * 0.125);
}

TEST(Replay, DurationsAndMemoryJoinByTheirKeys) {
  Trace trace = traceOf(2, {{"f", {1, 1}}, {"g", {1}}});
  std::istringstream durations(
      "HashOwner,HashApp,HashFunction,Average,Count\no,a,f,2500,2\nother,a,g,9,1\n");
  readDurations(trace, durations, "durations.csv");
  std::istringstream memory("HashOwner,HashApp,SampleCount,AverageAllocatedMb\no,a,10,256\n");
  readMemory(trace, memory, "memory.csv");
  EXPECT_EQ(trace.functions[0].duration, 2500ms);
  EXPECT_EQ(trace.functions[1].duration, kDefaultDuration);  // another owner's g
  EXPECT_EQ(trace.functions[0].memoryBytes, 256ull << 20);
  EXPECT_EQ(trace.functions[1].memoryBytes, 256ull << 20);  // the same app
}

TEST(Replay, AMalformedFileIsNamedAtItsLineAndColumn) {
  struct Case {
    const char* csv;
    const char* error;
  };
  const Case cases[] = {
      {"", "trace.csv:1:1: empty file"},
      {"HashOwner,HashApp,Function,Trigger,1\n", "trace.csv:1:3: expected column HashFunction"},
      {"HashOwner,HashApp,HashFunction,Trigger\n", "trace.csv:1:5: the header has no minute"},
      {"HashOwner,HashApp,HashFunction,Trigger,1,3\n", "trace.csv:1:6: expected minute column 2"},
      {"HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,1,x\n",
       "trace.csv:2:6: expected a count of invocations, found 'x'"},
      {"HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,1,-1\n", "trace.csv:2:6:"},
      {"HashOwner,HashApp,HashFunction,Trigger,1,2\n\no,a,f,http,1\n",
       "trace.csv:3:6: 5 columns where the header has 6"},
  };
  for (const Case& c : cases) {
    std::istringstream in(c.csv);
    try {
      readInvocations(in, "trace.csv");
      ADD_FAILURE() << "accepted: " << c.csv;
    } catch (const TraceError& e) {
      EXPECT_EQ(std::string(e.what()).rfind(c.error, 0), 0u) << e.what();
    }
  }
  Trace trace = traceOf(1, {{"f", {1}}});
  std::istringstream durations("HashOwner,HashApp,HashFunction,Average\no,a,f,fast\n");
  EXPECT_THROW(
      {
        try {
          readDurations(trace, durations, "d.csv");
        } catch (const TraceError& e) {
          EXPECT_STREQ(e.what(), "d.csv:2:4: expected an average in milliseconds, found 'fast'");
          throw;
        }
      },
      TraceError);
}

}  // namespace
}  // namespace replay
