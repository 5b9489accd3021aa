#include "supervisor/admission.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <tuple>
#include <vector>

namespace supervisor {
namespace {

using namespace std::chrono_literals;
using Ids = std::vector<uint64_t>;
using Decision = Admission::Decision;

TEST(Admission, RunsUpToConcurrencyThenQueuesThenFailsFast) {
  FakeClock clock;
  Admission admission(clock);
  admission.setLimits("f", AdmissionLimits{2, 2, 10s});
  EXPECT_EQ(admission.arrive("f", 1), Decision::kRun);
  EXPECT_EQ(admission.arrive("f", 2), Decision::kRun);
  EXPECT_EQ(admission.arrive("f", 3), Decision::kQueued);
  EXPECT_EQ(admission.arrive("f", 4), Decision::kQueued);
  EXPECT_EQ(admission.arrive("f", 5), Decision::kOverloaded);
  EXPECT_EQ(admission.running("f"), 2u);
  EXPECT_EQ(admission.queued("f"), 2u);
  EXPECT_EQ(admission.arrive("g", 6), Decision::kRun);  // another function has its own limits
  EXPECT_EQ(admission.running("g"), 1u);
  EXPECT_EQ(admission.counters().admitted, 3u);
  EXPECT_EQ(admission.counters().queued, 2u);
  EXPECT_EQ(admission.counters().overloaded, 1u);
  EXPECT_THROW(admission.arrive("g", 3), std::logic_error);  // 3 is queued already
}

TEST(Admission, DefaultLimits) {
  FakeClock clock;
  Admission admission(clock);
  for (uint64_t id = 0; id < 8; ++id) EXPECT_EQ(admission.arrive("f", id), Decision::kRun);
  for (uint64_t id = 8; id < 72; ++id) EXPECT_EQ(admission.arrive("f", id), Decision::kQueued);
  EXPECT_EQ(admission.arrive("f", 72), Decision::kOverloaded);
  EXPECT_EQ(admission.nextQueueDeadline(), clock.now() + 10s);
}

TEST(Admission, FinishHandsOverToTheQueueInFifoOrder) {
  FakeClock clock;
  Admission admission(clock);
  admission.setLimits("f", AdmissionLimits{1, 8, 10s});
  EXPECT_EQ(admission.arrive("f", 1), Decision::kRun);
  for (uint64_t id : {2, 3, 4}) EXPECT_EQ(admission.arrive("f", id), Decision::kQueued);
  EXPECT_EQ(admission.finish("f"), 2u);
  EXPECT_EQ(admission.running("f"), 1u);
  EXPECT_EQ(admission.arrive("f", 5), Decision::kQueued);  // behind 3 and 4
  EXPECT_EQ(admission.finish("f"), 3u);
  EXPECT_EQ(admission.finish("f"), 4u);
  EXPECT_EQ(admission.finish("f"), 5u);
  EXPECT_EQ(admission.finish("f"), std::nullopt);
  EXPECT_EQ(admission.running("f"), 0u);
  EXPECT_EQ(admission.queued("f"), 0u);
  EXPECT_EQ(admission.counters().startedFromQueue, 4u);
  EXPECT_THROW(admission.finish("f"), std::logic_error);  // nothing runs
  EXPECT_EQ(admission.arrive("f", 6), Decision::kRun);
}

TEST(Admission, QueuedForTheWholeTimeoutTimesOut) {
  FakeClock clock;
  Admission admission(clock);
  admission.setLimits("f", AdmissionLimits{1, 8, 10s});
  TimePoint start = clock.now();
  EXPECT_EQ(admission.nextQueueDeadline(), std::nullopt);
  admission.arrive("f", 1);
  admission.arrive("f", 2);
  clock.advance(4s);
  admission.arrive("f", 3);
  EXPECT_EQ(admission.nextQueueDeadline(), start + 10s);

  clock.advance(6s - 1ns);
  EXPECT_EQ(admission.expireQueued(), Ids{});
  clock.advance(1ns);  // exactly the timeout
  EXPECT_EQ(admission.expireQueued(), Ids{2});
  EXPECT_EQ(admission.nextQueueDeadline(), start + 14s);  // each entry has its own deadline
  EXPECT_EQ(admission.queued("f"), 1u);
  EXPECT_EQ(admission.running("f"), 1u);

  clock.advance(4s);
  EXPECT_EQ(admission.expireQueued(), Ids{3});
  EXPECT_EQ(admission.nextQueueDeadline(), std::nullopt);
  EXPECT_EQ(admission.counters().queueTimeouts, 2u);
  EXPECT_EQ(admission.finish("f"), std::nullopt);  // timed-out ones are not handed over
}

TEST(Admission, DeadlinesAcrossFunctionsComeOutEarliestFirst) {
  FakeClock clock;
  Admission admission(clock);
  admission.setLimits("slow", AdmissionLimits{0, 8, 30s});
  admission.setLimits("quick", AdmissionLimits{0, 8, 5s});
  TimePoint start = clock.now();
  admission.arrive("slow", 1);
  admission.arrive("quick", 2);
  admission.arrive("quick", 3);
  EXPECT_EQ(admission.nextQueueDeadline(), start + 5s);
  clock.advance(1min);
  EXPECT_EQ(admission.expireQueued(), (Ids{2, 3, 1}));
}

TEST(Admission, ALowerTimeoutAppliesToLaterArrivals) {
  FakeClock clock;
  Admission admission(clock);
  admission.setLimits("f", AdmissionLimits{0, 8, 10s});
  TimePoint start = clock.now();
  admission.arrive("f", 1);
  admission.setLimits("f", AdmissionLimits{0, 8, 2s});
  admission.arrive("f", 2);
  EXPECT_EQ(admission.nextQueueDeadline(), start + 2s);
  clock.advance(2s);
  EXPECT_EQ(admission.expireQueued(), Ids{2});
  EXPECT_EQ(admission.nextQueueDeadline(), start + 10s);
}

TEST(Admission, CancelTakesOnlyAQueuedInvocation) {
  FakeClock clock;
  Admission admission(clock);
  admission.setLimits("f", AdmissionLimits{1, 8, 10s});
  admission.arrive("f", 1);
  admission.arrive("f", 2);
  admission.arrive("f", 3);
  EXPECT_FALSE(admission.cancel("f", 1));  // running
  EXPECT_FALSE(admission.cancel("g", 2));  // not g's
  EXPECT_TRUE(admission.cancel("f", 2));
  EXPECT_FALSE(admission.cancel("f", 2));
  EXPECT_FALSE(admission.cancel("f", 99));
  EXPECT_EQ(admission.queued("f"), 1u);
  EXPECT_EQ(admission.counters().cancelled, 1u);
  EXPECT_EQ(admission.finish("f"), 3u);
  EXPECT_FALSE(admission.cancel("f", 3));  // running now
  clock.advance(1h);
  EXPECT_EQ(admission.expireQueued(), Ids{});
}

TEST(Admission, QueueLengthZeroFailsFastAtConcurrency) {
  FakeClock clock;
  Admission admission(clock);
  admission.setLimits("f", AdmissionLimits{2, 0, 10s});
  EXPECT_EQ(admission.arrive("f", 1), Decision::kRun);
  EXPECT_EQ(admission.arrive("f", 2), Decision::kRun);
  EXPECT_EQ(admission.arrive("f", 3), Decision::kOverloaded);
  EXPECT_EQ(admission.queued("f"), 0u);
  EXPECT_EQ(admission.nextQueueDeadline(), std::nullopt);
  EXPECT_EQ(admission.finish("f"), std::nullopt);
  EXPECT_EQ(admission.arrive("f", 4), Decision::kRun);
}

TEST(Admission, LoweringConcurrencyNeverStopsRunningOnes) {
  FakeClock clock;
  Admission admission(clock);
  admission.setLimits("f", AdmissionLimits{3, 8, 10s});
  for (uint64_t id : {1, 2, 3}) EXPECT_EQ(admission.arrive("f", id), Decision::kRun);
  EXPECT_EQ(admission.arrive("f", 4), Decision::kQueued);
  admission.setLimits("f", AdmissionLimits{1, 8, 10s});
  EXPECT_EQ(admission.running("f"), 3u);
  EXPECT_EQ(admission.finish("f"), std::nullopt);  // 2 still run, above the new limit
  EXPECT_EQ(admission.finish("f"), std::nullopt);  // 1 runs: at the limit
  EXPECT_EQ(admission.finish("f"), 4u);
  EXPECT_EQ(admission.running("f"), 1u);
  EXPECT_EQ(admission.arrive("f", 5), Decision::kQueued);
}

TEST(Admission, RaisingConcurrencyAdmitsTheWaitingInOrder) {
  FakeClock clock;
  Admission admission(clock);
  admission.setLimits("f", AdmissionLimits{1, 8, 10s});
  admission.arrive("f", 1);
  for (uint64_t id : {2, 3, 4}) admission.arrive("f", id);
  admission.setLimits("f", AdmissionLimits{3, 8, 10s});
  EXPECT_EQ(admission.arrive("f", 5), Decision::kQueued);  // no overtaking
  EXPECT_EQ(admission.admitWaiting("f"), (Ids{2, 3}));
  EXPECT_EQ(admission.running("f"), 3u);
  EXPECT_EQ(admission.queued("f"), 2u);
  EXPECT_EQ(admission.admitWaiting("f"), Ids{});
  EXPECT_EQ(admission.admitWaiting("nobody"), Ids{});
}

TEST(Admission, ConcurrencyZeroPausesAFunction) {
  FakeClock clock;
  Admission admission(clock);
  admission.setLimits("f", AdmissionLimits{0, 1, 10s});
  EXPECT_EQ(admission.arrive("f", 1), Decision::kQueued);
  EXPECT_EQ(admission.arrive("f", 2), Decision::kOverloaded);
  admission.setLimits("f", AdmissionLimits{1, 1, 10s});
  EXPECT_EQ(admission.admitWaiting("f"), Ids{1});
}

// One running (1) and two queued (2, 3), at concurrency 1.
class ReservedAdmission : public ::testing::Test {
 protected:
  void SetUp() override {
    admission.setLimits("f", AdmissionLimits{1, 4, 10s});
    ASSERT_EQ(admission.arrive("f", 1), Decision::kRun);
    ASSERT_EQ(admission.arrive("f", 2), Decision::kQueued);
    ASSERT_EQ(admission.arrive("f", 3), Decision::kQueued);
  }
  FakeClock clock;
  Admission admission{clock};
};

TEST_F(ReservedAdmission, IsPassedOverUntilFinishIntoStartsIt) {
  EXPECT_EQ(admission.firstUnreserved("f"), 2u);
  EXPECT_TRUE(admission.reserve(2));
  EXPECT_FALSE(admission.reserve(1));  // running, not queued
  EXPECT_EQ(admission.firstUnreserved("f"), 3u);
  EXPECT_EQ(admission.queued("f"), 2u);  // still queued, and counted so
  EXPECT_EQ(admission.queueDeadline(2), clock.now() + 10s);
  EXPECT_FALSE(admission.queueDeadline(1));
  // 2 starts where it was sent, in 1's place; FIFO order does not apply.
  EXPECT_TRUE(admission.finishInto("f", 2));
  EXPECT_EQ(admission.running("f"), 1u);
  EXPECT_EQ(admission.queued("f"), 1u);
  EXPECT_FALSE(admission.finishInto("f", 2));  // not queued any more
  EXPECT_FALSE(admission.finishInto("g", 3));  // another function's
  EXPECT_EQ(admission.counters().startedFromQueue, 1u);
  EXPECT_EQ(admission.finish("f"), 3u);
}

TEST_F(ReservedAdmission, FinishSkipsItAndUnreserveRestoresItsPlace) {
  admission.reserve(2);
  EXPECT_EQ(admission.finish("f"), 3u);  // 2 waits for its sandbox
  EXPECT_EQ(admission.finish("f"), std::nullopt);
  EXPECT_EQ(admission.running("f"), 0u);
  // Room, and only a reserved one queued: a newcomer runs at once.
  EXPECT_EQ(admission.arrive("f", 4), Decision::kRun);
  EXPECT_EQ(admission.arrive("f", 5), Decision::kQueued);
  admission.unreserve(2);  // its sandbox will not start it: first again
  EXPECT_EQ(admission.firstUnreserved("f"), 2u);
  EXPECT_EQ(admission.finish("f"), 2u);
  EXPECT_EQ(admission.finish("f"), 5u);
}

TEST_F(ReservedAdmission, StillTimesOutAndCanBeCancelled) {
  admission.reserve(2);
  admission.reserve(3);
  EXPECT_TRUE(admission.cancel("f", 3));
  clock.advance(10s);
  EXPECT_EQ(admission.expireQueued(), Ids{2});
  EXPECT_EQ(admission.queued("f"), 0u);
}

// The host-wide bound on calls that hold a core (one per core by default).
TEST(HostAdmission, CallsThatHoldACoreRunUpToTheHostBoundAcrossFunctions) {
  FakeClock clock;
  Admission admission(clock, 2);
  EXPECT_EQ(admission.arrive("f", 1, true), Decision::kRun);
  EXPECT_EQ(admission.arrive("g", 2, true), Decision::kRun);
  EXPECT_EQ(admission.arrive("f", 3, true), Decision::kQueued) << "the cores are taken";
  EXPECT_EQ(admission.arrive("h", 4, true), Decision::kQueued);
  EXPECT_EQ(admission.runningOnHost(), 2u);
  // A call that does not hold one is bounded by its function alone.
  EXPECT_EQ(admission.arrive("long", 5, false), Decision::kRun);
  EXPECT_EQ(admission.runningOnHost(), 2u);
  EXPECT_EQ(admission.finish("long", false), std::nullopt) << "it freed no core";
  // A freed core goes to its own function's next first (its sandbox is warm)...
  EXPECT_EQ(admission.finish("f", true), 3u);
  // ...else to the oldest waiter of any function.
  EXPECT_EQ(admission.finish("g", true), 4u);
  EXPECT_EQ(admission.running("h"), 1u);
  EXPECT_EQ(admission.runningOnHost(), 2u);
  EXPECT_EQ(admission.finish("f", true), std::nullopt);
  EXPECT_EQ(admission.finish("h", true), std::nullopt);
  EXPECT_EQ(admission.runningOnHost(), 0u);
  EXPECT_THROW(admission.finish("f", true), std::logic_error);
}

TEST(HostAdmission, AFreedCoreGoesToTheOldestWaiterAmongFunctions) {
  FakeClock clock;
  Admission admission(clock, 1);
  EXPECT_EQ(admission.arrive("a", 1, true), Decision::kRun);
  EXPECT_EQ(admission.arrive("c", 2, true), Decision::kQueued);
  EXPECT_EQ(admission.arrive("b", 3, true), Decision::kQueued);
  EXPECT_EQ(admission.arrive("c", 4, true), Decision::kQueued);
  EXPECT_EQ(admission.finish("a", true), 2u) << "c's first came before b's";
  EXPECT_EQ(admission.finish("c", true), 4u) << "c's own next, its sandbox being free";
  EXPECT_EQ(admission.finish("c", true), 3u);
  EXPECT_EQ(admission.finish("b", true), std::nullopt);
}

TEST(HostAdmission, TheFunctionsOwnLimitStillHolds) {
  FakeClock clock;
  Admission admission(clock, 4);
  admission.setLimits("f", AdmissionLimits{1, 8, 10s});
  EXPECT_EQ(admission.arrive("f", 1, true), Decision::kRun);
  EXPECT_EQ(admission.arrive("f", 2, true), Decision::kQueued) << "f's concurrency is 1";
  EXPECT_EQ(admission.arrive("g", 3, true), Decision::kRun) << "the host has cores left";
  EXPECT_EQ(admission.finish("g", true), std::nullopt) << "f has no room for 2 yet";
  EXPECT_EQ(admission.finish("f", true), 2u);
}

TEST(HostAdmission, AWaiterThatHoldsNoCoreIsNotHeldBackByTheHost) {
  FakeClock clock;
  Admission admission(clock, 1);
  EXPECT_EQ(admission.arrive("short", 1, true), Decision::kRun);
  EXPECT_EQ(admission.arrive("slow", 2, false), Decision::kRun);
  EXPECT_EQ(admission.arrive("short", 3, true), Decision::kQueued);
  EXPECT_EQ(admission.finish("slow", false), std::nullopt) << "no core freed, none started";
  EXPECT_EQ(admission.queued("short"), 1u);
}

TEST(HostAdmission, ACallThatGivesBackItsCoreLetsTheNextWaiterRun) {
  FakeClock clock;
  Admission admission(clock, 1);
  EXPECT_EQ(admission.arrive("f", 1, true), Decision::kRun);
  EXPECT_EQ(admission.arrive("g", 2, true), Decision::kQueued);
  EXPECT_EQ(admission.releaseCore(), 2u) << "1 starts a sandbox: g's waiter takes the core";
  EXPECT_EQ(admission.running("f"), 1u) << "1 runs on, without a core";
  EXPECT_EQ(admission.runningOnHost(), 1u);
  EXPECT_EQ(admission.finish("f", false), std::nullopt);
  EXPECT_EQ(admission.finish("g", true), std::nullopt);
  EXPECT_THROW(admission.releaseCore(), std::logic_error);
}

TEST(HostAdmission, NoBoundWithoutOne) {
  FakeClock clock;
  Admission admission(clock);
  for (uint64_t id = 0; id < 8; ++id) EXPECT_EQ(admission.arrive("f", id, true), Decision::kRun);
  EXPECT_EQ(admission.runningOnHost(), 8u);
}

// A randomized run against a plain model: per function a count of running
// ids and a deque of (id, deadline), every id's state in one map.
TEST(Admission, RandomOperationsMatchAModel) {
  enum class State { kQueued, kRunning, kDone };
  struct Waiting {
    uint64_t id;
    TimePoint deadline;
    uint64_t arrival;
  };
  struct Model {
    AdmissionLimits limits;
    std::vector<uint64_t> running;
    std::deque<Waiting> queue;
  };
  const std::vector<std::string> functions = {"a", "b", "c"};

  FakeClock clock;
  Admission admission(clock);
  std::mt19937_64 random(777);
  auto pick = [&](uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(random); };
  std::map<std::string, Model> model;
  for (const std::string& f : functions) model[f];
  std::map<uint64_t, State> states;
  uint64_t nextId = 1, arrivals = 0;
  uint64_t startedEarly = 0;  // admitted while above a lowered limit: must stay 0

  // A queued id starts: it was queued (exactly once), it now runs.
  auto start = [&](Model& m, uint64_t id) {
    ASSERT_FALSE(m.queue.empty());
    ASSERT_EQ(m.queue.front().id, id);
    ASSERT_EQ(states.at(id), State::kQueued);
    m.queue.pop_front();
    states[id] = State::kRunning;
    m.running.push_back(id);
    if (m.running.size() > m.limits.concurrency) ++startedEarly;
  };

  for (int step = 0; step < 100000; ++step) {
    const std::string& f = functions[pick(functions.size())];
    Model& m = model[f];
    uint64_t op = pick(100);
    if (op < 35) {
      uint64_t id = nextId++;
      ++arrivals;
      Decision expected = Decision::kOverloaded;
      if (m.queue.empty() && m.running.size() < m.limits.concurrency)
        expected = Decision::kRun;
      else if (m.queue.size() < m.limits.queueLength)
        expected = Decision::kQueued;
      ASSERT_EQ(admission.arrive(f, id), expected) << "step " << step;
      if (expected == Decision::kRun) {
        m.running.push_back(id);
        states[id] = State::kRunning;
      } else if (expected == Decision::kQueued) {
        m.queue.push_back(Waiting{id, clock.now() + m.limits.queueTimeout, arrivals});
        states[id] = State::kQueued;
      } else {
        states[id] = State::kDone;
      }
    } else if (op < 65) {
      if (m.running.empty()) {
        ASSERT_THROW(admission.finish(f), std::logic_error);
        continue;
      }
      size_t i = pick(m.running.size());
      states[m.running[i]] = State::kDone;
      m.running.erase(m.running.begin() + i);
      std::optional<uint64_t> got = admission.finish(f);
      if (!m.queue.empty() && m.running.size() < m.limits.concurrency) {
        ASSERT_EQ(got, m.queue.front().id) << "step " << step;
        start(m, *got);
      } else {
        ASSERT_EQ(got, std::nullopt) << "step " << step;
      }
    } else if (op < 75) {  // a caller goes away: queued, running, finished, or never seen
      uint64_t id = pick(4) == 0 && !m.queue.empty() ? m.queue[pick(m.queue.size())].id
                                                     : 1 + pick(nextId + 5);
      auto it = std::find_if(m.queue.begin(), m.queue.end(),
                             [&](const Waiting& w) { return w.id == id; });
      bool expected = it != m.queue.end();
      ASSERT_EQ(admission.cancel(f, id), expected) << "step " << step;
      if (expected) {
        ASSERT_EQ(states.at(id), State::kQueued);
        states[id] = State::kDone;
        m.queue.erase(it);
      }
    } else if (op < 90) {
      clock.advance(std::chrono::milliseconds(pick(3000)));
      std::vector<Waiting> due;
      for (auto& [name, fm] : model) {
        for (const Waiting& w : fm.queue)
          if (w.deadline <= clock.now()) due.push_back(w);
        std::erase_if(fm.queue, [&](const Waiting& w) { return w.deadline <= clock.now(); });
      }
      std::sort(due.begin(), due.end(), [](const Waiting& x, const Waiting& y) {
        return std::tie(x.deadline, x.arrival) < std::tie(y.deadline, y.arrival);
      });
      Ids expected;
      for (const Waiting& w : due) {
        ASSERT_EQ(states.at(w.id), State::kQueued);
        states[w.id] = State::kDone;
        expected.push_back(w.id);
      }
      ASSERT_EQ(admission.expireQueued(), expected) << "step " << step;
    } else if (op < 97) {
      AdmissionLimits limits{unsigned(pick(5)), unsigned(pick(6)),
                             std::chrono::milliseconds(1 + pick(8000))};
      m.limits = limits;
      admission.setLimits(f, limits);
    } else {
      Ids got = admission.admitWaiting(f);
      for (uint64_t id : got) start(m, id);
      ASSERT_TRUE(m.queue.empty() || m.running.size() >= m.limits.concurrency);
    }

    for (const std::string& g : functions) {
      ASSERT_EQ(admission.running(g), model[g].running.size()) << "step " << step;
      ASSERT_EQ(admission.queued(g), model[g].queue.size()) << "step " << step;
    }
    std::optional<TimePoint> next;
    for (auto& [name, fm] : model)
      for (const Waiting& w : fm.queue)
        if (!next || w.deadline < *next) next = w.deadline;
    ASSERT_EQ(admission.nextQueueDeadline(), next) << "step " << step;
  }

  // Every id is in exactly one state, and the counters add up.
  std::map<State, uint64_t> byState;
  for (const auto& [id, state] : states) ++byState[state];
  uint64_t running = 0, queued = 0;
  for (auto& [name, m] : model) {
    running += m.running.size();
    queued += m.queue.size();
  }
  EXPECT_EQ(states.size(), nextId - 1);
  EXPECT_EQ(byState[State::kRunning], running);
  EXPECT_EQ(byState[State::kQueued], queued);
  EXPECT_EQ(startedEarly, 0u);
  const Admission::Counters& c = admission.counters();
  EXPECT_EQ(c.admitted + c.queued + c.overloaded, arrivals);
  EXPECT_EQ(c.startedFromQueue + c.queueTimeouts + c.cancelled + queued, c.queued);
  // The run did exercise every path.
  EXPECT_GT(c.startedFromQueue, 1000u);
  EXPECT_GT(c.queueTimeouts, 1000u);
  EXPECT_GT(c.cancelled, 100u);
  EXPECT_GT(c.overloaded, 1000u);
}

}  // namespace
}  // namespace supervisor
