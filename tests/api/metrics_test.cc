// /metrics' text (daemon/metrics.h): the exact exposition of a small fixed
// Stats — escaping, the histogram's cumulative buckets, +Inf equal to the
// count, exact sums — and the process' own figures read from /proc.
#include "daemon/metrics.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "daemon/process_metrics.h"

namespace thatchd {
namespace {

using namespace std::chrono_literals;

supervisor::Stats smallStats() {
  supervisor::Stats stats;
  stats.invocationsByFunction["hello"]["ok"] = 3;
  stats.invocationsByFunction["hello"]["handler_error"] = 1;
  stats.invocationsByFunction["odd\"name\\\n"]["ok"] = 2;  // not a valid name: escaped all the same
  stats.unknownFunctionInvocations = 7;
  stats.coldStarts = 2;
  stats.warmStarts = 4;
  stats.liveSandboxes = 5;
  stats.idleSandboxes = 3;
  stats.frozenSandboxes = 1;
  stats.startingSandboxes = 2;
  stats.idleMemoryBytes = 12345678;
  stats.pools.evictions = 8;
  stats.pools.expirations = 9;
  stats.killsByReason["evicted"] = 8;
  stats.killsByReason["timeout"] = 1;
  stats.queuedInvocations = 11;
  stats.admission.queueTimeouts = 12;
  stats.admission.overloaded = 13;
  stats.zygoteRestarts = 14;
  stats.keepAlive = "histogram";
  return stats;
}

DaemonMetrics daemonExtras() {
  DaemonMetrics extra;
  extra.version = "1.2.3";
  extra.eventQueueDepth = 15;
  return extra;
}

std::vector<std::string> linesWith(const std::string& text, const std::string& part) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.find(part) != std::string::npos) lines.push_back(line);
  return lines;
}

TEST(Metrics, EverySimpleFamilyExactly) {
  std::string text = renderMetrics(smallStats(), daemonExtras());
  std::string head = text.substr(0, text.find("# HELP thatch_invocation_duration_seconds "));
  EXPECT_EQ(
      head,
      "# HELP thatch_build_info thatchd's version, as a label; always 1.\n"
      "# TYPE thatch_build_info gauge\n"
      "thatch_build_info{version=\"1.2.3\"} 1\n"
      "# HELP thatch_keep_alive_policy_info The keep-alive policy in use ([pool] keep_alive), "
      "as a label; always 1.\n"
      "# TYPE thatch_keep_alive_policy_info gauge\n"
      "thatch_keep_alive_policy_info{policy=\"histogram\"} 1\n"
      "# HELP thatch_invocations_total Invocations ended, by function (in the registry) "
      "and status.\n"
      "# TYPE thatch_invocations_total counter\n"
      "thatch_invocations_total{function=\"hello\",status=\"handler_error\"} 1\n"
      "thatch_invocations_total{function=\"hello\",status=\"ok\"} 3\n"
      "thatch_invocations_total{function=\"odd\\\"name\\\\\\n\",status=\"ok\"} 2\n"
      "# HELP thatch_invocations_unknown_function_total Invocations of a name not in the "
      "registry: not found, or removed while they ran.\n"
      "# TYPE thatch_invocations_unknown_function_total counter\n"
      "thatch_invocations_unknown_function_total 7\n"
      "# HELP thatch_cold_starts_total Invocations that started a new sandbox.\n"
      "# TYPE thatch_cold_starts_total counter\n"
      "thatch_cold_starts_total 2\n"
      "# HELP thatch_warm_starts_total Invocations served by a warm sandbox.\n"
      "# TYPE thatch_warm_starts_total counter\n"
      "thatch_warm_starts_total 4\n"
      "# HELP thatch_idle_memory_bytes Memory the idle (warm) sandboxes use.\n"
      "# TYPE thatch_idle_memory_bytes gauge\n"
      "thatch_idle_memory_bytes 12345678\n"
      "# HELP thatch_evictions_total Idle sandboxes killed to make room under the host's "
      "caps.\n"
      "# TYPE thatch_evictions_total counter\n"
      "thatch_evictions_total 8\n"
      "# HELP thatch_expirations_total Idle sandboxes killed at the end of their "
      "keep-alive.\n"
      "# TYPE thatch_expirations_total counter\n"
      "thatch_expirations_total 9\n"
      "# HELP thatch_queue_depth Invocations waiting for admission now.\n"
      "# TYPE thatch_queue_depth gauge\n"
      "thatch_queue_depth 11\n"
      "# HELP thatch_queue_timeouts_total Invocations refused after waiting in the queue "
      "past the queue timeout.\n"
      "# TYPE thatch_queue_timeouts_total counter\n"
      "thatch_queue_timeouts_total 12\n"
      "# HELP thatch_overloaded_total Invocations refused on arrival: the concurrency "
      "limit reached and the queue full.\n"
      "# TYPE thatch_overloaded_total counter\n"
      "thatch_overloaded_total 13\n"
      "# HELP thatch_zygote_restarts_total Zygotes restarted after they died.\n"
      "# TYPE thatch_zygote_restarts_total counter\n"
      "thatch_zygote_restarts_total 14\n"
      "# HELP thatch_event_queue_depth Event (asynchronous) invocations accepted and not "
      "yet done.\n"
      "# TYPE thatch_event_queue_depth gauge\n"
      "thatch_event_queue_depth 15\n"
      "# HELP thatch_sandboxes Sandboxes now: live (all of them), and of those idle (warm, "
      "frozen included), frozen, and starting.\n"
      "# TYPE thatch_sandboxes gauge\n"
      "thatch_sandboxes{state=\"live\"} 5\n"
      "thatch_sandboxes{state=\"idle\"} 3\n"
      "thatch_sandboxes{state=\"frozen\"} 1\n"
      "thatch_sandboxes{state=\"starting\"} 2\n"
      "# HELP thatch_kills_total Sandboxes killed, by reason.\n"
      "# TYPE thatch_kills_total counter\n"
      "thatch_kills_total{reason=\"evicted\"} 8\n"
      "thatch_kills_total{reason=\"timeout\"} 1\n");
  // No process figures given, none shown.
  EXPECT_EQ(text.find("process_"), std::string::npos);
}

TEST(Metrics, HistogramBucketsAreCumulativeInSeconds) {
  supervisor::Stats stats;
  stats.queued.record(0us);     // bucket 0: [0, 2) µs
  stats.queued.record(3us);     // bucket 1: [2, 4) µs
  stats.queued.record(5us);     // bucket 2: [4, 8) µs
  stats.queued.record(1500ms);  // bucket 20: [1.048576, 2.097152) s
  stats.queued.record(1h);      // past the last bound: the last bucket
  std::vector<std::string> queued = linesWith(renderMetrics(stats, {}), "phase=\"queued\"");
  const char* bounds[] = {"0.000002",   "0.000004",   "0.000008",   "0.000016",   "0.000032",
                          "0.000064",   "0.000128",   "0.000256",   "0.000512",   "0.001024",
                          "0.002048",   "0.004096",   "0.008192",   "0.016384",   "0.032768",
                          "0.065536",   "0.131072",   "0.262144",   "0.524288",   "1.048576",
                          "2.097152",   "4.194304",   "8.388608",   "16.777216",  "33.554432",
                          "67.108864",  "134.217728", "268.435456", "536.870912", "1073.741824",
                          "2147.483648"};
  std::vector<std::string> expected;
  for (int i = 0; i < 31; ++i) {
    int cumulative = i == 0 ? 1 : i == 1 ? 2 : i < 20 ? 3 : 4;
    expected.push_back(
        std::string("thatch_invocation_duration_seconds_bucket{phase=\"queued\",le=\"") +
        bounds[i] + "\"} " + std::to_string(cumulative));
  }
  expected.push_back("thatch_invocation_duration_seconds_bucket{phase=\"queued\",le=\"+Inf\"} 5");
  expected.push_back("thatch_invocation_duration_seconds_sum{phase=\"queued\"} 3601.500008");
  expected.push_back("thatch_invocation_duration_seconds_count{phase=\"queued\"} 5");
  EXPECT_EQ(queued, expected);
  // The other phases are there, empty: a histogram keeps its buckets.
  std::vector<std::string> run = linesWith(renderMetrics(stats, {}), "phase=\"run\"");
  ASSERT_EQ(run.size(), 34u);
  EXPECT_EQ(run[31], "thatch_invocation_duration_seconds_bucket{phase=\"run\",le=\"+Inf\"} 0");
  EXPECT_EQ(run[32], "thatch_invocation_duration_seconds_sum{phase=\"run\"} 0");
  EXPECT_EQ(linesWith(renderMetrics(stats, {}), "# TYPE thatch_invocation_duration_seconds "),
            std::vector<std::string>{"# TYPE thatch_invocation_duration_seconds histogram"});
}

TEST(Metrics, ProcessFamiliesAsClientLibrariesNameThem) {
  DaemonMetrics extra;
  extra.process = ProcessMetrics{50 << 20, 42, 1024, 1700000000250000000, 1500000000};
  std::string text = renderMetrics({}, extra);
  EXPECT_EQ(text.substr(text.find("# HELP process_")),
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
            "# TYPE process_resident_memory_bytes gauge\n"
            "process_resident_memory_bytes 52428800\n"
            "# HELP process_open_fds Number of open file descriptors.\n"
            "# TYPE process_open_fds gauge\n"
            "process_open_fds 42\n"
            "# HELP process_max_fds Maximum number of open file descriptors.\n"
            "# TYPE process_max_fds gauge\n"
            "process_max_fds 1024\n"
            "# HELP process_start_time_seconds Start time of the process since unix epoch in "
            "seconds.\n"
            "# TYPE process_start_time_seconds gauge\n"
            "process_start_time_seconds 1700000000.25\n"
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
            "# TYPE process_cpu_seconds_total counter\n"
            "process_cpu_seconds_total 1.5\n");
}

TEST(Metrics, EachTriggerHasASeriesInEachTriggerFamily) {
  DaemonMetrics extra;
  thatchd::TriggerMetrics stream{"redis-stream-2", "redis-stream", "orders", true};
  stream.deliveries = 7;
  stream.messages = 70;
  stream.failures = 1;
  stream.lag = 12;
  stream.deadLettered = 3;
  thatchd::TriggerMetrics schedule{"schedule-1", "schedule", "report", false};
  schedule.deliveries = 4;
  schedule.skipped = 2;
  schedule.missed = 5;
  extra.triggers = {stream, schedule};
  std::string text = renderMetrics({}, extra);
  const std::string labels2 =
      "{trigger=\"redis-stream-2\",kind=\"redis-stream\",function=\"orders\"}";
  const std::string labels1 = "{trigger=\"schedule-1\",kind=\"schedule\",function=\"report\"}";
  for (const std::string& line : {
           "thatch_trigger_deliveries_total" + labels2 + " 7",
           "thatch_trigger_messages_total" + labels2 + " 70",
           "thatch_trigger_failures_total" + labels2 + " 1",
           "thatch_trigger_lag_messages" + labels2 + " 12",
           "thatch_trigger_dead_lettered_total" + labels2 + " 3",
           "thatch_trigger_enabled" + labels2 + " 1",
           "thatch_trigger_deliveries_total" + labels1 + " 4",
           "thatch_trigger_skipped_runs_total" + labels1 + " 2",
           "thatch_trigger_missed_runs_total" + labels1 + " 5",
           "thatch_trigger_enabled" + labels1 + " 0",
           std::string("# TYPE thatch_trigger_lag_messages gauge"),
           std::string("# TYPE thatch_trigger_missed_runs_total counter"),
       })
    EXPECT_EQ(linesWith(text, line).size(), 1u) << line << "\n" << text;
  // No trigger: the families are declared, with no sample.
  text = renderMetrics({}, {});
  EXPECT_EQ(linesWith(text, "# TYPE thatch_trigger_deliveries_total counter").size(), 1u);
  EXPECT_TRUE(linesWith(text, "thatch_trigger_deliveries_total{").empty());
}

TEST(Metrics, LabelValuesAndSecondsAsTheFormatWritesThem) {
  EXPECT_EQ(escapeLabelValue("plain"), "plain");
  EXPECT_EQ(escapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(escapeLabelValue("caf\xc3\xa9"), "caf\xc3\xa9");  // UTF-8 as it is
  EXPECT_EQ(secondsText(0), "0");
  EXPECT_EQ(secondsText(2000), "0.000002");
  EXPECT_EQ(secondsText(1), "0.000000001");
  EXPECT_EQ(secondsText(3000000000), "3");
  EXPECT_EQ(secondsText(1500000000), "1.5");
}

TEST(ProcessMetrics, ThisProcessAsProcSaysIt) {
  ProcessMetrics before = readProcessMetrics();
  int fd = dup(0);
  ASSERT_GE(fd, 0) << "dup: " << strerror(errno);
  ProcessMetrics after = readProcessMetrics();
  close(fd);
  EXPECT_EQ(after.openFds, before.openFds + 1);
  rlimit files{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &files), 0);
  EXPECT_EQ(after.maxFds, files.rlim_cur);
  EXPECT_GT(after.residentBytes, 1u << 20);
  uint64_t now = uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count());
  EXPECT_LE(after.startTimeNs, now + 1000000000ull);  // in clock ticks: one of rounding
  EXPECT_GT(after.startTimeNs, 0u);
  EXPECT_GE(after.cpuNs, before.cpuNs);
}

TEST(ProcessMetrics, AMissingProcSaysWhichCall) {
  try {
    readProcessMetrics("/nonexistent-proc");
    FAIL() << "no error";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("open /nonexistent-proc/self/stat"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace thatchd
