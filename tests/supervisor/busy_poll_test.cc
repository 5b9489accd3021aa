// Busy polling: when the loop and the sandboxes poll, and that the loop
// really waits without sleeping while it does (and sleeps otherwise).
#include "supervisor/busy_poll.h"

#include <gtest/gtest.h>
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include "base/fd.h"
#include "runtime/runtime.capnp.h"
#include "runtime/shared_answer.h"
#include "tests/testing.h"

namespace supervisor {
namespace {

using namespace std::chrono_literals;

TEST(BusyPoll, PollsWhileFewerAnswersAreDueThanThereAreCores) {
  FakeClock clock;
  BusyPoll poll(clock, 100us, /*cores=*/2, /*sandboxCpus=*/1.0);
  EXPECT_EQ(poll.loopWindow(), 0us) << "nothing due: the loop sleeps";
  EXPECT_EQ(poll.dispatched(true), 100'000u) << "the sandbox polls for its next request";
  EXPECT_EQ(poll.loopWindow(), 100us);
  poll.answered(true);
  EXPECT_EQ(poll.answers(), 1u);
  EXPECT_EQ(poll.loopWindow(), 0us);
}

TEST(BusyPoll, NothingPollsOnceAsManyAnswersAreDueAsThereAreCores) {
  FakeClock clock;
  BusyPoll poll(clock, 100us, /*cores=*/2, 1.0);
  EXPECT_GT(poll.dispatched(true), 0u);
  EXPECT_EQ(poll.dispatched(true), 0u) << "two due on two cores";
  EXPECT_EQ(poll.loopWindow(), 0us);
  poll.answered(true);
  // One due again, but the host was busy a moment ago: a gap between two
  // batches is not idleness.
  EXPECT_EQ(poll.loopWindow(), 0us);
  poll.answered(true);
  EXPECT_EQ(poll.dispatched(true), 0u);
  poll.answered(true);
  // Idle for two whole epochs: polling again.
  clock.advance(2 * BusyPoll::kEpoch);
  EXPECT_GT(poll.dispatched(true), 0u);
  EXPECT_EQ(poll.loopWindow(), 100us);
}

TEST(BusyPoll, TheBusyEpochIsForgottenAfterAQuietOne) {
  FakeClock clock;
  BusyPoll poll(clock, 100us, /*cores=*/2, 1.0);
  poll.dispatched(true);
  poll.dispatched(true);
  poll.answered(true);
  poll.answered(true);
  clock.advance(BusyPoll::kEpoch);
  EXPECT_EQ(poll.dispatched(true), 0u) << "the previous epoch had 2 due";
  poll.answered(true);
  clock.advance(BusyPoll::kEpoch);
  EXPECT_GT(poll.dispatched(true), 0u) << "the last two epochs had at most 1 due";
}

// A sandbox that is asleep is woken by the request, often onto thatchd's
// own core: polling for its answer there would keep it from running.
TEST(BusyPoll, TheLoopPollsOnlyForAnswersFromSandboxesThatAreAwake) {
  FakeClock clock;
  BusyPoll poll(clock, 100us, /*cores=*/4, 1.0);
  EXPECT_GT(poll.dispatched(/*awake=*/false), 0u) << "it still polls after answering";
  EXPECT_EQ(poll.loopWindow(), 0us);
  EXPECT_GT(poll.dispatched(/*awake=*/true), 0u);
  EXPECT_EQ(poll.loopWindow(), 0us) << "one of the two answers due is from a sleeper";
  poll.answered(/*awake=*/false);
  EXPECT_EQ(poll.loopWindow(), 100us);
  poll.answered(/*awake=*/true);
  EXPECT_EQ(poll.loopWindow(), 0us);
}

TEST(BusyPoll, SandboxesWithLessThanACoreDoNotPoll) {
  FakeClock clock;
  BusyPoll poll(clock, 100us, /*cores=*/4, /*sandboxCpus=*/0.5);
  EXPECT_EQ(poll.dispatched(true), 0u) << "their quota would pay for it";
  EXPECT_EQ(poll.loopWindow(), 100us) << "the loop still polls";
}

TEST(BusyPoll, OffMeansOffAndOneCoreNeverPolls) {
  struct Case {
    std::chrono::microseconds window;
    unsigned cores;
  };
  for (Case c : {Case{0us, 64}, Case{100us, 1}}) {
    FakeClock clock;
    BusyPoll poll(clock, c.window, c.cores, 1.0);
    EXPECT_EQ(poll.dispatched(true), 0u) << c.cores << " cores";
    EXPECT_EQ(poll.loopWindow(), 0us) << c.cores << " cores";
  }
}

TEST(BusyPoll, WhenWantedResolvesAtADispatchThatPolls) {
  auto io = kj::setupAsyncIo();
  FakeClock clock;
  BusyPoll poll(clock, 100us, /*cores=*/2, 1.0);
  auto wanted = poll.whenWanted();
  EXPECT_FALSE(wanted.poll(io.waitScope));
  poll.dispatched(/*awake=*/false);
  EXPECT_FALSE(wanted.poll(io.waitScope)) << "not for a sandbox that was asleep";
  poll.answered(false);
  poll.dispatched(true);
  EXPECT_TRUE(wanted.poll(io.waitScope));
  poll.dispatched(true);  // two due: no polling
  auto notWanted = poll.whenWanted();
  poll.dispatched(true);
  EXPECT_FALSE(notWanted.poll(io.waitScope));
}

long voluntarySwitchesOfThisThread() {
  rusage usage;
  getrusage(RUSAGE_THREAD, &usage);
  return usage.ru_nvcsw;
}

// When a "sandbox" thread answers the loop thread: 20 ms after the loop
// began to wait (while a loop that polls still does, whatever the load), or
// once the loop thread has gone to sleep (or after a minute, if it never
// does: the test's failure bound).
enum class Answer { kAfter20ms, kOnceLoopSleeps };

// Blocks the sandbox thread until it should answer; `loopSwitches` is the
// loop thread's count of sleeps as it began to wait (-1 until then).
void waitToAnswer(Answer when, pid_t loop, const std::atomic<long>& loopSwitches) {
  while (loopSwitches.load() < 0) std::this_thread::sleep_for(1ms);
  if (when == Answer::kAfter20ms)
    std::this_thread::sleep_for(20ms);
  else
    testing_util::eventually(
        [&] { return testing_util::voluntarySwitches(loop) > loopSwitches.load(); });
}

// runUntil with one answer due, which a "sandbox" thread writes as `when`
// says. Returns the loop thread's voluntary context switches (sleeps) while
// it waited for that answer.
long sleepsWhileWaiting(std::chrono::microseconds window, Answer when) {
  auto io = kj::setupAsyncIo();
  SteadyClock clock;
  BusyPoll poll(clock, window, /*cores=*/2, 1.0);
  int fds[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds), 0);
  base::Fd ours(fds[0]), sandboxEnd(fds[1]);
  kj::UnixEventPort::FdObserver observer(io.unixEventPort, ours.get(),
                                         kj::UnixEventPort::FdObserver::OBSERVE_READ);
  poll.dispatched(true);
  long sleeps = -1;
  auto answer = observer.whenBecomesReadable().then([&]() {
    sleeps = voluntarySwitchesOfThisThread() - sleeps;
    poll.answered(true);
  });
  pid_t loop = gettid();
  std::atomic<long> loopSwitches{-1};
  std::thread sandboxSide([&] {
    waitToAnswer(when, loop, loopSwitches);
    EXPECT_EQ(write(sandboxEnd.get(), "a", 1), 1);
  });
  sleeps = voluntarySwitchesOfThisThread();
  loopSwitches.store(sleeps);
  runUntil(kj::mv(answer), io.waitScope, poll);
  sandboxSide.join();
  return sleeps;
}

// A window of a minute: the answer comes within it, however loaded the host.
TEST(RunUntil, PollsForADueAnswerWithinTheWindowWithoutSleeping) {
  EXPECT_EQ(sleepsWhileWaiting(/*window=*/60s, Answer::kAfter20ms), 0);
}

TEST(RunUntil, SleepsOnceTheWindowIsOver) {
  EXPECT_GE(sleepsWhileWaiting(/*window=*/1000us, Answer::kOnceLoopSleeps), 1);
}

TEST(RunUntil, SleepsWhenBusyPollingIsOff) {
  EXPECT_GE(sleepsWhileWaiting(/*window=*/0us, Answer::kOnceLoopSleeps), 1);
}

TEST(RunUntil, ReturnsWhenStopResolvesWhilePolling) {
  auto io = kj::setupAsyncIo();
  SteadyClock clock;
  BusyPoll poll(clock, 60s, /*cores=*/2, 1.0);
  poll.dispatched(true);  // an answer that never comes
  auto start = std::chrono::steady_clock::now();
  runUntil(io.provider->getTimer().afterDelay(20 * kj::MILLISECONDS), io.waitScope, poll);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 60s)
      << "the stop ended the loop, not the end of the window";
}

// A shared answer page watched by runUntil's loop, and its sandbox's side
// (a second mapping, answered from a thread as `when` says; what does not
// fit the page's handshake goes to the socket, as a sandbox's would).
struct PageRun {
  bool watchedInLoop = false;       // pagesWatched() while runUntil ran
  std::optional<bool> watchResult;  // what watch() resolved to
  bool sandboxWroteInPage = false;
  long sleeps = -1;
};

PageRun runWithPage(std::chrono::microseconds window, Answer when) {
  auto io = kj::setupAsyncIo();
  SteadyClock clock;
  BusyPoll poll(clock, window, /*cores=*/2, 1.0);
  base::Fd pageFd = runtime::SharedAnswer::create();
  runtime::SharedAnswer thatchdSide(pageFd.get()), sandboxSide(pageFd.get());
  int fds[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds), 0);
  base::Fd ours(fds[0]), sandboxEnd(fds[1]);
  kj::UnixEventPort::FdObserver observer(io.unixEventPort, ours.get(),
                                         kj::UnixEventPort::FdObserver::OBSERVE_READ);
  PageRun run;
  EXPECT_FALSE(poll.pagesWatched()) << "no runUntil: no page is watched";
  poll.dispatched(true);
  thatchdSide.watch();
  auto inPage = poll.watch(thatchdSide).then([&](bool there) {
    run.watchResult = there;
    if (there) return kj::Promise<void>(kj::READY_NOW);
    return observer.whenBecomesReadable();
  });
  auto answered = kj::evalLater([&] {
                    run.watchedInLoop = poll.pagesWatched();
                  }).then([&, inPage = kj::mv(inPage)]() mutable {
                      return kj::mv(inPage);
                    }).then([&] {
    run.sleeps = voluntarySwitchesOfThisThread() - run.sleeps;
    poll.answered(true);
  });
  pid_t loop = gettid();
  std::atomic<long> loopSwitches{-1};
  std::thread sandboxThread([&] {
    waitToAnswer(when, loop, loopSwitches);
    capnp::MallocMessageBuilder message;
    message.initRoot<runtime::wire::SandboxMessage>().initResult().setRunNs(1);
    run.sandboxWroteInPage = sandboxSide.tryAnswer(message);
    if (!run.sandboxWroteInPage) {
      EXPECT_EQ(write(sandboxEnd.get(), "a", 1), 1);
    }
  });
  run.sleeps = voluntarySwitchesOfThisThread();
  loopSwitches.store(run.sleeps);
  runUntil(kj::mv(answered), io.waitScope, poll);
  sandboxThread.join();
  EXPECT_FALSE(poll.pagesWatched()) << "runUntil has returned";
  return run;
}

TEST(RunUntil, TakesAnAnswerFromAWatchedPageWithoutSleeping) {
  PageRun run = runWithPage(/*window=*/60s, Answer::kAfter20ms);
  EXPECT_TRUE(run.watchedInLoop);
  EXPECT_TRUE(run.sandboxWroteInPage);
  EXPECT_EQ(run.watchResult, std::optional<bool>(true));
  EXPECT_EQ(run.sleeps, 0);
}

TEST(RunUntil, StopsWatchingBeforeItSleepsAndTheAnswerTakesTheChannel) {
  PageRun run = runWithPage(/*window=*/1000us, Answer::kOnceLoopSleeps);
  EXPECT_TRUE(run.watchedInLoop);
  EXPECT_FALSE(run.sandboxWroteInPage) << "the page was abandoned when the window ended";
  EXPECT_EQ(run.watchResult, std::optional<bool>(false));
  EXPECT_GE(run.sleeps, 1);
}

}  // namespace
}  // namespace supervisor
