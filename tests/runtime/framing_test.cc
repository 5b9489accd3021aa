// The sandbox side of the invocation channel: runtime::MessageStream over a
// unix stream socket, as a sandbox reads its requests and writes its answers.

#include "runtime/framing.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include "base/fd.h"
#include "base/sys_error.h"
#include "runtime/runtime.capnp.h"
#include "tests/testing.h"

namespace runtime {
namespace {

using namespace std::chrono_literals;
using base::Fd;
using testing_util::eventually;
using testing_util::schedulerState;
using testing_util::voluntarySwitches;

struct Pair {
  Fd near, far;  // near: the MessageStream's end
  Pair() {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    near.reset(fds[0]);
    far.reset(fds[1]);
  }
};

kj::Array<capnp::word> invocation(const std::string& requestId, size_t payloadBytes) {
  capnp::MallocMessageBuilder message;
  auto inv = message.initRoot<wire::Invocation>();
  inv.setRequestId(requestId);
  std::string payload(payloadBytes, 'p');
  inv.setPayload(kj::arrayPtr(reinterpret_cast<const kj::byte*>(payload.data()), payload.size()));
  return capnp::messageToFlatArray(message);
}

void writeAll(int fd, kj::ArrayPtr<const kj::byte> bytes) {
  while (bytes.size() > 0) {
    ssize_t n = write(fd, bytes.begin(), bytes.size());
    ASSERT_GT(n, 0) << strerror(errno);
    bytes = bytes.slice(n, bytes.size());
  }
}

TEST(MessageStream, ReadsMessagesThatArriveInPieces) {
  Pair pair;
  MessageStream stream(pair.near.get(), 1 << 20);
  auto first = invocation("one", 100);
  auto second = invocation("two", 200 << 10);  // larger than one read
  pid_t reader = gettid();
  std::thread writer([&] {
    auto bytes = first.asBytes();
    // The segment table alone, then the rest once the reader has taken it
    // and sleeps: read() must wait for the remainder rather than report a
    // short message.
    writeAll(pair.far.get(), bytes.slice(0, 4));
    EXPECT_TRUE(eventually([&] {
      return testing_util::unreadBytes(pair.far.get()) == 0 && schedulerState(reader) == 'S';
    }));
    writeAll(pair.far.get(), bytes.slice(4, bytes.size()));
    writeAll(pair.far.get(), second.asBytes());
    pair.far.reset();
  });
  auto one = stream.read();
  ASSERT_TRUE(one);
  EXPECT_EQ(one->getRoot<wire::Invocation>().getRequestId(), "one");
  EXPECT_EQ(one->getRoot<wire::Invocation>().getPayload().size(), 100u);
  auto two = stream.read();
  ASSERT_TRUE(two);
  EXPECT_EQ(two->getRoot<wire::Invocation>().getRequestId(), "two");
  EXPECT_EQ(two->getRoot<wire::Invocation>().getPayload().size(), 200u << 10);
  writer.join();
  EXPECT_EQ(stream.read(), nullptr) << "a clean end of stream after the last message";
}

TEST(MessageStream, ATruncatedMessageIsAFramingError) {
  Pair pair;
  MessageStream stream(pair.near.get(), 1 << 20);
  auto message = invocation("cut", 1000);
  auto bytes = message.asBytes();
  writeAll(pair.far.get(), bytes.slice(0, bytes.size() / 2));
  pair.far.reset();
  EXPECT_THROW(stream.read(), FramingError);
}

TEST(MessageStream, AMessageOverTheLimitIsAFramingError) {
  Pair pair;
  MessageStream stream(pair.near.get(), 4096);
  writeAll(pair.far.get(), invocation("big", 64 << 10).asBytes());
  EXPECT_THROW(stream.read(), FramingError) << "refused before it is read whole";
}

// A sandbox that has answered waits for its next request. The supervisor
// reading that answer must not wake it: a read(2) blocked on a unix stream
// socket is woken each time the peer consumes what this end wrote, which
// cost every warm invocation a context switch in and out of its sandbox.
TEST(MessageStream, WaitingForTheNextRequestSleepsThroughThePeerReadingTheAnswer) {
  Pair pair;
  std::promise<pid_t> waiterTid;
  std::promise<std::string> received;
  std::thread sandboxSide([&] {
    MessageStream stream(pair.near.get(), 1 << 20);
    capnp::MallocMessageBuilder answer;
    answer.initRoot<wire::Invocation>().setRequestId("answer");
    stream.write(answer);
    waiterTid.set_value(gettid());
    auto next = stream.read();
    received.set_value(next ? std::string(next->getRoot<wire::Invocation>().getRequestId()) : "");
  });
  pid_t tid = waiterTid.get_future().get();
  ASSERT_TRUE(eventually([&] { return schedulerState(tid) == 'S'; }))
      << "the waiting thread never went to sleep";
  long before = voluntarySwitches(tid);

  char answer[4096];
  ASSERT_GT(read(pair.far.get(), answer, sizeof answer), 0);  // consume the answer
  // A wake-up comes within that read(): a woken thread is runnable now, and
  // asleep again only after one more voluntary switch.
  ASSERT_TRUE(eventually([&] { return schedulerState(tid) == 'S'; }));
  EXPECT_EQ(voluntarySwitches(tid), before) << "the waiting thread was woken by the peer's read";

  writeAll(pair.far.get(), invocation("next", 10).asBytes());
  EXPECT_EQ(received.get_future().get(), "next");
  sandboxSide.join();
}

enum class Arrives {
  kAfter20ms,         // while a reader that polls still does, whatever the load
  kOnceReaderSleeps,  // (or after a minute, if it never does)
};

// Voluntary context switches (sleeps) of a thread that reads one message
// with `busyPollNs`, the message arriving as `arrives` says.
long sleepsWhileReading(uint64_t busyPollNs, Arrives arrives) {
  Pair pair;
  pid_t reader = gettid();
  std::atomic<long> readerSwitches{-1};  // when it began to read
  std::thread writer([&] {
    while (readerSwitches.load() < 0) std::this_thread::sleep_for(1ms);
    if (arrives == Arrives::kAfter20ms)
      std::this_thread::sleep_for(20ms);
    else
      eventually([&] { return voluntarySwitches(reader) > readerSwitches.load(); });
    writeAll(pair.far.get(), invocation("late", 10).asBytes());
  });
  MessageStream stream(pair.near.get(), 1 << 20);
  rusage before, after;
  getrusage(RUSAGE_THREAD, &before);
  readerSwitches.store(before.ru_nvcsw);
  auto message = stream.read(busyPollNs);
  getrusage(RUSAGE_THREAD, &after);
  writer.join();
  EXPECT_TRUE(message && message->getRoot<wire::Invocation>().getRequestId() == "late");
  return after.ru_nvcsw - before.ru_nvcsw;
}

// The window is a minute: long enough for the message to come within it.
TEST(MessageStream, BusyPollingWaitsWithoutSleeping) {
  EXPECT_EQ(sleepsWhileReading(/*busyPollNs=*/60'000'000'000, Arrives::kAfter20ms), 0);
}

TEST(MessageStream, BusyPollingSeesTheEndOfTheStream) {
  Pair pair;
  MessageStream stream(pair.near.get(), 1 << 20);
  std::thread closer([&] {
    std::this_thread::sleep_for(10ms);
    pair.far.reset();
  });
  EXPECT_EQ(stream.read(/*busyPollNs=*/60'000'000'000), nullptr);
  closer.join();
}

TEST(MessageStream, BusyPollingEndsWithItsWindow) {
  EXPECT_GE(sleepsWhileReading(/*busyPollNs=*/1'000'000, Arrives::kOnceReaderSleeps), 1);
  EXPECT_GE(sleepsWhileReading(/*busyPollNs=*/0, Arrives::kOnceReaderSleeps), 1);
}

}  // namespace
}  // namespace runtime

namespace runtime {
namespace {

// The control channel's send queue, on a SOCK_SEQPACKET pair whose far end
// reads only when the test says.
struct PacketPair {
  Fd near, far;
  PacketPair() {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds), 0);
    near.reset(fds[0]);
    far.reset(fds[1]);
  }
};

void pushKill(PacketQueue& queue, uint64_t id, bool urgent = false, std::vector<Fd> fds = {}) {
  capnp::MallocMessageBuilder message;
  message.initRoot<wire::ZygoteRequest>().setKill(id);
  queue.push(message, std::move(fds), id, urgent);
}

// What the far end has been sent, in order, until nothing is waiting.
std::vector<uint64_t> receiveAll(int socket, size_t* passedFds = nullptr) {
  std::vector<uint64_t> ids;
  Packet packet;
  while (receivePacketNow(socket, 1 << 20, &packet) == Received::kPacket) {
    ids.push_back(packet.reader->getRoot<wire::ZygoteRequest>().getKill());
    if (passedFds) *passedFds += packet.passedFds.size();
  }
  return ids;
}

// Reads and flushes in turns until the queue is empty and all is read.
std::vector<uint64_t> deliverAll(PacketQueue& queue, PacketPair& pair,
                                 size_t* passedFds = nullptr) {
  std::vector<uint64_t> received;
  bool sentAll;
  do {
    std::vector<uint64_t> more = receiveAll(pair.far.get(), passedFds);
    received.insert(received.end(), more.begin(), more.end());
    sentAll = queue.flush(pair.near.get());
  } while (!sentAll);
  std::vector<uint64_t> rest = receiveAll(pair.far.get(), passedFds);
  received.insert(received.end(), rest.begin(), rest.end());
  return received;
}

bool isOpen(int fd) {
  return fcntl(fd, F_GETFD) >= 0;
}

TEST(PacketQueue, AFullSocketLeavesPacketsQueuedInsteadOfBlocking) {
  PacketPair pair;
  PacketQueue queue;
  // Far more than the socket buffer holds unread (a few hundred small ones).
  constexpr uint64_t kPackets = 5000;
  for (uint64_t id = 1; id <= kPackets; ++id) pushKill(queue, id);
  EXPECT_FALSE(queue.flush(pair.near.get())) << "the socket took all; nobody read";
  size_t waiting = queue.size();
  EXPECT_GT(waiting, 0u);
  EXPECT_LT(waiting, kPackets) << "the socket took none";
  // Reading and flushing in turns delivers each once, in order.
  std::vector<uint64_t> received = deliverAll(queue, pair);
  ASSERT_EQ(received.size(), kPackets);
  for (uint64_t i = 0; i < kPackets; ++i) EXPECT_EQ(received[i], i + 1);
  EXPECT_TRUE(queue.empty());
}

TEST(PacketQueue, UrgentPacketsGoBeforeThoseStillWaitingAndOthersCanBeWithdrawn) {
  PacketPair pair;
  PacketQueue queue;
  // Fill the socket, so that what follows waits in the queue.
  uint64_t id = 1;
  do pushKill(queue, id++);
  while (queue.flush(pair.near.get()));
  uint64_t firstWaiting = id - 1;  // the one the socket refused
  pushKill(queue, 1000);
  pushKill(queue, 1001);
  pushKill(queue, 2000, /*urgent=*/true);
  EXPECT_TRUE(queue.withdraw(1000));
  EXPECT_FALSE(queue.withdraw(1000)) << "withdrawn twice";
  EXPECT_FALSE(queue.withdraw(1)) << "the first went long ago";
  std::vector<uint64_t> received = deliverAll(queue, pair);
  std::vector<uint64_t> expected;
  for (uint64_t i = 1; i < firstWaiting; ++i) expected.push_back(i);
  expected.insert(expected.end(), {2000, firstWaiting, 1001});
  EXPECT_EQ(received, expected);
}

TEST(PacketQueue, PassedFdsAreClosedHereOnceSentAndWhenWithdrawn) {
  PacketPair pair;
  PacketQueue queue;
  int sentFds[2];
  ASSERT_EQ(pipe2(sentFds, O_CLOEXEC), 0);
  int withdrawnFds[2];
  ASSERT_EQ(pipe2(withdrawnFds, O_CLOEXEC), 0);
  std::vector<Fd> sent;
  sent.emplace_back(sentFds[0]);
  sent.emplace_back(sentFds[1]);
  std::vector<Fd> withdrawn;
  withdrawn.emplace_back(withdrawnFds[0]);
  withdrawn.emplace_back(withdrawnFds[1]);
  // Filled first, so that both wait and one can be withdrawn.
  uint64_t id = 1;
  do pushKill(queue, id++);
  while (queue.flush(pair.near.get()));
  pushKill(queue, 500, false, std::move(sent));
  pushKill(queue, 501, false, std::move(withdrawn));
  EXPECT_TRUE(isOpen(sentFds[0]) && isOpen(withdrawnFds[0]));
  EXPECT_TRUE(queue.withdraw(501));
  EXPECT_FALSE(isOpen(withdrawnFds[0]) || isOpen(withdrawnFds[1]));
  size_t passed = 0;
  deliverAll(queue, pair, &passed);
  EXPECT_EQ(passed, 2u);
  EXPECT_FALSE(isOpen(sentFds[0]) || isOpen(sentFds[1]));
}

TEST(PacketQueue, AClosedPeerIsAnErrorNotABlock) {
  PacketPair pair;
  PacketQueue queue;
  pair.far.reset();
  pushKill(queue, 1);
  EXPECT_THROW(queue.flush(pair.near.get()), base::SysError);
}

TEST(ReceivePacketNow, SaysNothingYetThenThePacketThenClosed) {
  PacketPair pair;
  Packet packet;
  EXPECT_EQ(receivePacketNow(pair.far.get(), 1 << 20, &packet), Received::kNothingYet);
  PacketQueue queue;
  pushKill(queue, 7);
  ASSERT_TRUE(queue.flush(pair.near.get()));
  ASSERT_EQ(receivePacketNow(pair.far.get(), 1 << 20, &packet), Received::kPacket);
  EXPECT_EQ(packet.reader->getRoot<wire::ZygoteRequest>().getKill(), 7u);
  pair.near.reset();
  EXPECT_EQ(receivePacketNow(pair.far.get(), 1 << 20, &packet), Received::kClosed);
}

TEST(ReceivePacketNow, APacketOverTheLimitIsAFramingError) {
  PacketPair pair;
  PacketQueue queue;
  capnp::MallocMessageBuilder message;
  message.initRoot<wire::ZygoteRequest>().initSpawn().setHandler(std::string(4096, 'x'));
  queue.push(message);
  ASSERT_TRUE(queue.flush(pair.near.get()));
  Packet packet;
  EXPECT_THROW(receivePacketNow(pair.far.get(), 1024, &packet), FramingError);
}

}  // namespace
}  // namespace runtime
