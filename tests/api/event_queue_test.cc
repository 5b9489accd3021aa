// thatchd::EventQueue: asynchronous invocations, durable before they are
// accepted, run in order, retried as Lambda retries them, and run at least
// once across a restart or a kill -9.
#include "daemon/event_queue.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <kj/async-io.h>
#include <kj/debug.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "tests/testing.h"

namespace {

using thatch::Status;
using thatchd::EventQueue;
using thatchd::EventQueueLimits;

std::string name(uint64_t seq) {
  std::string digits = std::to_string(seq);
  return std::string(20 - digits.size(), '0') + digits + ".event";
}

EventQueue::Event event(const std::string& requestId, std::string payload = "{}") {
  return {"f", 0, std::move(payload), requestId};
}

// Retries 1 ms later: no test waits for a time to pass.
EventQueueLimits limits() {
  EventQueueLimits limits;
  limits.retryDelay = std::chrono::milliseconds(1);
  return limits;
}

// A loop, a directory, and a fake invoke that records each call and holds
// its answer for the test to give (or has `respond` answer at once).
class Fixture {
 public:
  struct Call {
    EventQueue::Event event;
    kj::Own<kj::PromiseFulfiller<Status>> answer;  // held ones
  };

  testing_util::TempDir tmp{"thatch-eventq"};
  std::string dir = tmp.path() + "/events";
  kj::AsyncIoContext io = kj::setupAsyncIo();
  std::function<kj::Promise<Status>(const EventQueue::Event&)> respond;  // none: hold
  std::vector<Call> calls;
  std::vector<std::string> log;

  std::unique_ptr<EventQueue> open(EventQueueLimits limits = ::limits()) {
    return std::make_unique<EventQueue>(
        dir, io.unixEventPort, io.provider->getTimer(),
        [this](EventQueue::Event event) { return invoked(std::move(event)); }, limits,
        supervisor::EventLog(supervisor::EventLog::Format::kText, [this](std::string_view line) {
          log.emplace_back(line);
          wake();
        }));
  }

  // Runs the loop until `condition` holds, woken by each call and log line.
  // The bound is for failing, not for waiting.
  bool waitFor(const std::function<bool()>& condition) {
    while (!condition()) {
      auto woken = kj::newPromiseAndFulfiller<bool>();
      woken_ = kj::mv(woken.fulfiller);
      auto late = io.provider->getTimer().afterDelay(60 * kj::SECONDS).then([]() { return false; });
      if (!woken.promise.exclusiveJoin(kj::mv(late)).wait(io.waitScope)) return false;
    }
    return true;
  }

  // Runs what is ready (the queue's answer to an invocation that ended).
  void settle() { io.waitScope.poll(); }

  std::vector<std::string> requestIds() const {
    std::vector<std::string> ids;
    for (const Call& call : calls) ids.push_back(call.event.requestId);
    return ids;
  }
  size_t held() {
    size_t n = 0;
    for (Call& call : calls) n += call.answer && call.answer->isWaiting();
    return n;
  }
  std::vector<std::string> logged(const std::string& what) const {
    std::vector<std::string> lines;
    for (const std::string& line : log)
      if (line.starts_with("thatchd: " + what + " ")) lines.push_back(line);
    return lines;
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
    if (woken_ && woken_->isWaiting()) woken_->fulfill(true);
  }

  kj::Own<kj::PromiseFulfiller<bool>> woken_;
};

kj::Promise<Status> answer(Status status) {
  return status;
}

// enqueue()'s refusal: its type and description.
std::pair<kj::Exception::Type, std::string> refusal(kj::Promise<void> enqueued,
                                                    kj::WaitScope& waitScope) {
  try {
    enqueued.wait(waitScope);
  } catch (const kj::Exception& e) {
    return {e.getType(), e.getDescription().cStr()};
  }
  ADD_FAILURE() << "the event was accepted";
  return {};
}

void storeAll(EventQueue& queue, std::vector<EventQueue::Event> events, kj::WaitScope& waitScope) {
  kj::Vector<kj::Promise<void>> stored;
  for (EventQueue::Event& event : events) stored.add(queue.enqueue(std::move(event)));
  kj::joinPromises(stored.releaseAsArray()).wait(waitScope);
}

TEST(EventQueue, RunsEventsOnceEachInTheOrderOfAcceptance) {
  Fixture f;
  f.respond = [](const EventQueue::Event&) { return answer(Status::kOk); };
  std::string binary("\0\xff{\"x\": 1}\n", 11);
  {
    auto queue = f.open();
    std::vector<EventQueue::Event> events;
    std::vector<std::string> ids;
    for (int i = 0; i < 40; ++i) {
      events.push_back({"fn" + std::to_string(i), uint64_t(i), binary + std::to_string(i),
                        "r" + std::to_string(i)});
      ids.push_back("r" + std::to_string(i));
    }
    storeAll(*queue, events, f.io.waitScope);
    ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 40; }));
    f.settle();
    EXPECT_EQ(f.requestIds(), ids);
    for (int i = 0; i < 40; ++i) {
      EXPECT_EQ(f.calls[i].event.function, "fn" + std::to_string(i));
      EXPECT_EQ(f.calls[i].event.version, uint64_t(i));
      EXPECT_EQ(f.calls[i].event.payload, binary + std::to_string(i));
    }
    EXPECT_EQ(queue->pending(), 0u);
    EXPECT_EQ(queue->running(), 0u);
  }
  EXPECT_EQ(f.calls.size(), 40u);
  EXPECT_EQ(testing_util::directoryEntries(f.dir), std::set<std::string>{});
  EXPECT_EQ(f.log, std::vector<std::string>{});
}

TEST(EventQueue, RunsAtMostItsConcurrencyAtOnce) {
  Fixture f;
  auto l = limits();
  l.concurrency = 2;
  auto queue = f.open(l);
  storeAll(*queue, {event("r0"), event("r1"), event("r2"), event("r3"), event("r4")},
           f.io.waitScope);
  ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 2; }));
  f.settle();
  EXPECT_EQ(f.calls.size(), 2u);
  EXPECT_EQ(queue->running(), 2u);
  EXPECT_EQ(queue->pending(), 5u);
  for (size_t done = 0; done < 5; ++done) {
    EXPECT_LE(f.held(), 2u);
    f.calls[done].answer->fulfill(Status::kOk);
    f.settle();
    EXPECT_EQ(f.calls.size(), std::min<size_t>(done + 3, 5));
    EXPECT_EQ(queue->running(), std::min<size_t>(4 - done, 2));
    EXPECT_EQ(queue->pending(), 4 - done);
  }
  EXPECT_EQ(f.requestIds(), (std::vector<std::string>{"r0", "r1", "r2", "r3", "r4"}));
}

TEST(EventQueue, AFullQueueRefusesAsOverloaded) {
  Fixture f;
  auto l = limits();
  l.maxEvents = 2;
  l.concurrency = 1;
  auto queue = f.open(l);
  storeAll(*queue, {event("r0"), event("r1")}, f.io.waitScope);
  auto [type, message] = refusal(queue->enqueue(event("r2")), f.io.waitScope);
  EXPECT_EQ(type, kj::Exception::Type::OVERLOADED);
  EXPECT_NE(message.find("queue of asynchronous invocations is full (2 events"), std::string::npos)
      << message;
  ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 1; }));
  f.calls[0].answer->fulfill(Status::kOk);
  f.settle();
  queue->enqueue(event("r3")).wait(f.io.waitScope);  // room again
  EXPECT_EQ(queue->pending(), 2u);
}

TEST(EventQueue, APayloadOverTheLimitIsRefused) {
  Fixture f;
  auto l = limits();
  l.maxPayloadBytes = 10;
  l.concurrency = 0;
  auto queue = f.open(l);
  auto [type, message] = refusal(queue->enqueue(event("r0", "12345678901")), f.io.waitScope);
  EXPECT_EQ(type, kj::Exception::Type::FAILED);
  EXPECT_NE(message.find("the payload is 11 bytes: an asynchronous invocation takes at most 10"),
            std::string::npos)
      << message;
  queue->enqueue(event("r1", "1234567890")).wait(f.io.waitScope);
  EXPECT_EQ(queue->pending(), 1u);
  EXPECT_EQ(testing_util::directoryEntries(f.dir),
            std::set<std::string>{name(1)});  // no number for a refusal
}

TEST(EventQueue, PayloadsNotYetWrittenAreBounded) {
  Fixture f;
  auto l = limits();
  l.maxUnstoredBytes = 1000;
  l.concurrency = 0;
  auto queue = f.open(l);
  // In the same turn of the loop: the thread's answer cannot come between.
  auto first = queue->enqueue(event("r0", std::string(600, 'x')));
  auto [type, message] =
      refusal(queue->enqueue(event("r1", std::string(600, 'x'))), f.io.waitScope);
  EXPECT_EQ(type, kj::Exception::Type::OVERLOADED);
  EXPECT_NE(message.find("the disk is behind: 600 bytes"), std::string::npos) << message;
  first.wait(f.io.waitScope);
  queue->enqueue(event("r2", std::string(600, 'x'))).wait(f.io.waitScope);
  EXPECT_EQ(queue->pending(), 2u);
}

TEST(EventQueue, AHandlerErrorIsTriedMaxAttemptsTimesThenDropped) {
  Fixture f;
  f.respond = [](const EventQueue::Event&) { return answer(Status::kHandlerError); };
  {
    auto queue = f.open();
    queue->enqueue(event("req-1")).wait(f.io.waitScope);
    ASSERT_TRUE(f.waitFor([&]() { return !f.logged("async_event_dropped").empty(); }));
    f.settle();
    EXPECT_EQ(f.calls.size(), 3u);
    EXPECT_EQ(queue->pending(), 0u);
  }
  ASSERT_EQ(f.log.size(), 1u);
  for (const char* field : {" function=f ", " request_id=req-1 ", " reason=max_attempts ",
                            " attempts=3 ", " last_status=handler_error "})
    EXPECT_NE(f.log[0].find(field), std::string::npos) << f.log[0];
  EXPECT_EQ(testing_util::directoryEntries(f.dir), std::set<std::string>{});
}

TEST(EventQueue, ARejectedInvocationIsAFailedAttempt) {
  Fixture f;
  f.respond = [](const EventQueue::Event&) -> kj::Promise<Status> {
    return KJ_EXCEPTION(DISCONNECTED, "the zygote went away");
  };
  auto l = limits();
  l.maxAttempts = 2;
  auto queue = f.open(l);
  queue->enqueue(event("req-1")).wait(f.io.waitScope);
  ASSERT_TRUE(f.waitFor([&]() { return !f.logged("async_event_dropped").empty(); }));
  EXPECT_EQ(f.calls.size(), 2u);
  EXPECT_NE(f.log[0].find("the zygote went away"), std::string::npos) << f.log[0];
  EXPECT_NE(f.log[0].find(" attempts=2 "), std::string::npos) << f.log[0];
}

TEST(EventQueue, OverloadedIsRetriedWithoutCountingAnAttemptThenSucceeds) {
  Fixture f;
  f.respond = [&](const EventQueue::Event&) {
    // More refusals than maxAttempts allows failures.
    if (f.calls.size() <= 6)
      return answer(f.calls.size() % 2 ? Status::kOverloaded : Status::kShuttingDown);
    return answer(Status::kOk);
  };
  auto l = limits();
  l.maxAttempts = 2;
  auto queue = f.open(l);
  queue->enqueue(event("r0")).wait(f.io.waitScope);
  ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 7; }));
  f.settle();
  EXPECT_EQ(queue->pending(), 0u);
  EXPECT_EQ(f.log, std::vector<std::string>{});
}

TEST(EventQueue, NotFoundAndBadRequestAreDroppedAtOnce) {
  Fixture f;
  f.respond = [](const EventQueue::Event& event) {
    return answer(event.requestId == "gone" ? Status::kNotFound : Status::kBadRequest);
  };
  auto queue = f.open();
  storeAll(*queue, {event("gone"), event("bad")}, f.io.waitScope);
  ASSERT_TRUE(f.waitFor([&]() { return f.logged("async_event_dropped").size() == 2; }));
  f.settle();
  EXPECT_EQ(f.calls.size(), 2u);
  EXPECT_EQ(queue->pending(), 0u);
  auto dropped = f.logged("async_event_dropped");
  EXPECT_NE(
      dropped[0].find("request_id=gone reason=not_retryable attempts=0 last_status=not_found"),
      std::string::npos)
      << dropped[0];
  EXPECT_NE(
      dropped[1].find("request_id=bad reason=not_retryable attempts=0 last_status=bad_request"),
      std::string::npos)
      << dropped[1];
}

TEST(EventQueue, AnEventOlderThanMaxAgeIsDropped) {
  Fixture f;
  f.respond = [](const EventQueue::Event&) { return answer(Status::kOverloaded); };
  auto l = limits();
  l.maxAge = std::chrono::seconds(0);  // any age is too old, once the loop's clock has moved
  auto queue = f.open(l);
  queue->enqueue(event("old")).wait(f.io.waitScope);
  ASSERT_TRUE(f.waitFor([&]() { return !f.logged("async_event_dropped").empty(); }));
  f.settle();
  EXPECT_EQ(queue->pending(), 0u);
  EXPECT_NE(f.log[0].find("request_id=old reason=max_age"), std::string::npos) << f.log[0];
}

TEST(EventQueue, EnqueueResolvesOnlyOnceTheFileIsInItsPlace) {
  Fixture f;
  auto l = limits();
  l.concurrency = 0;  // nothing runs: the file stays
  auto queue = f.open(l);
  std::set<std::string> seen;
  queue->enqueue(event("r0", "the payload"))
      .then([&]() { seen = testing_util::directoryEntries(f.dir); })
      .wait(f.io.waitScope);
  EXPECT_EQ(seen, std::set<std::string>{name(1)});
  std::string contents = testing_util::readFile(f.dir + "/" + name(1));
  EXPECT_TRUE(contents.ends_with("fr0the payload")) << contents;
  EXPECT_EQ(queue->pending(), 1u);
}

TEST(EventQueue, ARestartRunsEveryAcceptedEventAgainAndItsSequenceGoesOn) {
  Fixture f;
  auto l = limits();
  l.concurrency = 2;
  {
    auto queue = f.open(l);
    storeAll(*queue, {event("r0"), event("r1"), event("r2"), event("r3"), event("r4")},
             f.io.waitScope);
    ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 2; }));
    EXPECT_EQ(queue->running(), 2u);
  }  // r0 and r1 were running, never answered
  EXPECT_EQ(testing_util::directoryEntries(f.dir),
            (std::set<std::string>{name(1), name(2), name(3), name(4), name(5)}));
  f.calls.clear();
  l.concurrency = 16;
  auto queue = f.open(l);
  EXPECT_EQ(queue->pending(), 5u);
  ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 5; }));
  queue->enqueue(event("r5")).wait(f.io.waitScope);
  ASSERT_TRUE(f.waitFor([&]() { return f.calls.size() == 6; }));
  EXPECT_EQ(f.requestIds(), (std::vector<std::string>{"r0", "r1", "r2", "r3", "r4", "r5"}));
  EXPECT_EQ(testing_util::directoryEntries(f.dir),
            (std::set<std::string>{name(1), name(2), name(3), name(4), name(5), name(6)}));
  for (Fixture::Call& call : f.calls) call.answer->fulfill(Status::kOk);
  f.settle();
  EXPECT_EQ(queue->pending(), 0u);
  queue = nullptr;
  EXPECT_EQ(testing_util::directoryEntries(f.dir), std::set<std::string>{});
}

// The child: enqueues without end, 16 at once, and writes each request id
// to `report` once it is accepted; nothing it accepts ever finishes.
[[noreturn]] void enqueueUntilKilled(const std::string& dir, int report) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  try {
    auto io = kj::setupAsyncIo();
    auto l = limits();
    l.concurrency = 4;
    EventQueue queue(
        dir, io.unixEventPort, io.provider->getTimer(),
        [](EventQueue::Event) -> kj::Promise<Status> { return kj::NEVER_DONE; }, l,
        supervisor::EventLog(supervisor::EventLog::Format::kText, [](std::string_view) {}));
    uint64_t next = 0;
    std::function<kj::Promise<void>()> enqueueNext = [&]() {
      std::string id = "r" + std::to_string(next++);
      return queue.enqueue(event(id, std::string(1000, 'x'))).then([&, id]() {
        std::string line = id + "\n";
        if (write(report, line.data(), line.size()) != ssize_t(line.size())) _exit(1);
        return enqueueNext();
      });
    };
    kj::Vector<kj::Promise<void>> enqueuers;
    for (int i = 0; i < 16; ++i) enqueuers.add(enqueueNext());
    kj::joinPromises(enqueuers.releaseAsArray()).wait(io.waitScope);
  } catch (...) {
  }
  _exit(1);
}

TEST(EventQueue, AKillNineLosesNoAcceptedEvent) {
  testing_util::TempDir tmp("thatch-eventq");
  std::string dir = tmp.path() + "/events";
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  pid_t child = fork();  // before this process has a loop: the child makes its own
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    enqueueUntilKilled(dir, fds[1]);
  }
  close(fds[1]);
  std::set<std::string> accepted;
  std::string unread;
  char buffer[4096];
  while (accepted.size() < 300) {
    ssize_t n = read(fds[0], buffer, sizeof buffer);
    if (n <= 0) break;
    unread.append(buffer, size_t(n));
    for (size_t end; (end = unread.find('\n')) != std::string::npos; unread.erase(0, end + 1))
      accepted.insert(unread.substr(0, end));
  }
  kill(child, SIGKILL);  // while it writes: it has more to store
  int status = 0;
  waitpid(child, &status, 0);
  close(fds[0]);
  ASSERT_GE(accepted.size(), 300u) << "the child stopped: " << status;

  Fixture f;
  f.dir = dir;
  f.respond = [](const EventQueue::Event&) { return answer(Status::kOk); };
  auto queue = f.open();
  std::set<std::string> ran;
  ASSERT_TRUE(f.waitFor([&]() {
    for (const Fixture::Call& call : f.calls) ran.insert(call.event.requestId);
    return std::includes(ran.begin(), ran.end(), accepted.begin(), accepted.end());
  }));
  EXPECT_EQ(f.logged("async_event_damaged"), std::vector<std::string>{});
}

TEST(EventQueue, DamagedFilesAreReportedAndRemovedAndTheOthersRun) {
  Fixture f;
  auto l = limits();
  l.concurrency = 0;
  {
    auto queue = f.open(l);
    storeAll(*queue,
             {event("r0", "payload 0"), event("r1", "payload 1"), event("r2", "payload 2"),
              event("r3", "payload 3")},
             f.io.waitScope);
  }
  testing_util::writeFile(f.dir + "/" + name(2), "garbage");
  std::string third = testing_util::readFile(f.dir + "/" + name(3));
  testing_util::writeFile(f.dir + "/" + name(3), third.substr(0, third.size() - 3));
  std::string fourth = testing_util::readFile(f.dir + "/" + name(4));
  fourth.back() ^= 1;  // only the payload's checksum can tell
  testing_util::writeFile(f.dir + "/" + name(4), fourth);
  testing_util::writeFile(f.dir + "/notes", "not the queue's");

  f.respond = [](const EventQueue::Event&) { return answer(Status::kOk); };
  {
    auto queue = f.open();
    ASSERT_TRUE(f.waitFor(
        [&]() { return f.calls.size() == 1 && f.logged("async_event_damaged").size() == 3; }));
    f.settle();
    EXPECT_EQ(queue->pending(), 0u);
  }
  EXPECT_EQ(f.requestIds(), std::vector<std::string>{"r0"});
  EXPECT_EQ(f.calls[0].event.payload, "payload 0");
  auto damaged = f.logged("async_event_damaged");
  EXPECT_NE(damaged[0].find(name(2) + " error=\"it is 7 bytes, shorter than a header\""),
            std::string::npos)
      << damaged[0];
  EXPECT_NE(damaged[1].find(name(3) + " error=\"it is "), std::string::npos) << damaged[1];
  EXPECT_NE(damaged[1].find("(truncated?)"), std::string::npos) << damaged[1];
  EXPECT_NE(damaged[2].find(name(4) + " error=\"its payload is damaged (checksum)\""),
            std::string::npos)
      << damaged[2];
  EXPECT_EQ(f.logged("async_event_stray_file").size(), 1u);
  EXPECT_EQ(testing_util::directoryEntries(f.dir), std::set<std::string>{"notes"});
}

TEST(EventQueue, APartialWriteIsRemovedAtStart) {
  Fixture f;
  std::filesystem::create_directories(f.dir);
  std::string partial = "00000000000000000007.event.tmp";
  testing_util::writeFile(f.dir + "/" + partial, "THQEVT01 and no more");
  auto l = limits();
  l.concurrency = 0;
  auto queue = f.open(l);
  EXPECT_EQ(testing_util::directoryEntries(f.dir), std::set<std::string>{});
  ASSERT_EQ(f.logged("async_event_partial_removed").size(), 1u);
  EXPECT_NE(f.log[0].find(partial), std::string::npos) << f.log[0];
  EXPECT_EQ(queue->pending(), 0u);
  queue->enqueue(event("r0")).wait(f.io.waitScope);  // its number after the partial one's
  EXPECT_EQ(testing_util::directoryEntries(f.dir), std::set<std::string>{name(8)});
}

TEST(EventQueue, ASecondQueueOnTheSameDirectoryIsRefused) {
  Fixture f;
  auto queue = f.open();
  try {
    f.open();
    ADD_FAILURE() << "two queues share " << f.dir;
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("another thatchd"), std::string::npos) << e.what();
  }
}

TEST(EventQueue, AFullDiskIsARefusalThatSaysSo) {
  Fixture f;
  std::filesystem::create_directories(f.dir);
  std::unique_ptr<testing_util::TmpfsMount> disk;
  try {
    disk = std::make_unique<testing_util::TmpfsMount>(f.dir, "size=128k");
  } catch (const std::runtime_error& e) {
    GTEST_SKIP() << e.what();
  }
  auto l = limits();
  l.concurrency = 0;
  auto queue = f.open(l);
  int accepted = 0;
  for (; accepted < 10; ++accepted) {
    try {
      queue->enqueue(event("r", std::string(60000, 'x'))).wait(f.io.waitScope);
    } catch (const kj::Exception& e) {
      EXPECT_EQ(e.getType(), kj::Exception::Type::FAILED);
      EXPECT_NE(std::string(e.getDescription().cStr())
                    .find("thatchd could not store the event: the disk is full"),
                std::string::npos)
          << e.getDescription().cStr();
      break;
    }
  }
  EXPECT_GE(accepted, 1);
  EXPECT_LT(accepted, 10);
  EXPECT_EQ(queue->pending(), size_t(accepted));
  EXPECT_EQ(testing_util::directoryEntries(f.dir).size(), size_t(accepted));  // no partial left
  queue = nullptr;
}

}  // namespace
