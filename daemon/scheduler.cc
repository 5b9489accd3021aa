#include "daemon/scheduler.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/fd.h"
#include "base/json.h"
#include "base/sys_error.h"
#include "base/text.h"
#include "supervisor/messages.h"

namespace thatchd {

namespace {

supervisor::StderrTaskErrors schedulerErrors("scheduler");

using TimePoint = WallClock::TimePoint;

int64_t unixMs(TimePoint time) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

TimePoint fromUnixMs(int64_t ms) {
  return TimePoint(std::chrono::milliseconds(ms));
}

// `detail` as EventBridge gives it: an object, {} when none.
bool isJsonObject(std::string_view text) {
  size_t first = text.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && text[first] == '{' && base::isJson(text);
}

}  // namespace

SystemWallClock::SystemWallClock(unsigned scale, const std::string& epochFile)
    : scale_(std::max(scale, 1u)), epoch_(std::chrono::system_clock::now()) {
  if (scale_ == 1 || epochFile.empty()) return;
  if (FILE* file = fopen(epochFile.c_str(), "re")) {
    long long ms = 0;
    if (fscanf(file, "%lld", &ms) == 1) epoch_ = fromUnixMs(ms);
    fclose(file);
    return;
  }
  std::string text = std::to_string(unixMs(epoch_)) + "\n";
  base::Fd fd(open(epochFile.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd || write(fd.get(), text.data(), text.size()) != ssize_t(text.size()))
    base::throwSysError("write " + epochFile);
}

TimePoint SystemWallClock::now() const {
  return fromSystem(std::chrono::system_clock::now());
}

TimePoint SystemWallClock::fromSystem(TimePoint system) const {
  return scale_ == 1 ? system : epoch_ + (system - epoch_) * scale_;
}

kj::Duration SystemWallClock::timerDelay(std::chrono::nanoseconds wall) const {
  if (wall.count() <= 0) return 0 * kj::NANOSECONDS;
  return ((wall.count() + scale_ - 1) / scale_) * kj::NANOSECONDS;
}

Scheduler::Scheduler(SchedulerOptions options, EventQueue& events, kj::Timer& timer,
                     const WallClock& clock, supervisor::EventLog log)
    : options_(std::move(options)),
      events_(events),
      timer_(timer),
      clock_(clock),
      log_(std::move(log)),
      startedAt_(clock.now()),
      random_(std::random_device()()),
      tasks_(kj::heap<kj::TaskSet>(schedulerErrors)) {
  std::string dir = options_.stateDir + "/schedules";
  if (mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST) base::throwSysError("mkdir " + dir);
  events_.setEnded(
      [this](const std::string& requestId, bool succeeded) { ended(requestId, succeeded); });
}

Scheduler::~Scheduler() noexcept {
  events_.setEnded(nullptr);
  tasks_ = nullptr;
}

void Scheduler::check(Trigger& trigger) {
  const std::string& text = trigger.schedule.expression;
  TimePoint now = clock_.now();
  try {
    ScheduleExpression expression = ScheduleExpression::parse(text, now);
    if (!expression.next(now))
      throw TriggerError("schedule expression '" + text + "' is never due after " + isoUtc(now));
  } catch (const ScheduleError& e) {
    throw TriggerError("schedule expression '" + text + "': " + e.what());
  }
  if (!trigger.schedule.detail.empty() && !isJsonObject(trigger.schedule.detail))
    throw TriggerError("a schedule's data (the event's detail) is a JSON object, not '" +
                       trigger.schedule.detail.substr(0, 64) + "'");
}

void Scheduler::start(const Trigger& trigger, TriggerStats& stats) {
  stop(trigger.id);
  TimePoint created = clock_.fromSystem(fromUnixMs(trigger.createdUnixMs));
  ScheduleExpression expression = ScheduleExpression::parse(trigger.schedule.expression, created);
  auto schedule = std::make_unique<Schedule>();
  schedule->trigger = trigger;
  schedule->expression = expression;
  schedule->stats = &stats;
  schedule->handled = created;
  // Since its last run (a previous start's), or its creation. One added
  // since this scheduler began missed nothing; the time one was disabled in
  // this process is no time thatchd was down.
  bool added = created >= startedAt_;
  if (added) {
    schedule->handled = clock_.now();
  } else if (std::optional<Saved> saved = loadHandled(trigger)) {
    schedule->handled = saved->handled;
    // Its run a predecessor queued, which the queue runs again: the next
    // due runs are skipped until it is done, as they would have been.
    if (!saved->inFlight.empty() && events_.holds(saved->inFlight)) {
      schedule->inFlight = saved->inFlight;
      runs_[saved->inFlight] = trigger.id;
    }
  }
  if (stopped_.erase(trigger.id)) schedule->handled = std::max(schedule->handled, clock_.now());
  Schedule& s = *schedule;
  schedules_[trigger.id] = std::move(schedule);
  if (added) saveHandled(s);  // a restart before its first run counts from here
  countMissed(s, clock_.now(), "down");
  arm(s);
}

void Scheduler::stop(const std::string& id) {
  auto it = schedules_.find(id);
  if (it == schedules_.end()) return;
  it->second->stats->nextRunUnixMs = 0;
  stopped_.insert(id);
  schedules_.erase(it);  // drops its wait: disarmed
}

void Scheduler::forget(const std::string& id) {
  stopped_.erase(id);
  unlink(statePath(id).c_str());
}

void Scheduler::clockMoved() {
  for (auto& [id, schedule] : schedules_) arm(*schedule);
}

void Scheduler::setAccount(std::string region, std::string accountId) {
  options_.region = std::move(region);
  options_.accountId = std::move(accountId);
}

void Scheduler::countMissed(Schedule& schedule, TimePoint until, const char* why) {
  ScheduleExpression::Span missed =
      schedule.expression.dueBetween(schedule.handled, until, kMaxMissedCounted);
  if (missed.count == 0) return;
  schedule.stats->missed += missed.count;
  schedule.handled = missed.last;
  log_.write("schedule_missed", {{"id", schedule.trigger.id},
                                 {"function", schedule.trigger.function},
                                 {"runs", missed.count},
                                 {"first", isoUtc(missed.first)},
                                 {"last", isoUtc(missed.last)},
                                 {"why", why}});
  saveHandled(schedule);
}

// From the last handled run: a due time the wall clock jumped past runs at once.
void Scheduler::arm(Schedule& schedule) {
  schedule.due = schedule.expression.next(schedule.handled);
  schedule.stats->nextRunUnixMs = schedule.due ? unixMs(*schedule.due) : 0;
  schedule.waiting = nullptr;
  if (schedule.due) schedule.waiting = waitUntilDue(schedule).eagerlyEvaluate(nullptr);
}

// The promise is the schedule's own (Schedule::waiting): it never outlives it.
// A minute at most between two looks at the wall clock: one set forward
// (or back) is followed within a minute.
kj::Promise<void> Scheduler::waitUntilDue(Schedule& schedule) {
  TimePoint now = clock_.now();
  std::chrono::nanoseconds left = *schedule.due - now;
  kj::Duration delay = clock_.timerDelay(std::min<std::chrono::nanoseconds>(left, kMaxWait));
  return timer_.afterDelay(delay).then([this, &schedule]() {
    if (clock_.now() < *schedule.due) return waitUntilDue(schedule);  // the clock went back
    fire(schedule);
    schedule.due = schedule.expression.next(std::max(schedule.handled, clock_.now()));
    schedule.stats->nextRunUnixMs = schedule.due ? unixMs(*schedule.due) : 0;
    if (!schedule.due) return kj::Promise<void>(kj::READY_NOW);
    return waitUntilDue(schedule);
  });
}

void Scheduler::fire(Schedule& schedule) {
  TimePoint now = clock_.now();
  ScheduleExpression::Span due =
      schedule.expression.dueBetween(schedule.handled, now, kMaxMissedCounted);
  if (due.count == 0) return;
  if (due.count > 1) {
    // The loop was late, or the clock jumped: the latest runs, the rest are missed.
    TimePoint latest = due.last;
    ScheduleExpression::Span earlier = due;
    earlier.count = due.count - 1;
    schedule.stats->missed += earlier.count;
    log_.write("schedule_missed", {{"id", schedule.trigger.id},
                                   {"function", schedule.trigger.function},
                                   {"runs", earlier.count},
                                   {"first", isoUtc(due.first)},
                                   {"why", "late"}});
    run(schedule, latest);
  } else {
    run(schedule, due.first);
  }
}

// The run's due time is saved as handled once its event is durable (or
// refused): a crash before that counts it missed at the next start rather
// than lose it unreported.
void Scheduler::run(Schedule& schedule, TimePoint due) {
  schedule.handled = due;
  const Trigger& trigger = schedule.trigger;
  if (!schedule.inFlight.empty()) {
    saveHandled(schedule);
    ++schedule.stats->skipped;
    log_.write("schedule_skipped", {{"id", trigger.id},
                                    {"function", trigger.function},
                                    {"due", isoUtc(due)},
                                    {"running", schedule.inFlight}});
    return;
  }
  std::string requestId = newUuid();
  schedule.inFlight = requestId;
  runs_[requestId] = trigger.id;
  schedule.stats->lastRunUnixMs = unixMs(due);
  EventQueue::Event event{trigger.function, 0, eventDocument(trigger, due, requestId), requestId};
  tasks_->add(events_.enqueue(std::move(event))
                  .then(
                      [this, id = trigger.id]() {
                        auto it = schedules_.find(id);
                        if (it == schedules_.end()) return;
                        ++it->second->stats->deliveries;
                        saveHandled(*it->second);
                      },
                      [this, id = trigger.id, requestId, due](kj::Exception&& e) {
                        runs_.erase(requestId);
                        std::string why = e.getDescription().cStr();
                        log_.write("schedule_run_refused",
                                   {{"id", id}, {"due", isoUtc(due)}, {"error", why}});
                        auto it = schedules_.find(id);
                        if (it == schedules_.end()) return;
                        Schedule& s = *it->second;
                        saveHandled(s);
                        ++s.stats->failures;
                        s.stats->lastError =
                            "the run due at " + isoUtc(due) + " was not queued: " + why;
                        if (s.inFlight == requestId) s.inFlight.clear();
                      }));
}

void Scheduler::ended(const std::string& requestId, bool succeeded) {
  auto run = runs_.find(requestId);
  if (run == runs_.end()) return;  // not a schedule's
  auto it = schedules_.find(run->second);
  runs_.erase(run);
  if (it == schedules_.end()) return;
  Schedule& schedule = *it->second;
  if (schedule.inFlight == requestId) schedule.inFlight.clear();
  if (!succeeded) {
    ++schedule.stats->failures;
    schedule.stats->lastError =
        "run " + requestId + " did not succeed (thatchd's log: async_event_dropped)";
  }
}

std::string Scheduler::eventDocument(const Trigger& trigger, TimePoint due,
                                     const std::string& id) const {
  base::JsonWriter json;
  json.beginObject()
      .key("version")
      .stringValue("0")
      .key("id")
      .stringValue(id)
      .key("detail-type")
      .stringValue("Scheduled Event")
      .key("source")
      .stringValue("aws.events")
      .key("account")
      .stringValue(options_.accountId)
      .key("time")
      .stringValue(isoUtc(due))
      .key("region")
      .stringValue(options_.region)
      .key("resources")
      .beginArray()
      .stringValue("arn:aws:events:" + options_.region + ":" + options_.accountId + ":rule/" +
                   trigger.id)
      .endArray()
      .key("detail")
      .rawJson(trigger.schedule.detail.empty() ? "{}" : trigger.schedule.detail)
      .endObject();
  return json.text();
}

std::string Scheduler::newUuid() {
  uint64_t high = random_();
  return base::uuidText(high, random_());
}

std::string Scheduler::statePath(const std::string& id) const {
  return options_.stateDir + "/schedules/" + id;
}

// ~40 bytes, on the loop, renamed into place and not fsync'd: a power cut
// may lose the last one, and a run already handled then counts as missed
// at the next start; never is one replayed.
void Scheduler::saveHandled(const Schedule& schedule) {
  std::string path = statePath(schedule.trigger.id), partial = path + ".tmp";
  std::string text = std::to_string(unixMs(schedule.handled)) + " " +
                     std::to_string(schedule.trigger.createdUnixMs);
  if (!schedule.inFlight.empty()) text += " " + schedule.inFlight;
  text += "\n";
  int fd = open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool written = fd >= 0 && write(fd, text.data(), text.size()) == ssize_t(text.size());
  int error = errno;
  if (fd >= 0) close(fd);
  if (written && rename(partial.c_str(), path.c_str()) == 0) return;
  if (written) error = errno;
  unlink(partial.c_str());
  log_.write("schedule_state_unwritten",
             {{"id", schedule.trigger.id}, {"file", path}, {"error", strerror(error)}});
}

std::optional<Scheduler::Saved> Scheduler::loadHandled(const Trigger& trigger) const {
  std::string path = statePath(trigger.id);
  FILE* file = fopen(path.c_str(), "re");
  if (!file) return std::nullopt;
  long long handled = 0, created = 0;
  char inFlight[64] = "";
  int fields = fscanf(file, "%lld %lld %63s", &handled, &created, inFlight);
  fclose(file);
  // Another trigger's that had the same id: not this one's.
  if (fields < 2 || created != trigger.createdUnixMs) return std::nullopt;
  return Saved{fromUnixMs(handled), fields == 3 ? inFlight : ""};
}

}  // namespace thatchd
