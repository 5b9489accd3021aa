// Schedules (docs/triggers.md, "Schedules"): the TriggerRunner of
// TriggerKind::kSchedule. Each due run delivers EventBridge's scheduled-event
// document as an Event invocation through the daemon's EventQueue (durable,
// retried: at least once). A run due while the schedule's previous run is
// still queued or running is skipped and counted; the runs due while thatchd
// was down are counted and logged at start, never replayed.
//
// On thatchd's loop. Its timer fires on the monotonic clock; the due times
// are on the wall clock (UTC), read again when the timer fires, so that a
// wall clock that moved is followed.
#pragma once

#include <kj/async.h>
#include <kj/timer.h>

#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>

#include "daemon/event_queue.h"
#include "daemon/schedule_expression.h"
#include "daemon/triggers.h"
#include "supervisor/event_log.h"

namespace thatchd {

// The wall clock schedules are due on: injectable, so that tests move it
// and thatchd's [testing] schedule_clock_scale speeds it up.
class WallClock {
 public:
  using TimePoint = std::chrono::system_clock::time_point;
  virtual ~WallClock() = default;
  virtual TimePoint now() const = 0;
  // How long the loop's timer waits for `wall` of this clock to pass.
  virtual kj::Duration timerDelay(std::chrono::nanoseconds wall) const = 0;
  // A time of the system clock (a trigger's creation) on this clock.
  virtual TimePoint fromSystem(TimePoint system) const { return system; }
};

// The system's clock, or (scale > 1, tests only) one that runs `scale`
// times as fast from an epoch: the time of the first start, kept in
// `epochFile`, so that it goes on across restarts (a thatchd down for a
// second misses a scaled minute's runs).
class SystemWallClock final : public WallClock {
 public:
  // Throws base::SysError if it cannot write a new `epochFile`.
  explicit SystemWallClock(unsigned scale = 1, const std::string& epochFile = "");
  TimePoint now() const override;
  kj::Duration timerDelay(std::chrono::nanoseconds wall) const override;
  TimePoint fromSystem(TimePoint system) const override;

 private:
  unsigned scale_;
  TimePoint epoch_;
};

struct SchedulerOptions {
  std::string stateDir;              // its last handled run per schedule: STATE/schedules/<id>
  std::string region = "us-east-1";  // in the event and its rule's ARN
  std::string accountId = "000000000000";  // the same
};

class Scheduler final : public TriggerRunner {
 public:
  // At most this many missed runs are counted per schedule at start (a
  // cron every minute down a year is ~525,600).
  static constexpr uint64_t kMaxMissedCounted = 1'000'000;
  // The timer waits at most this (on the wall clock) before it looks again.
  static constexpr std::chrono::minutes kMaxWait{1};

  // Creates STATE/schedules. Listens to `events`' ends (EventQueue::setEnded)
  // until it goes; `events`, `timer` and `clock` must outlive it.
  Scheduler(SchedulerOptions options, EventQueue& events, kj::Timer& timer, const WallClock& clock,
            supervisor::EventLog log = supervisor::EventLog());
  ~Scheduler() noexcept override;
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // The expression (TriggerError "schedule expression 'X': column C: why"),
  // one never due again, a detail that is not a JSON object.
  void check(Trigger& trigger) override;
  void start(const Trigger& trigger, TriggerStats& stats) override;
  void stop(const std::string& id) override;
  // Its last handled run's file (STATE/schedules/ID) goes.
  void forget(const std::string& id) override;

  // The wall clock moved (tests): each schedule waits again from now.
  void clockMoved();
  // [lambda] region and account_id were reloaded: the next runs' events say so.
  void setAccount(std::string region, std::string accountId);

  size_t running() const { return schedules_.size(); }

  // The scheduled-event document of a run due at `due` (exposed for tests).
  std::string eventDocument(const Trigger& trigger, WallClock::TimePoint due,
                            const std::string& id) const;

 private:
  struct Schedule {
    Trigger trigger;
    ScheduleExpression expression;
    TriggerStats* stats = nullptr;            // the store's, while it runs
    WallClock::TimePoint handled;             // the last due time run, skipped or counted missed
    std::optional<WallClock::TimePoint> due;  // the next; none: never again
    std::string inFlight;                     // its run's request id while queued or running
    kj::Promise<void> waiting = nullptr;      // until `due`; dropped: disarmed
  };

  void arm(Schedule& schedule);
  kj::Promise<void> waitUntilDue(Schedule& schedule);
  void fire(Schedule& schedule);
  void run(Schedule& schedule, WallClock::TimePoint due);
  void ended(const std::string& requestId, bool succeeded);
  void countMissed(Schedule& schedule, WallClock::TimePoint until, const char* why);
  std::string newUuid();

  // STATE/schedules/<id>: "<last handled, unix ms> <created, unix ms>
  // [<the request id of its run in the Event queue>]".
  std::string statePath(const std::string& id) const;
  void saveHandled(const Schedule& schedule);
  struct Saved {
    WallClock::TimePoint handled;
    std::string inFlight;  // "" when none was queued or running
  };
  std::optional<Saved> loadHandled(const Trigger& trigger) const;

  SchedulerOptions options_;
  EventQueue& events_;
  kj::Timer& timer_;
  const WallClock& clock_;
  supervisor::EventLog log_;
  std::map<std::string, std::unique_ptr<Schedule>> schedules_;  // by trigger id
  std::map<std::string, std::string> runs_;  // request id -> trigger id, queued or running
  WallClock::TimePoint startedAt_;
  std::set<std::string> stopped_;  // disabled (or removed) in this process
  std::mt19937_64 random_;
  kj::Own<kj::TaskSet> tasks_;  // enqueues: first to go
};

}  // namespace thatchd
