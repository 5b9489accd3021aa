#include "bench/replay.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <queue>
#include <string_view>
#include <utility>

namespace replay {
namespace {

using supervisor::FunctionKey;
using supervisor::TimePoint;
using supervisor::WarmPools;

// --- Reading -----------------------------------------------------------------

// One CSV file read line by line, its errors placed at line and column.
class CsvReader {
 public:
  CsvReader(std::istream& in, std::string name) : in_(in), name_(std::move(name)) {}

  // The next line's fields; false at the end. Blank lines are skipped.
  bool next(std::vector<std::string_view>& fields) {
    while (std::getline(in_, line_)) {
      ++lineNumber_;
      if (!line_.empty() && line_.back() == '\r') line_.pop_back();
      if (line_.empty()) continue;
      fields.clear();
      size_t start = 0;
      for (;;) {
        size_t comma = line_.find(',', start);
        fields.push_back(std::string_view(line_).substr(start, comma - start));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      return true;
    }
    if (in_.bad()) throw TraceError(name_ + ": cannot read the file");
    return false;
  }

  [[noreturn]] void fail(size_t column, const std::string& what) const {
    throw TraceError(name_ + ":" + std::to_string(std::max<size_t>(lineNumber_, 1)) + ":" +
                     std::to_string(column) + ": " + what);
  }

  void expectHeader(const std::vector<std::string_view>& fields,
                    const std::vector<std::string_view>& names) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (i >= fields.size())
        fail(fields.size() + 1, "the header has no column " + std::string(names[i]));
      if (fields[i] != names[i])
        fail(i + 1, "expected column " + std::string(names[i]) + ", found '" +
                        std::string(fields[i]) + "'");
    }
  }

  template <typename T>
  T number(std::string_view field, size_t column, const char* what) const {
    T value{};
    auto [end, error] = std::from_chars(field.data(), field.data() + field.size(), value);
    if (error != std::errc() || end != field.data() + field.size() || field.empty())
      fail(column, "expected " + std::string(what) + ", found '" + std::string(field) + "'");
    return value;
  }

 private:
  std::istream& in_;
  std::string name_;
  std::string line_;
  size_t lineNumber_ = 0;
};

using Fields = std::vector<std::string_view>;

}  // namespace

Trace readInvocations(std::istream& in, const std::string& name) {
  CsvReader csv(in, name);
  Fields fields;
  if (!csv.next(fields)) csv.fail(1, "empty file: expected the header HashOwner,HashApp,...");
  csv.expectHeader(fields, {"HashOwner", "HashApp", "HashFunction", "Trigger"});
  Trace trace;
  trace.minutes = static_cast<unsigned>(fields.size() - 4);
  if (trace.minutes == 0) csv.fail(5, "the header has no minute columns (1,2,...,1440)");
  for (unsigned m = 1; m <= trace.minutes; ++m)
    if (fields[3 + m] != std::to_string(m))
      csv.fail(4 + m, "expected minute column " + std::to_string(m) + ", found '" +
                          std::string(fields[3 + m]) + "'");
  while (csv.next(fields)) {
    if (fields.size() != 4 + trace.minutes)
      csv.fail(std::min(fields.size(), size_t{4 + trace.minutes}) + 1,
               std::to_string(fields.size()) + " columns where the header has " +
                   std::to_string(4 + trace.minutes));
    TraceFunction f{std::string(fields[0]),
                    std::string(fields[1]),
                    std::string(fields[2]),
                    std::string(fields[3]),
                    {},
                    kDefaultDuration,
                    kDefaultMemoryBytes};
    f.perMinute.reserve(trace.minutes);
    for (unsigned m = 0; m < trace.minutes; ++m)
      f.perMinute.push_back(csv.number<uint32_t>(fields[4 + m], 5 + m, "a count of invocations"));
    trace.functions.push_back(std::move(f));
  }
  return trace;
}

void readDurations(Trace& trace, std::istream& in, const std::string& name) {
  CsvReader csv(in, name);
  Fields fields;
  if (!csv.next(fields)) csv.fail(1, "empty file: expected the header HashOwner,HashApp,...");
  csv.expectHeader(fields, {"HashOwner", "HashApp", "HashFunction", "Average"});
  std::map<std::tuple<std::string, std::string, std::string>, Duration> byFunction;
  while (csv.next(fields)) {
    if (fields.size() < 4) csv.fail(fields.size() + 1, "expected at least 4 columns");
    double ms = csv.number<double>(fields[3], 4, "an average in milliseconds");
    if (!(ms >= 0) || ms > 1e9) csv.fail(4, "an average of " + std::string(fields[3]) + " ms");
    byFunction[{std::string(fields[0]), std::string(fields[1]), std::string(fields[2])}] =
        std::chrono::round<Duration>(std::chrono::duration<double, std::milli>(ms));
  }
  for (TraceFunction& f : trace.functions)
    if (auto it = byFunction.find({f.owner, f.app, f.function}); it != byFunction.end())
      f.duration = it->second;
}

void readMemory(Trace& trace, std::istream& in, const std::string& name) {
  CsvReader csv(in, name);
  Fields fields;
  if (!csv.next(fields)) csv.fail(1, "empty file: expected the header HashOwner,HashApp,...");
  csv.expectHeader(fields, {"HashOwner", "HashApp", "SampleCount", "AverageAllocatedMb"});
  std::map<std::pair<std::string, std::string>, uint64_t> byApp;
  while (csv.next(fields)) {
    if (fields.size() < 4) csv.fail(fields.size() + 1, "expected at least 4 columns");
    double mb = csv.number<double>(fields[3], 4, "an allocation in MB");
    if (!(mb > 0) || mb > 1e7) csv.fail(4, "an allocation of " + std::string(fields[3]) + " MB");
    byApp[{std::string(fields[0]), std::string(fields[1])}] =
        static_cast<uint64_t>(std::llround(mb * (1 << 20)));
  }
  for (TraceFunction& f : trace.functions)
    if (auto it = byApp.find({f.owner, f.app}); it != byApp.end()) f.memoryBytes = it->second;
}

// --- Replaying ---------------------------------------------------------------

namespace {

// An invocation ending; ends at the same instant as an arrival go first, so
// the sandbox it frees can serve the arrival.
struct End {
  TimePoint at;
  size_t function;
  uint64_t sandbox;
  bool operator>(const End& other) const { return at > other.at; }
};

class Replay {
 public:
  Replay(const Trace& trace, const Options& options)
      : trace_(trace),
        pools_(clock_, supervisor::makeKeepAlivePolicy(options.policy, options.idleTtl),
               options.host),
        start_(clock_.now()),
        tick_(options.tick),
        nextTick_(start_ + options.tick),
        cold_(trace.functions.size(), 0),
        calls_(trace.functions.size(), 0) {
    for (size_t i = 0; i < trace.functions.size(); ++i) {
      keys_.push_back(FunctionKey{std::to_string(i), 1});
      pools_.setLimits(keys_.back(), supervisor::PoolLimits{0, options.maxWarm, options.idleTtl});
    }
  }

  Result run() {
    std::vector<std::pair<TimePoint, size_t>> arrivals;
    for (unsigned minute = 0; minute < trace_.minutes; ++minute) {
      arrivalsIn(minute, arrivals);
      for (const auto& [at, function] : arrivals) {
        finishUntil(at);
        arrive(at, function);
      }
    }
    finishUntil(start_ + trace_.minutes * std::chrono::minutes(1));
    return result();
  }

 private:
  // A minute's invocations of each function spread evenly within it, in
  // time order (ties: the trace's order).
  void arrivalsIn(unsigned minute, std::vector<std::pair<TimePoint, size_t>>& arrivals) const {
    arrivals.clear();
    TimePoint begin = start_ + minute * std::chrono::minutes(1);
    for (size_t i = 0; i < trace_.functions.size(); ++i) {
      uint32_t count = trace_.functions[i].perMinute[minute];
      Duration gap = Duration(std::chrono::minutes(1)) / std::max<uint32_t>(count, 1);
      for (uint32_t k = 0; k < count; ++k) arrivals.emplace_back(begin + gap / 2 + k * gap, i);
    }
    std::stable_sort(arrivals.begin(), arrivals.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
  }

  void arrive(TimePoint at, size_t function) {
    advanceTo(at);
    const FunctionKey& key = keys_[function];
    pools_.invocationStarted(key);
    std::optional<uint64_t> sandbox = pools_.take(key);
    if (!sandbox) {
      sandbox = nextSandbox_++;
      ++cold_[function];
    }
    ++calls_[function];
    ends_.push(End{at + trace_.functions[function].duration, function, *sandbox});
  }

  // Every invocation ending up to `until`, with the timers between.
  void finishUntil(TimePoint until) {
    while (!ends_.empty() && ends_.top().at <= until) {
      End end = ends_.top();
      ends_.pop();
      advanceTo(end.at);
      pools_.invocationEnded(keys_[end.function]);
      pools_.putIdle(keys_[end.function], end.sandbox, trace_.functions[end.function].memoryBytes);
    }
    advanceTo(until);
  }

  // Moves the clock to `to` through every housekeeping tick before it,
  // adding up the idle memory's time. Expiry and pre-warms happen on the
  // ticks, as thatchd's housekeeping does them.
  void advanceTo(TimePoint to) {
    while (nextTick_ <= to) {
      moveClock(nextTick_);
      pools_.expire();
      for (const FunctionKey& key : pools_.takePrewarmsDue()) {
        size_t function = std::stoul(key.name);
        ++prewarms_;
        pools_.putIdle(key, nextSandbox_++, trace_.functions[function].memoryBytes,
                       WarmPools::From::kPrewarm);
      }
      nextTick_ += tick_;
    }
    moveClock(to);
  }

  void moveClock(TimePoint to) {
    wastedByteSeconds_ += static_cast<double>(pools_.idleMemoryBytes()) *
                          std::chrono::duration<double>(to - clock_.now()).count();
    clock_.advance(to - clock_.now());
  }

  Result result() const {
    Result r;
    std::vector<double> ratios;
    for (size_t i = 0; i < calls_.size(); ++i) {
      r.invocations += calls_[i];
      r.coldStarts += cold_[i];
      if (calls_[i] > 0) ratios.push_back(static_cast<double>(cold_[i]) / calls_[i]);
    }
    r.prewarms = prewarms_;
    r.sandboxesStarted = r.coldStarts + prewarms_;
    r.wastedGibSeconds = wastedByteSeconds_ / (1ull << 30);
    std::sort(ratios.begin(), ratios.end());
    auto percentile = [&](double p) {
      if (ratios.empty()) return 0.0;
      size_t rank = static_cast<size_t>(std::ceil(p / 100 * ratios.size()));
      return ratios[std::max<size_t>(rank, 1) - 1];
    };
    r.coldRatioP75 = percentile(75);
    r.coldRatioP99 = percentile(99);
    return r;
  }

  const Trace& trace_;
  supervisor::FakeClock clock_;
  WarmPools pools_;
  TimePoint start_;
  Duration tick_;
  TimePoint nextTick_;
  std::vector<FunctionKey> keys_;
  std::vector<uint64_t> cold_, calls_;
  std::priority_queue<End, std::vector<End>, std::greater<End>> ends_;
  uint64_t nextSandbox_ = 1;
  uint64_t prewarms_ = 0;
  double wastedByteSeconds_ = 0;
};

}  // namespace

double Result::coldPercent() const {
  return invocations == 0 ? 0 : 100.0 * static_cast<double>(coldStarts) / invocations;
}

Result run(const Trace& trace, const Options& options) {
  return Replay(trace, options).run();
}

}  // namespace replay
