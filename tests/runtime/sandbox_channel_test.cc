// SandboxChannel, the supervisor's end of a sandbox's channel, against a
// scripted peer on the other end of its socket pair: what it makes of every
// kind of answer, well-formed or not, and when it lets more be written.
// (ZygoteTest and the supervisor's tests run it against real sandboxes.)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // kj's ExceptionOr, as in the channel

#include "runtime/sandbox_channel.h"

#include <capnp/serialize.h>
#include <gtest/gtest.h>
#include <kj/async-io.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <variant>
#include <vector>

#include "runtime/framing.h"
#include "runtime/runtime.capnp.h"

namespace runtime {
namespace {

using Ending = Answer::Ending;

class SandboxChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    channel_ =
        SandboxChannel::open(io_.unixEventPort, kMaxAnswer, /*withPage=*/true, ends_, pageError_);
    ASSERT_EQ(pageError_, "");
    ASSERT_TRUE(ends_.channel);
    ASSERT_TRUE(ends_.page);
    sandboxPage_ = std::make_unique<SharedAnswer>(ends_.page.get());
  }

  // The sandbox's side: one message written whole to its end.
  void sandboxWrites(capnp::MessageBuilder& message) {
    capnp::writeMessageToFd(ends_.channel.get(), message);
  }
  void sandboxAnswers(const std::string& payload) {
    capnp::MallocMessageBuilder message;
    auto result = message.initRoot<wire::SandboxMessage>().initResult();
    result.setPayload(
        kj::arrayPtr(reinterpret_cast<const kj::byte*>(payload.data()), payload.size()));
    result.setRunNs(1234);
    result.setCpu(1);
    sandboxWrites(message);
  }
  // What the sandbox read: the next request on its end.
  std::string requestIdRead() {
    MessageStream stream(ends_.channel.get(), 1 << 20);
    auto message = stream.read();
    if (!message) return "<end>";
    return message->getRoot<wire::Invocation>().getRequestId();
  }

  // Larger than the socket's buffer: the write waits for the sandbox to read.
  kj::Promise<void> sendLargerThanTheSocket() {
    InvocationRequest request;
    request.requestId = "inv-big";
    request.payload = big_;
    return channel_->send(request);
  }

  static constexpr uint64_t kMaxAnswer = 16 << 10;
  const std::string big_ = std::string(4 << 20, 'x');
  // Held by pointer: kj's destructors may throw, a test fixture's may not.
  std::unique_ptr<kj::AsyncIoContext> ioContext_ =
      std::make_unique<kj::AsyncIoContext>(kj::setupAsyncIo());
  kj::AsyncIoContext& io_ = *ioContext_;
  SandboxChannel::SandboxEnds ends_;
  std::string pageError_;
  std::unique_ptr<kj::Own<SandboxChannel>> ownChannel_ =
      std::make_unique<kj::Own<SandboxChannel>>();
  kj::Own<SandboxChannel>& channel_ = *ownChannel_;
  std::unique_ptr<SharedAnswer> sandboxPage_;
};

TEST_F(SandboxChannelTest, ReadyIsParsed) {
  capnp::MallocMessageBuilder message;
  auto ready = message.initRoot<wire::SandboxMessage>().initReady();
  ready.setStartNs(42);
  ready.initTimings(1)[0].setStep("import");
  sandboxWrites(message);
  SandboxChannel::Readiness readiness = channel_->ready().wait(io_.waitScope);
  ASSERT_TRUE(std::holds_alternative<ReadyInfo>(readiness));
  const ReadyInfo& info = std::get<ReadyInfo>(readiness);
  EXPECT_EQ(info.startNs, 42u);
  ASSERT_EQ(info.timings.size(), 1u);
  EXPECT_EQ(info.timings[0].step, "import");
}

TEST_F(SandboxChannelTest, ALoadFailureIsTheHandlersErrorNotAnException) {
  capnp::MallocMessageBuilder message;
  auto failed = message.initRoot<wire::SandboxMessage>().initLoadFailed();
  failed.setType("ModuleNotFoundError");
  failed.setMessage("No module named 'handler'");
  failed.setTraceback("Traceback ...");
  sandboxWrites(message);
  SandboxChannel::Readiness readiness = channel_->ready().wait(io_.waitScope);
  ASSERT_TRUE(std::holds_alternative<LoadError>(readiness));
  EXPECT_EQ(describe(std::get<LoadError>(readiness)),
            "ModuleNotFoundError: No module named 'handler'\nTraceback ...");
}

TEST_F(SandboxChannelTest, AnEndBeforeReadyRejects) {
  ends_.channel.reset();
  try {
    channel_->ready().wait(io_.waitScope);
    ADD_FAILURE() << "no rejection";
  } catch (const kj::Exception& e) {
    EXPECT_EQ(std::string(e.getDescription().cStr()),
              "the sandbox closed its channel before it was ready");
  }
}

TEST_F(SandboxChannelTest, ARequestGoesOutAndItsAnswerComesBack) {
  InvocationRequest request;
  request.requestId = "inv-7";
  std::string payload = R"({"x":1})";
  request.payload = payload;
  channel_->send(request).wait(io_.waitScope);
  EXPECT_FALSE(channel_->writing());
  EXPECT_EQ(requestIdRead(), "inv-7");
  EXPECT_FALSE(channel_->answerWaiting());
  uint64_t before = channel_->bytesRead();
  sandboxAnswers(R"({"y":2})");
  Answer answer = channel_->nextAnswer().wait(io_.waitScope);
  ASSERT_EQ(answer.ending, Ending::kAnswered) << answer.error;
  EXPECT_EQ(answer.outcome.payload, R"({"y":2})");
  EXPECT_EQ(answer.outcome.runNs, 1234u);
  EXPECT_EQ(answer.outcome.cpu, 1);
  EXPECT_FALSE(answer.fromPage);
  EXPECT_GT(channel_->bytesRead(), before);
}

TEST_F(SandboxChannelTest, SeveralRequestsGoInOneWriteWithCopiesOfTheirPayloads) {
  kj::Promise<void> written = nullptr;
  {
    std::vector<std::string> payloads = {"{\"n\":0}", "{\"n\":1}", "{\"n\":2}"};
    std::vector<InvocationRequest> requests(3);
    for (int i = 0; i < 3; ++i) {
      requests[i].requestId = "inv-" + std::to_string(i);
      requests[i].payload = payloads[i];
    }
    written = channel_->sendAll(requests);
    for (std::string& payload : payloads) payload.assign(payload.size(), '?');
  }  // the invocations' payloads are gone; the write has its own
  written.wait(io_.waitScope);
  MessageStream stream(ends_.channel.get(), 1 << 20);
  for (int i = 0; i < 3; ++i) {
    auto message = stream.read();
    ASSERT_TRUE(message);
    auto request = message->getRoot<wire::Invocation>();
    EXPECT_EQ(std::string(request.getRequestId()), "inv-" + std::to_string(i));
    auto bytes = request.getPayload();
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size()),
              "{\"n\":" + std::to_string(i) + "}");
  }
}

TEST_F(SandboxChannelTest, NothingMoreGoesInWhileAWriteIsUnderWayOrAfterOneFailed) {
  kj::Promise<void> written = sendLargerThanTheSocket();
  EXPECT_TRUE(channel_->writing());
  ends_.channel.reset();  // the sandbox is gone
  EXPECT_THROW(written.wait(io_.waitScope), kj::Exception);
  EXPECT_TRUE(channel_->writing()) << "a failed write leaves part of a message behind";
}

TEST_F(SandboxChannelTest, ACancelledWriteNoLongerCounts) {
  {
    kj::Promise<void> written = sendLargerThanTheSocket();
    EXPECT_TRUE(channel_->writing());
  }
  EXPECT_FALSE(channel_->writing());
}

TEST_F(SandboxChannelTest, GarbageIsGarbled) {
  capnp::MallocMessageBuilder message;
  message.initRoot<wire::SandboxMessage>().initReady();  // out of turn
  sandboxWrites(message);
  Answer answer = channel_->nextAnswer().wait(io_.waitScope);
  EXPECT_EQ(answer.ending, Ending::kGarbled);
  EXPECT_EQ(answer.error, "the sandbox answered out of turn");
}

TEST_F(SandboxChannelTest, AnAnswerOverTheLimitIsTooLarge) {
  // Its segment table alone: one segment of 2^20 words (8 MiB), over the
  // limit; the channel refuses it there, before reading the rest.
  uint32_t table[2] = {0, 1u << 20};
  ASSERT_EQ(write(ends_.channel.get(), table, sizeof table), ssize_t(sizeof table));
  Answer answer = channel_->nextAnswer().wait(io_.waitScope);
  EXPECT_EQ(answer.ending, Ending::kTooLarge) << answer.error;
}

TEST_F(SandboxChannelTest, TheEndOfTheStreamIsClosed) {
  ends_.channel.reset();
  EXPECT_TRUE(channel_->answerWaiting()) << "the end of stream is there to read";
  Answer answer = channel_->nextAnswer().wait(io_.waitScope);
  EXPECT_EQ(answer.ending, Ending::kClosed);
  EXPECT_EQ(answer.error, "the sandbox closed its channel");
}

TEST_F(SandboxChannelTest, AnAnswerInThePageWinsWhenThePageSaysSo) {
  SharedAnswer& page = *channel_->page();
  page.watch();
  capnp::MallocMessageBuilder message;
  auto result = message.initRoot<wire::SandboxMessage>().initResult();
  result.setPayload(kj::StringPtr("paged").asBytes());
  ASSERT_TRUE(sandboxPage_->tryAnswer(message));
  EXPECT_TRUE(channel_->answerWaiting());
  Answer answer = channel_->nextAnswer(kj::Promise<bool>(true)).wait(io_.waitScope);
  ASSERT_EQ(answer.ending, Ending::kAnswered) << answer.error;
  EXPECT_TRUE(answer.fromPage);
  EXPECT_EQ(answer.outcome.payload, "paged");
}

TEST_F(SandboxChannelTest, APageLeftUnwatchedLeavesTheAnswerToTheChannel) {
  sandboxAnswers("channel");
  Answer answer = channel_->nextAnswer(kj::Promise<bool>(false)).wait(io_.waitScope);
  ASSERT_EQ(answer.ending, Ending::kAnswered) << answer.error;
  EXPECT_FALSE(answer.fromPage);
  EXPECT_EQ(answer.outcome.payload, "channel");
}

// What a hostile sandbox can do: claim an answer longer than the page.
void scribbleOn(int pageFd) {
  uint32_t header[2] = {2, 1u << 30};
  void* raw = mmap(nullptr, SharedAnswer::kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, pageFd, 0);
  ASSERT_NE(raw, MAP_FAILED);
  memcpy(raw, header, sizeof header);
  munmap(raw, SharedAnswer::kBytes);
}

void expectGarbledPage(const Answer& answer) {
  EXPECT_EQ(answer.ending, Ending::kGarbled);
  EXPECT_TRUE(answer.fromPage);
  EXPECT_NE(answer.error.find("the sandbox's answer in its shared page is not valid"),
            std::string::npos)
      << answer.error;
}

TEST_F(SandboxChannelTest, AScribbledPageIsGarbledNotACrashOfThatchd) {
  channel_->page()->watch();
  scribbleOn(ends_.page.get());
  expectGarbledPage(channel_->nextAnswer(kj::Promise<bool>(true)).wait(io_.waitScope));
}

// The sandbox scribbles on its page, and its runtime, finding the page
// taken, answers in the channel: however the two arrive (here the page is
// never seen by polling), the page's says what the call was.
TEST_F(SandboxChannelTest, AnAnswerInTheChannelWhileThePageSaysReadyIsThePages) {
  channel_->page()->watch();
  scribbleOn(ends_.page.get());
  sandboxAnswers("channel");
  expectGarbledPage(channel_->nextAnswer(kj::Promise<bool>(kj::NEVER_DONE)).wait(io_.waitScope));
}

}  // namespace
}  // namespace runtime
