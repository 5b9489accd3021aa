#include "daemon/metrics.h"

#include <cstdio>
#include <initializer_list>
#include <utility>

namespace thatchd {

namespace {

using supervisor::Histogram;
using Labels = std::initializer_list<std::pair<const char*, std::string_view>>;

void appendEscaped(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n')
      out.append("\\n");
    else
      out.push_back(c);
  }
}

class Writer {
 public:
  void family(const char* name, const char* type, const char* help) {
    text_.append("# HELP ").append(name).append(" ").append(help).append("\n");
    text_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  }
  void sample(std::string_view name, Labels labels, std::string_view value) {
    text_.append(name);
    if (labels.size()) {
      char separator = '{';
      for (const auto& [label, labelValue] : labels) {
        text_.push_back(separator);
        text_.append(label).append("=\"");
        appendEscaped(text_, labelValue);
        text_.push_back('"');
        separator = ',';
      }
      text_.push_back('}');
    }
    text_.append(" ").append(value).append("\n");
  }
  void sample(std::string_view name, Labels labels, uint64_t value) {
    char digits[24];
    int length = snprintf(digits, sizeof digits, "%llu", static_cast<unsigned long long>(value));
    sample(name, labels, std::string_view(digits, size_t(length)));
  }
  // One family of one sample.
  void single(const char* name, const char* type, const char* help, uint64_t value) {
    family(name, type, help);
    sample(name, {}, value);
  }
  std::string take() { return std::move(text_); }

 private:
  std::string text_;
};

struct Scalar {
  const char* name;
  const char* type;
  const char* help;
  uint64_t value;
};

void writeScalars(Writer& out, const supervisor::Stats& s, const DaemonMetrics& daemon) {
  const Scalar scalars[] = {
      {"thatch_invocations_unknown_function_total", "counter",
       "Invocations of a name not in the registry: not found, or removed while they ran.",
       s.unknownFunctionInvocations},
      {"thatch_cold_starts_total", "counter", "Invocations that started a new sandbox.",
       s.coldStarts},
      {"thatch_warm_starts_total", "counter", "Invocations served by a warm sandbox.",
       s.warmStarts},
      {"thatch_idle_memory_bytes", "gauge", "Memory the idle (warm) sandboxes use.",
       s.idleMemoryBytes},
      {"thatch_evictions_total", "counter",
       "Idle sandboxes killed to make room under the host's caps.", s.pools.evictions},
      {"thatch_expirations_total", "counter",
       "Idle sandboxes killed at the end of their keep-alive.", s.pools.expirations},
      {"thatch_queue_depth", "gauge", "Invocations waiting for admission now.",
       s.queuedInvocations},
      {"thatch_queue_timeouts_total", "counter",
       "Invocations refused after waiting in the queue past the queue timeout.",
       s.admission.queueTimeouts},
      {"thatch_overloaded_total", "counter",
       "Invocations refused on arrival: the concurrency limit reached and the queue full.",
       s.admission.overloaded},
      {"thatch_zygote_restarts_total", "counter", "Zygotes restarted after they died.",
       s.zygoteRestarts},
      {"thatch_event_queue_depth", "gauge",
       "Event (asynchronous) invocations accepted and not yet done.", daemon.eventQueueDepth},
  };
  for (const Scalar& scalar : scalars)
    out.single(scalar.name, scalar.type, scalar.help, scalar.value);
}

void writeInvocations(Writer& out, const supervisor::Stats& s) {
  const char* name = "thatch_invocations_total";
  out.family(name, "counter", "Invocations ended, by function (in the registry) and status.");
  for (const auto& [function, byStatus] : s.invocationsByFunction)
    for (const auto& [status, count] : byStatus)
      out.sample(name, {{"function", function}, {"status", status}}, count);
}

void writeSandboxes(Writer& out, const supervisor::Stats& s) {
  const char* name = "thatch_sandboxes";
  out.family(name, "gauge",
             "Sandboxes now: live (all of them), and of those idle (warm, frozen included), "
             "frozen, and starting.");
  const std::pair<const char*, uint64_t> states[] = {{"live", s.liveSandboxes},
                                                     {"idle", s.idleSandboxes},
                                                     {"frozen", s.frozenSandboxes},
                                                     {"starting", s.startingSandboxes}};
  for (const auto& [state, count] : states) out.sample(name, {{"state", state}}, count);
}

void writeKills(Writer& out, const supervisor::Stats& s) {
  const char* name = "thatch_kills_total";
  out.family(name, "counter", "Sandboxes killed, by reason.");
  for (const auto& [reason, count] : s.killsByReason) out.sample(name, {{"reason", reason}}, count);
}

uint64_t nanos(supervisor::Duration d) {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

// Histogram's power-of-two microsecond buckets as cumulative `le` buckets:
// bucket i holds [2^i, 2^(i+1)) µs, so its bound is 2^(i+1) µs; the last
// one also takes everything longer, so it is +Inf.
void writeHistogram(Writer& out, const char* phase, const Histogram& h) {
  uint64_t cumulative = 0;
  for (int i = 0; i + 1 < Histogram::kBuckets; ++i) {
    cumulative += h.counts[i];
    out.sample("thatch_invocation_duration_seconds_bucket",
               {{"phase", phase}, {"le", secondsText((2ull << i) * 1000)}}, cumulative);
  }
  out.sample("thatch_invocation_duration_seconds_bucket", {{"phase", phase}, {"le", "+Inf"}},
             h.total);
  out.sample("thatch_invocation_duration_seconds_sum", {{"phase", phase}},
             secondsText(nanos(h.sum)));
  out.sample("thatch_invocation_duration_seconds_count", {{"phase", phase}}, h.total);
}

void writeDurations(Writer& out, const supervisor::Stats& s) {
  out.family("thatch_invocation_duration_seconds", "histogram",
             "Time invocations that got a sandbox spent in each phase: queued (waiting for "
             "admission), start (getting a sandbox, warm or cold), run (in it).");
  writeHistogram(out, "queued", s.queued);
  writeHistogram(out, "start", s.start);
  writeHistogram(out, "run", s.run);
}

void writeProcess(Writer& out, const ProcessMetrics& p) {
  out.single("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
             p.residentBytes);
  out.single("process_open_fds", "gauge", "Number of open file descriptors.", p.openFds);
  out.single("process_max_fds", "gauge", "Maximum number of open file descriptors.", p.maxFds);
  out.family("process_start_time_seconds", "gauge",
             "Start time of the process since unix epoch in seconds.");
  out.sample("process_start_time_seconds", {}, secondsText(p.startTimeNs));
  out.family("process_cpu_seconds_total", "counter",
             "Total user and system CPU time spent in seconds.");
  out.sample("process_cpu_seconds_total", {}, secondsText(p.cpuNs));
}

// thatch_trigger_*: one series per trigger in each family.
void writeTriggers(Writer& out, const std::vector<TriggerMetrics>& triggers) {
  struct Family {
    const char* name;
    const char* type;
    const char* help;
    uint64_t TriggerMetrics::*value;
  };
  static const Family kFamilies[] = {
      {"thatch_trigger_deliveries_total", "counter",
       "Invocations a trigger started (a stream: batches).", &TriggerMetrics::deliveries},
      {"thatch_trigger_messages_total", "counter",
       "Messages a stream trigger delivered, retries included.", &TriggerMetrics::messages},
      {"thatch_trigger_failures_total", "counter",
       "Invocations a trigger started that did not succeed.", &TriggerMetrics::failures},
      {"thatch_trigger_skipped_runs_total", "counter",
       "Schedule runs skipped because the previous run still ran.", &TriggerMetrics::skipped},
      {"thatch_trigger_missed_runs_total", "counter",
       "Schedule runs that were due while thatchd was down (not run).", &TriggerMetrics::missed},
      {"thatch_trigger_lag_messages", "gauge",
       "Entries of a stream its consumer group has not read yet.", &TriggerMetrics::lag},
      {"thatch_trigger_dead_lettered_total", "counter",
       "Messages a stream trigger moved to its dead-letter stream.", &TriggerMetrics::deadLettered},
  };
  for (const Family& family : kFamilies) {
    out.family(family.name, family.type, family.help);
    for (const TriggerMetrics& t : triggers)
      out.sample(family.name, {{"trigger", t.id}, {"kind", t.kind}, {"function", t.function}},
                 t.*family.value);
  }
  out.family("thatch_trigger_enabled", "gauge", "1 for an enabled trigger, 0 for a disabled one.");
  for (const TriggerMetrics& t : triggers)
    out.sample("thatch_trigger_enabled",
               {{"trigger", t.id}, {"kind", t.kind}, {"function", t.function}},
               uint64_t(t.enabled ? 1 : 0));
}

}  // namespace

std::string escapeLabelValue(std::string_view value) {
  std::string escaped;
  appendEscaped(escaped, value);
  return escaped;
}

std::string secondsText(uint64_t ns) {
  std::string text = std::to_string(ns / 1000000000);
  uint64_t fraction = ns % 1000000000;
  if (fraction == 0) return text;
  char digits[16];
  snprintf(digits, sizeof digits, ".%09llu", static_cast<unsigned long long>(fraction));
  text += digits;
  while (text.back() == '0') text.pop_back();
  return text;
}

std::string renderMetrics(const supervisor::Stats& stats, const DaemonMetrics& daemon) {
  Writer out;
  out.family("thatch_build_info", "gauge", "thatchd's version, as a label; always 1.");
  out.sample("thatch_build_info", {{"version", daemon.version}}, 1);
  out.family("thatch_keep_alive_policy_info", "gauge",
             "The keep-alive policy in use ([pool] keep_alive), as a label; always 1.");
  out.sample("thatch_keep_alive_policy_info", {{"policy", stats.keepAlive}}, 1);
  writeInvocations(out, stats);
  writeScalars(out, stats, daemon);
  writeSandboxes(out, stats);
  writeKills(out, stats);
  writeDurations(out, stats);
  writeTriggers(out, daemon.triggers);
  if (daemon.process) writeProcess(out, *daemon.process);
  return out.take();
}

}  // namespace thatchd
