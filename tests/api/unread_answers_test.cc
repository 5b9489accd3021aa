// A client that sends calls but does not read its answers: thatchd's queue
// of answers for it stays bounded, because past the largest answer nothing
// more is read from that client until it reads (docs/api.md, "A client
// that does not read"); then every call gets its own answer.

#include <capnp/rpc-twoparty.h>
#include <gtest/gtest.h>
#include <kj/async-io.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "api/thatch.capnp.h"
#include "tests/daemon.h"
#include "tests/testing.h"
#include "thatch/thatch.h"

namespace {

using namespace std::chrono_literals;
using testing_util::eventually;

// A client's stream whose reads wait until release(), and which counts
// what it has written.
class HeldReads final : public kj::AsyncIoStream {
 public:
  explicit HeldReads(kj::Own<kj::AsyncIoStream> inner) : inner_(kj::mv(inner)) {
    auto paf = kj::newPromiseAndFulfiller<void>();
    released_ = paf.promise.fork();
    release_ = kj::mv(paf.fulfiller);
  }
  void release() { release_->fulfill(); }
  uint64_t written() const { return written_; }

  kj::Promise<size_t> tryRead(void* buffer, size_t minBytes, size_t maxBytes) override {
    return released_.addBranch().then([this, buffer, minBytes, maxBytes]() {
      return inner_->tryRead(buffer, minBytes, maxBytes);
    });
  }
  kj::Promise<void> write(const void* buffer, size_t size) override {
    return inner_->write(buffer, size).then([this, size]() { written_ += size; });
  }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    size_t size = 0;
    for (auto piece : pieces) size += piece.size();
    return inner_->write(pieces).then([this, size]() { written_ += size; });
  }
  kj::Promise<void> whenWriteDisconnected() override { return inner_->whenWriteDisconnected(); }
  void shutdownWrite() override { inner_->shutdownWrite(); }

 private:
  kj::Own<kj::AsyncIoStream> inner_;
  kj::ForkedPromise<void> released_ = nullptr;
  kj::Own<kj::PromiseFulfiller<void>> release_;
  std::atomic<uint64_t> written_{0};
};

// Each answer ~400 KB: a few of them are more than the largest answer
// (1 MiB of result here, with the logs' 64 KiB and some room).
constexpr char kBigAnswers[] =
    "def handler(event, context):\n"
    "    return {'i': event['i'], 'pad': 'x' * 400000}\n";

uint64_t starts(thatch::Thatch& client) {
  thatch::Stats stats = client.stats();
  return stats.coldStarts + stats.warmStarts;
}

uint64_t answered(thatch::Thatch& client) {
  return client.stats().invocationsByStatus["ok"];
}

TEST(UnreadAnswers, AClientThatDoesNotReadIsReadNoFurtherUntilItDoes) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  testing_util::TestDaemon daemon("[limits]\nresult = \"1MiB\"\n");
  auto admin = thatch::Thatch::connect(daemon.socketPath());
  testing_util::deploySource(*admin, "big-answers", kBigAnswers);
  uint64_t startedBefore = starts(*admin), answeredBefore = answered(*admin);

  constexpr int kFirst = 6, kLater = 4;
  const kj::Executor* executor = nullptr;
  HeldReads* held = nullptr;
  std::atomic<bool> ready{false};
  kj::Own<kj::PromiseFulfiller<void>> sendLater;
  std::string failure;
  int received = 0;
  // The client: its own thread and event loop; the test steps it through
  // its executor.
  std::thread client([&] {
    try {
      auto io = kj::setupAsyncIo();
      auto connection = io.provider->getNetwork()
                            .parseAddress(kj::str("unix:", daemon.socketPath().c_str()))
                            .wait(io.waitScope)
                            ->connect()
                            .wait(io.waitScope);
      HeldReads stream(kj::mv(connection));
      capnp::TwoPartyClient rpc(stream);
      auto thatch = rpc.bootstrap().castAs<thatch::api::Thatch>();
      auto get = thatch.getRequest();
      get.setName("big-answers");
      auto function = get.send().getFunction();  // pipelined: nothing is read
      kj::Vector<kj::Promise<void>> calls;
      auto call = [&](int i) {
        auto request = function.invokeRequest();
        std::string event = "{\"i\": " + std::to_string(i) + "}";
        request.setPayload(kj::StringPtr(event.c_str()).asBytes());
        calls.add(request.send().then([i, &received, &failure](auto result) {
          std::string payload(result.getPayload().asChars().begin(), result.getPayload().size());
          if (result.getStatus() != thatch::api::Status::OK ||
              payload.find("{\"i\":" + std::to_string(i) + ",") == std::string::npos ||
              payload.size() < 400000)
            failure += "call " + std::to_string(i) + " got " + payload.substr(0, 80) + "\n";
          ++received;
        }));
      };
      for (int i = 0; i < kFirst; ++i) call(i);
      auto paf = kj::newPromiseAndFulfiller<void>();
      sendLater = kj::mv(paf.fulfiller);
      auto later = paf.promise.then([&]() {
        for (int i = kFirst; i < kFirst + kLater; ++i) call(i);
      });
      executor = &kj::getCurrentThreadExecutor();
      held = &stream;
      ready = true;
      later.wait(io.waitScope);
      kj::joinPromises(calls.releaseAsArray()).wait(io.waitScope);
    } catch (const kj::Exception& e) {
      failure += e.getDescription().cStr();
      ready = true;
    }
  });
  ASSERT_TRUE(eventually([&] { return ready.load(); }));

  // The first calls ran; their answers, unread, pass the mark. The later
  // calls reach thatchd's socket, and thatchd holds them unread.
  EXPECT_TRUE(eventually([&] { return answered(*admin) == answeredBefore + kFirst; }));
  uint64_t writtenBefore = executor ? held->written() : 0;
  if (executor) executor->executeSync([&] { sendLater->fulfill(); });
  EXPECT_TRUE(eventually([&] { return executor && held->written() > writtenBefore; }));
  EXPECT_TRUE(eventually([&] {
    return daemon.log().find("client_reads_held") != std::string::npos;
  })) << daemon.log();
  // (This cannot fail on a slow machine, only pass there without proof.)
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(starts(*admin), startedBefore + kFirst) << "calls sent after the hold were run";

  // The client reads: the rest are read and run, every call gets its own answer.
  if (executor) executor->executeSync([&] { held->release(); });
  client.join();
  EXPECT_EQ(failure, "");
  EXPECT_EQ(received, kFirst + kLater);
  EXPECT_EQ(starts(*admin), startedBefore + kFirst + kLater);
  EXPECT_NE(daemon.log().find("client_reads_resumed"), std::string::npos) << daemon.log();
  admin.reset();
  EXPECT_EQ(daemon.stop(), 0) << daemon.log();
}

}  // namespace
