// thatchd::Scheduler: schedules run on a wall clock the test moves (and a
// kj timer moved with it), delivering EventBridge's scheduled event through
// a real EventQueue to an invoke the test answers.
#include "daemon/scheduler.h"

#include <gtest/gtest.h>
#include <kj/async-io.h>
#include <kj/timer.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

#include "daemon/triggers.h"
#include "tests/testing.h"

namespace {

using thatch::Status;
using thatchd::EventQueue;
using thatchd::Scheduler;
using thatchd::Trigger;
using thatchd::TriggerError;
using thatchd::TriggerKind;
using thatchd::TriggerStats;
using TimePoint = thatchd::WallClock::TimePoint;
using std::chrono::minutes;
using std::chrono::seconds;

// "2026-12-06T12:00:30", UTC.
TimePoint at(const std::string& text) {
  int y = std::stoi(text.substr(0, 4));
  unsigned mo = unsigned(std::stoi(text.substr(5, 2))), d = unsigned(std::stoi(text.substr(8, 2)));
  return TimePoint(std::chrono::sys_days(std::chrono::year(y) / std::chrono::month(mo) / d)) +
         std::chrono::hours(std::stoi(text.substr(11, 2))) +
         minutes(std::stoi(text.substr(14, 2))) +
         seconds(text.size() > 16 ? std::stoi(text.substr(17, 2)) : 0);
}

int64_t ms(const std::string& text) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(at(text).time_since_epoch()).count();
}

class FakeWallClock final : public thatchd::WallClock {
 public:
  TimePoint now() const override { return now_; }
  kj::Duration timerDelay(std::chrono::nanoseconds wall) const override {
    return std::max<int64_t>(wall.count(), 0) * kj::NANOSECONDS;
  }
  TimePoint now_ = at("2026-12-06T12:00:30");
};

Trigger schedule(const std::string& id, const std::string& expression,
                 const std::string& detail = "",
                 const std::string& created = "2026-12-06T12:00:30") {
  Trigger trigger;
  trigger.id = id;
  trigger.kind = TriggerKind::kSchedule;
  trigger.function = "fn";
  trigger.createdUnixMs = ms(created);
  trigger.schedule.expression = expression;
  trigger.schedule.detail = detail;
  return trigger;
}

// The real loop runs the queue; the scheduler's timer (`timer`) and wall
// clock (`clock`) move only when the test says so (advance()).
class Fixture {
 public:
  struct Call {
    EventQueue::Event event;
    kj::Own<kj::PromiseFulfiller<Status>> answer;  // held ones
  };

  testing_util::TempDir tmp{"thatch-sched"};
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::TimerImpl timer{kj::origin<kj::TimePoint>()};
  FakeWallClock clock;
  std::function<Status(const EventQueue::Event&)> respond;  // none: hold the answer
  std::vector<Call> calls;
  std::vector<std::string> log;
  std::unique_ptr<EventQueue> queue;
  std::unique_ptr<Scheduler> scheduler;

  Fixture() { open(); }
  ~Fixture() {
    scheduler.reset();
    queue.reset();
  }

  // A fresh queue and scheduler on the same state directory: a restart.
  void open() {
    scheduler.reset();
    queue.reset();
    thatchd::EventQueueLimits limits;
    limits.retryDelay = std::chrono::milliseconds(1);
    limits.maxAttempts = 1;
    queue = std::make_unique<EventQueue>(
        tmp.path() + "/events", io.unixEventPort, io.provider->getTimer(),
        [this](EventQueue::Event event) { return invoked(std::move(event)); }, limits, eventLog());
    scheduler = std::make_unique<Scheduler>(
        thatchd::SchedulerOptions{tmp.path(), "eu-west-1", "123456789012"}, *queue, timer, clock,
        eventLog());
  }

  // Moves the wall clock and the timer by `by`, and runs what is due.
  void advance(std::chrono::nanoseconds by) {
    clock.now_ += by;
    timer.advanceTo(timer.now() + by.count() * kj::NANOSECONDS);
    settle();
  }

  // Runs the loop until `condition` holds, looked at after each call, log
  // line, and millisecond (the queue's threads end events unannounced).
  // The bound is for failing, not for waiting.
  bool waitFor(const std::function<bool()>& condition) {
    kj::TimePoint guard = io.provider->getTimer().now() + 60 * kj::SECONDS;
    while (!condition()) {
      if (io.provider->getTimer().now() > guard) return false;
      auto woken = kj::newPromiseAndFulfiller<void>();
      woken_ = kj::mv(woken.fulfiller);
      woken.promise.exclusiveJoin(io.provider->getTimer().afterDelay(1 * kj::MILLISECONDS))
          .wait(io.waitScope);
    }
    return true;
  }
  void settle() { io.waitScope.poll(); }

  std::vector<std::string> logged(const std::string& what) const {
    std::vector<std::string> lines;
    for (const std::string& line : log)
      if (line.starts_with("thatchd: " + what + " ")) lines.push_back(line);
    return lines;
  }

  // The queue has run every event accepted (a barrier before "nothing else came").
  bool drained() {
    return waitFor([&]() { return queue->pending() == 0; });
  }

  supervisor::EventLog eventLog() {
    return supervisor::EventLog(supervisor::EventLog::Format::kText, [this](std::string_view line) {
      log.emplace_back(line);
      wake();
    });
  }

 private:
  kj::Promise<Status> invoked(EventQueue::Event event) {
    calls.push_back(Call{std::move(event), {}});
    wake();
    if (respond) return respond(calls.back().event);
    auto answer = kj::newPromiseAndFulfiller<Status>();
    calls.back().answer = kj::mv(answer.fulfiller);
    return kj::mv(answer.promise);
  }
  void wake() {
    if (woken_ && woken_->isWaiting()) woken_->fulfill();
  }
  kj::Own<kj::PromiseFulfiller<void>> woken_;
};

// The `"time":"..."` of a delivered event.
std::string timeOf(const EventQueue::Event& event) {
  size_t at = event.payload.find("\"time\":\"");
  return at == std::string::npos ? "" : event.payload.substr(at + 8, 20);
}

std::vector<std::string> timesOf(const std::vector<Fixture::Call>& calls) {
  std::vector<std::string> times;
  for (const Fixture::Call& call : calls) times.push_back(timeOf(call.event));
  return times;
}

using V = std::vector<std::string>;

TEST(Scheduler, DeliversEventBridgesScheduledEvent) {
  Fixture f;
  f.respond = [](const EventQueue::Event&) { return Status::kOk; };
  Trigger trigger = schedule("schedule-7", "rate(5 minutes)", R"({"job": "report", "n": [1, 2]})");
  TriggerStats stats;
  f.scheduler->start(trigger, stats);
  EXPECT_EQ(stats.nextRunUnixMs, ms("2026-12-06T12:05:00"));
  f.advance(minutes(4));  // 12:04:30
  ASSERT_TRUE(f.drained());
  EXPECT_EQ(f.calls.size(), 0u);
  f.advance(seconds(30));  // 12:05:00, due
  ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 1 && stats.deliveries == 1; }));
  const EventQueue::Event& event = f.calls[0].event;
  EXPECT_EQ(event.function, "fn");
  EXPECT_EQ(event.version, 0u);  // the latest
  ASSERT_EQ(event.requestId.size(), 36u);
  EXPECT_EQ(event.requestId[14], '4');  // a version 4 UUID
  EXPECT_EQ(event.payload,
            R"({"version":"0","id":")" + event.requestId +
                R"(","detail-type":"Scheduled Event","source":"aws.events",)"
                R"("account":"123456789012","time":"2026-12-06T12:05:00Z","region":"eu-west-1",)"
                R"("resources":["arn:aws:events:eu-west-1:123456789012:rule/schedule-7"],)"
                R"("detail":{"job": "report", "n": [1, 2]}})");
  ASSERT_TRUE(f.drained());
  EXPECT_EQ(stats.deliveries, 1u);
  EXPECT_EQ(stats.failures, 0u);
  EXPECT_EQ(stats.skipped, 0u);
  EXPECT_EQ(stats.lastRunUnixMs, ms("2026-12-06T12:05:00"));
  EXPECT_EQ(stats.nextRunUnixMs, ms("2026-12-06T12:10:00"));
  // No detail: {}; each run its own id.
  Trigger bare = schedule("schedule-8", "rate(5 minutes)");
  std::string doc = f.scheduler->eventDocument(bare, at("2026-12-06T12:10"), "x");
  EXPECT_TRUE(doc.ends_with(R"(rule/schedule-8"],"detail":{}})")) << doc;
  f.advance(minutes(5));
  ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 2; }));
  EXPECT_NE(f.calls[1].event.requestId, f.calls[0].event.requestId);
  EXPECT_EQ(timeOf(f.calls[1].event), "2026-12-06T12:10:00Z");
}

TEST(Scheduler, CronRunsAtItsDueTimesOnly) {
  Fixture f;
  f.respond = [](const EventQueue::Event&) { return Status::kOk; };
  TriggerStats stats;
  // Every 2nd minute on the even minutes, from 12:00:30: 12:02, 12:04, 12:06.
  f.scheduler->start(schedule("schedule-1", "cron(0/2 * * * ? *)"), stats);
  EXPECT_EQ(stats.nextRunUnixMs, ms("2026-12-06T12:02:00"));
  // Each even minute's run arrives before the next minute; a run at an odd
  // one would come before it (the queue runs events in order).
  for (size_t i = 1; i <= 6; ++i) {
    f.advance(minutes(1));
    ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == i / 2 && stats.deliveries == i / 2; }));
    ASSERT_TRUE(f.drained());  // done before the next is due: none skipped
  }
  EXPECT_EQ(timesOf(f.calls),
            (V{"2026-12-06T12:02:00Z", "2026-12-06T12:04:00Z", "2026-12-06T12:06:00Z"}));
  EXPECT_EQ(stats.deliveries, 3u);
  EXPECT_EQ(stats.missed, 0u);
  EXPECT_EQ(stats.nextRunUnixMs, ms("2026-12-06T12:08:00"));
}

TEST(Scheduler, ARunThatOverrunsCausesSkipsNotAPileUp) {
  Fixture f;  // answers held: the first run is running until the test says
  TriggerStats stats;
  f.scheduler->start(schedule("schedule-1", "rate(1 minute)"), stats);
  f.advance(minutes(1));  // 12:01:30: the 12:01 run
  ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 1; }));
  f.advance(minutes(1));  // 12:02: skipped, 12:01's still runs
  f.advance(minutes(1));  // 12:03: skipped
  ASSERT_TRUE(f.waitFor([&]() { return stats.skipped == 2; }));
  EXPECT_EQ(f.calls.size(), 1u);
  EXPECT_EQ(f.queue->pending(), 1u);  // nothing more was queued
  auto skipped = f.logged("schedule_skipped");
  ASSERT_EQ(skipped.size(), 2u);
  EXPECT_NE(skipped[0].find("id=schedule-1"), std::string::npos) << skipped[0];
  EXPECT_NE(skipped[0].find("due=2026-12-06T12:02:00Z"), std::string::npos) << skipped[0];
  EXPECT_NE(skipped[1].find("due=2026-12-06T12:03:00Z"), std::string::npos) << skipped[1];
  EXPECT_NE(skipped[1].find("running=" + f.calls[0].event.requestId), std::string::npos);
  f.calls[0].answer->fulfill(Status::kOk);
  ASSERT_TRUE(f.drained());
  f.advance(minutes(1));  // 12:04: runs again
  ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 2; }));
  EXPECT_EQ(timesOf(f.calls), (V{"2026-12-06T12:01:00Z", "2026-12-06T12:04:00Z"}));
  f.calls[1].answer->fulfill(Status::kOk);
  ASSERT_TRUE(f.drained());
  EXPECT_EQ(stats.skipped, 2u);
  EXPECT_EQ(stats.deliveries, 2u);
  EXPECT_EQ(stats.failures, 0u);
}

TEST(Scheduler, ARunThatFailsIsCountedAndFreesTheNext) {
  Fixture f;
  f.respond = [](const EventQueue::Event&) { return Status::kHandlerError; };  // 1 attempt
  TriggerStats stats;
  f.scheduler->start(schedule("schedule-1", "rate(1 minute)"), stats);
  f.advance(minutes(1));
  ASSERT_TRUE(f.waitFor([&]() { return stats.failures == 1; }));
  EXPECT_NE(stats.lastError.find(f.calls[0].event.requestId), std::string::npos) << stats.lastError;
  f.advance(minutes(1));
  ASSERT_TRUE(f.waitFor([&]() { return stats.failures == 2; }));
  EXPECT_EQ(f.calls.size(), 2u);
  EXPECT_EQ(stats.deliveries, 2u);
  EXPECT_EQ(stats.skipped, 0u);
}

TEST(Scheduler, MissedRunsAfterARestartAreCountedNotReplayed) {
  Fixture f;
  f.respond = [](const EventQueue::Event&) { return Status::kOk; };
  Trigger trigger = schedule("schedule-3", "rate(1 minute)");
  {
    TriggerStats stats;
    f.scheduler->start(trigger, stats);
    f.advance(minutes(2));  // 12:02:30
    f.advance(seconds(1));
    ASSERT_TRUE(f.waitFor([&]() { return stats.deliveries == 1 && f.queue->pending() == 0; }));
    // Only the latest of 12:01 and 12:02 ran: the timer was moved past both.
    EXPECT_EQ(timesOf(f.calls), (V{"2026-12-06T12:02:00Z"}));
    EXPECT_EQ(stats.missed, 1u);
    f.scheduler->stop(trigger.id);  // as thatchd stops
  }
  // thatchd is down from 12:02:31 to 12:12:40: 12:03 ... 12:12 are missed.
  f.clock.now_ = at("2026-12-06T12:12:40");
  f.open();
  TriggerStats stats;
  f.scheduler->start(trigger, stats);
  EXPECT_EQ(stats.missed, 10u);
  EXPECT_EQ(stats.nextRunUnixMs, ms("2026-12-06T12:13:00"));
  auto missed = f.logged("schedule_missed");
  ASSERT_EQ(missed.size(), 2u);
  EXPECT_NE(missed[1].find("id=schedule-3"), std::string::npos) << missed[1];
  EXPECT_NE(missed[1].find("runs=10 first=2026-12-06T12:03:00Z last=2026-12-06T12:12:00Z"),
            std::string::npos)
      << missed[1];
  // Not replayed: the next event the queue runs is 12:13's.
  f.advance(seconds(20));
  ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 2; }));
  EXPECT_EQ(timeOf(f.calls[1].event), "2026-12-06T12:13:00Z");
  ASSERT_TRUE(f.drained());
  EXPECT_EQ(f.calls.size(), 2u);
  // And a second restart at once reports nothing missed again.
  f.open();
  TriggerStats again;
  f.scheduler->start(trigger, again);
  EXPECT_EQ(again.missed, 0u);
}

// A run still queued or running when thatchd stopped runs again after the
// restart (the Event queue's at-least-once): the schedule knows it as its
// own, and skips its next runs until it is done.
TEST(Scheduler, ARunReplayedAfterARestartStillHoldsOffTheNext) {
  Fixture f;  // answers held
  Trigger trigger = schedule("schedule-5", "rate(1 minute)");
  {
    TriggerStats stats;
    f.scheduler->start(trigger, stats);
    f.advance(minutes(1));  // 12:01:30: the 12:01 run, held
    ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 1 && stats.deliveries == 1; }));
    f.scheduler->stop(trigger.id);
  }
  std::string first = f.calls[0].event.requestId;
  f.clock.now_ = at("2026-12-06T12:01:40");  // down for seconds: nothing missed
  f.open();                                  // the queue runs the 12:01 event again
  ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 2; }));
  EXPECT_EQ(f.calls[1].event.requestId, first);
  TriggerStats stats;
  f.scheduler->start(trigger, stats);
  EXPECT_EQ(stats.missed, 0u);
  f.advance(minutes(1));  // 12:02: skipped, the replayed 12:01 still runs
  ASSERT_TRUE(f.waitFor([&]() { return stats.skipped == 1; }));
  EXPECT_EQ(f.calls.size(), 2u);
  ASSERT_EQ(f.logged("schedule_skipped").size(), 1u);
  EXPECT_NE(f.logged("schedule_skipped")[0].find("running=" + first), std::string::npos)
      << f.logged("schedule_skipped")[0];
  f.calls[1].answer->fulfill(Status::kOk);
  ASSERT_TRUE(f.drained());
  f.advance(minutes(1));  // 12:03: runs
  ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 3; }));
  EXPECT_EQ(timeOf(f.calls[2].event), "2026-12-06T12:03:00Z");
  f.calls[2].answer->fulfill(Status::kOk);
  ASSERT_TRUE(f.drained());
  EXPECT_EQ(stats.skipped, 1u);
}

TEST(Scheduler, AScheduleThatNeverRanCountsItsMissedRunsFromItsAddition) {
  Fixture f;
  Trigger trigger = schedule("schedule-4", "rate(1 minute)");
  {
    TriggerStats stats;
    f.scheduler->start(trigger, stats);  // added at 12:00:30
    EXPECT_EQ(stats.missed, 0u);
    f.scheduler->stop(trigger.id);
  }
  f.clock.now_ = at("2026-12-06T12:05:10");  // down since: 12:01 ... 12:05 missed
  f.open();
  TriggerStats stats;
  f.scheduler->start(trigger, stats);
  EXPECT_EQ(stats.missed, 5u);
  EXPECT_EQ(stats.nextRunUnixMs, ms("2026-12-06T12:06:00"));
  ASSERT_EQ(f.logged("schedule_missed").size(), 1u);
  EXPECT_NE(f.logged("schedule_missed")[0].find("runs=5 first=2026-12-06T12:01:00Z"),
            std::string::npos)
      << f.logged("schedule_missed")[0];
}

TEST(Scheduler, TheAccountAndRegionFollowAReload) {
  Fixture f;
  f.scheduler->setAccount("ap-south-1", "210987654321");
  std::string doc = f.scheduler->eventDocument(schedule("schedule-9", "rate(1 hour)"),
                                               at("2026-12-06T13:00"), "x");
  EXPECT_NE(
      doc.find(R"("account":"210987654321","time":"2026-12-06T13:00:00Z","region":"ap-south-1")"),
      std::string::npos)
      << doc;
  EXPECT_NE(doc.find("arn:aws:events:ap-south-1:210987654321:rule/schedule-9"), std::string::npos);
}

TEST(Scheduler, StopDisarmsAndAReEnableCountsNothingMissed) {
  Fixture f;
  f.respond = [](const EventQueue::Event&) { return Status::kOk; };
  TriggerStats stopped, other;
  f.scheduler->start(schedule("schedule-1", "rate(1 minute)"), stopped);
  f.scheduler->start(schedule("schedule-2", "rate(2 minutes)"), other);
  f.scheduler->stop("schedule-1");
  EXPECT_EQ(stopped.nextRunUnixMs, 0);
  EXPECT_EQ(f.scheduler->running(), 1u);
  f.advance(minutes(2));  // 12:02:30: schedule-2's 12:02 run, none of schedule-1's
  ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 1; }));
  ASSERT_TRUE(f.drained());
  EXPECT_NE(f.calls[0].event.payload.find("rule/schedule-2"), std::string::npos);
  EXPECT_EQ(stopped.deliveries, 0u);
  f.scheduler->stop("schedule-2");
  f.advance(minutes(10));
  ASSERT_TRUE(f.drained());
  EXPECT_EQ(f.calls.size(), 1u);
  // Enabled again: the runs while it was disabled are not "missed".
  TriggerStats again;
  f.scheduler->start(schedule("schedule-1", "rate(1 minute)"), again);
  EXPECT_EQ(again.missed, 0u);
  EXPECT_EQ(again.nextRunUnixMs, ms("2026-12-06T12:13:00"));
  f.advance(minutes(1));
  ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 2; }));
  EXPECT_NE(f.calls[1].event.payload.find("rule/schedule-1"), std::string::npos);
  EXPECT_EQ(timeOf(f.calls[1].event), "2026-12-06T12:13:00Z");
}

TEST(Scheduler, ADisabledScheduleInTheStoreRunsNothing) {
  Fixture f;
  f.respond = [](const EventQueue::Event&) { return Status::kOk; };
  // The store dates its triggers by the system clock: the fake one starts there.
  f.clock.now_ = std::chrono::floor<seconds>(std::chrono::system_clock::now());
  f.open();
  thatchd::Triggers store(f.tmp.path() + "/triggers.json", f.eventLog());
  store.setRunner(TriggerKind::kSchedule, f.scheduler.get());
  Trigger quiet = schedule("", "rate(1 minute)");
  quiet.function = "quiet";
  std::string quietId = store.add(quiet).id;
  Trigger busy = schedule("", "rate(2 minutes)");
  busy.function = "busy";
  store.add(busy);
  store.setEnabled(quietId, false);
  EXPECT_EQ(store.stats(quietId)->nextRunUnixMs, 0);
  // busy's runs show that time passed: four minutes, two of its runs.
  for (size_t runs = 1; runs <= 2; ++runs) {
    f.advance(minutes(2));
    ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == runs; }));
    ASSERT_TRUE(f.drained());
  }
  for (const Fixture::Call& call : f.calls) EXPECT_EQ(call.event.function, "busy");
  EXPECT_EQ(store.stats(quietId)->deliveries, 0u);
  // Enabled again: it runs from now on, nothing counted missed.
  store.setEnabled(quietId, true);
  EXPECT_EQ(store.stats(quietId)->missed, 0u);
  EXPECT_GT(store.stats(quietId)->nextRunUnixMs, 0);
  f.advance(minutes(1));
  ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 3; }));
  EXPECT_EQ(f.calls[2].event.function, "quiet");
  ASSERT_TRUE(f.drained());
  store.setRunner(TriggerKind::kSchedule, nullptr);
}

TEST(Scheduler, ARemovedScheduleLeavesNothingBehind) {
  Fixture f;
  f.clock.now_ = std::chrono::floor<seconds>(std::chrono::system_clock::now());
  f.open();
  thatchd::Triggers store(f.tmp.path() + "/triggers.json", f.eventLog());
  store.setRunner(TriggerKind::kSchedule, f.scheduler.get());
  Trigger one = schedule("", "rate(1 minute)");
  one.function = "once";
  std::string id = store.add(one).id;
  std::string state = f.tmp.path() + "/schedules/" + id;
  EXPECT_EQ(access(state.c_str(), F_OK), 0) << state;  // its last handled run: its addition
  store.setEnabled(id, false);
  EXPECT_EQ(access(state.c_str(), F_OK), 0);  // disabled: kept
  ASSERT_TRUE(store.remove(id));
  EXPECT_NE(access(state.c_str(), F_OK), 0);
  // Nothing runs for it any more.
  f.advance(minutes(3));
  ASSERT_TRUE(f.drained());
  EXPECT_TRUE(f.calls.empty());
  store.setRunner(TriggerKind::kSchedule, nullptr);
}

TEST(Scheduler, FollowsTheWallClockNotTheTimer) {
  Fixture f;
  f.respond = [](const EventQueue::Event&) { return Status::kOk; };
  TriggerStats stats;
  f.scheduler->start(schedule("schedule-1", "cron(0 13 * * ? *)"), stats);  // 13:00 daily
  // The timer fires but the wall clock went back meanwhile: not yet due.
  f.clock.now_ -= minutes(30);
  f.advance(minutes(60));  // the timer at +60 min, the wall clock at 12:30:30
  ASSERT_TRUE(f.drained());
  EXPECT_EQ(f.calls.size(), 0u);
  f.advance(minutes(30));  // 13:00:30
  ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 1; }));
  EXPECT_EQ(timeOf(f.calls[0].event), "2026-12-06T13:00:00Z");
  ASSERT_TRUE(f.drained());  // done: the next run is not skipped
  // The clock jumps a day ahead: clockMoved() re-arms, the latest run goes.
  f.clock.now_ += std::chrono::hours(24);
  f.scheduler->clockMoved();
  f.advance(seconds(0));
  ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 2; }));
  EXPECT_EQ(timeOf(f.calls[1].event), "2026-12-07T13:00:00Z");
  ASSERT_TRUE(f.drained());
  EXPECT_EQ(stats.missed, 0u);
  // Two days ahead, unannounced: within a minute of the timer the latest
  // run goes, the one it jumped over is counted missed.
  f.clock.now_ += std::chrono::hours(48);
  f.advance(minutes(1));
  ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 3; }));
  EXPECT_EQ(timeOf(f.calls[2].event), "2026-12-09T13:00:00Z");
  EXPECT_EQ(stats.missed, 1u);
  auto missed = f.logged("schedule_missed");
  ASSERT_EQ(missed.size(), 1u);
  EXPECT_NE(missed[0].find("runs=1 first=2026-12-08T13:00:00Z why=late"), std::string::npos)
      << missed[0];
}

TEST(Scheduler, CheckRefusesBadSettingsWithThePosition) {
  Fixture f;
  auto refusal = [&](Trigger trigger) -> std::string {
    try {
      f.scheduler->check(trigger);
    } catch (const TriggerError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(refusal(schedule("s", "cron(0 25 * * ? *)")),
            "schedule expression 'cron(0 25 * * ? *)': column 8: hour 25 is out of 0-23");
  EXPECT_EQ(refusal(schedule("s", "rate(5 minute)")),
            "schedule expression 'rate(5 minute)': column 8: rate(5 minute) is written rate(5 "
            "minutes)");
  EXPECT_EQ(refusal(schedule("s", "cron(0 0 30 FEB ? *)")),
            "schedule expression 'cron(0 0 30 FEB ? *)' is never due after 2026-12-06T12:00:30Z");
  EXPECT_EQ(refusal(schedule("s", "cron(0 0 1 1 ? 2020)")),
            "schedule expression 'cron(0 0 1 1 ? 2020)' is never due after 2026-12-06T12:00:30Z");
  EXPECT_EQ(refusal(schedule("s", "rate(1 hour)", "[1, 2]")),
            "a schedule's data (the event's detail) is a JSON object, not '[1, 2]'");
  EXPECT_EQ(refusal(schedule("s", "rate(1 hour)", "{\"a\": ")),
            "a schedule's data (the event's detail) is a JSON object, not '{\"a\": '");
  EXPECT_EQ(refusal(schedule("s", "rate(1 hour)", "{\"a\": 1}")), "");
  EXPECT_EQ(refusal(schedule("s", "cron(0 12 * * ? *)")), "");
}

TEST(Scheduler, AQueueThatRefusesCountsAFailure) {
  Fixture f;
  thatchd::EventQueueLimits limits;
  limits.concurrency = 0;  // nothing runs: events accumulate
  limits.maxEvents = 1;
  f.scheduler.reset();
  f.queue.reset();
  f.queue = std::make_unique<EventQueue>(
      f.tmp.path() + "/events", f.io.unixEventPort, f.io.provider->getTimer(),
      [](EventQueue::Event) { return kj::Promise<Status>(Status::kOk); }, limits);
  f.scheduler = std::make_unique<Scheduler>(thatchd::SchedulerOptions{f.tmp.path()}, *f.queue,
                                            f.timer, f.clock, f.eventLog());
  // Another's event fills the queue.
  f.queue->enqueue({"other", 0, "{}", "r0"}).wait(f.io.waitScope);
  TriggerStats stats;
  f.scheduler->start(schedule("schedule-1", "rate(1 minute)"), stats);
  f.advance(minutes(1));
  ASSERT_TRUE(f.waitFor([&]() { return stats.failures == 1; }));
  EXPECT_EQ(stats.deliveries, 0u);
  EXPECT_NE(stats.lastError.find("the run due at 2026-12-06T12:01:00Z was not queued: "),
            std::string::npos)
      << stats.lastError;
  EXPECT_NE(stats.lastError.find("queue of asynchronous invocations is full"), std::string::npos);
  // Not in flight: the next run is tried, not skipped.
  f.advance(minutes(1));
  ASSERT_TRUE(f.waitFor([&]() { return stats.failures == 2; }));
  EXPECT_EQ(stats.skipped, 0u);
}

}  // namespace
