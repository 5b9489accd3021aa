// The shared answer page's handshake, with two mappings of one page standing
// for thatchd's and the sandbox's (ZygoteTest and StemCellTest run it across
// processes, with a real sandbox on the other side).
#include "runtime/shared_answer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "runtime/framing.h"
#include "runtime/runtime.capnp.h"

namespace runtime {
namespace {

class SharedAnswerTest : public ::testing::Test {
 protected:
  static void buildAnswer(capnp::MallocMessageBuilder& message, const std::string& payload) {
    auto result = message.initRoot<wire::SandboxMessage>().initResult();
    result.setPayload(
        kj::arrayPtr(reinterpret_cast<const kj::byte*>(payload.data()), payload.size()));
  }
  static std::string payloadOf(capnp::MessageReader& reader) {
    auto bytes = reader.getRoot<wire::SandboxMessage>().getResult().getPayload();
    return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
  }
  bool answer(const std::string& payload) {
    capnp::MallocMessageBuilder message;
    buildAnswer(message, payload);
    return sandboxSide.tryAnswer(message);
  }
  // The page's raw bytes, as a sandbox that ignores the protocol sees them.
  uint32_t* rawWords() {
    raw_ = mmap(nullptr, SharedAnswer::kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    EXPECT_NE(raw_, MAP_FAILED);
    return static_cast<uint32_t*>(raw_);
  }
  void TearDown() override {
    if (raw_) munmap(raw_, SharedAnswer::kBytes);
  }

  base::Fd fd = SharedAnswer::create();
  SharedAnswer thatchdSide{fd.get()};
  SharedAnswer sandboxSide{fd.get()};
  capnp::ReaderOptions limits = channelLimits(1 << 20);
  void* raw_ = nullptr;
};

TEST_F(SharedAnswerTest, AnAnswerWrittenWhileWatchedIsTakenFromThePage) {
  thatchdSide.watch();
  EXPECT_FALSE(thatchdSide.ready());
  ASSERT_TRUE(answer(R"({"ok":1})"));
  ASSERT_TRUE(thatchdSide.ready());
  auto reader = thatchdSide.take(limits);
  EXPECT_EQ(payloadOf(*reader), R"({"ok":1})");
  // Taken once: the page is idle until the next watch.
  EXPECT_FALSE(thatchdSide.ready());
  EXPECT_FALSE(answer("late"));
}

TEST_F(SharedAnswerTest, UnwatchedTheAnswerGoesToTheChannel) {
  EXPECT_FALSE(answer("never watched"));
  thatchdSide.watch();
  EXPECT_TRUE(thatchdSide.abandon());
  EXPECT_FALSE(answer("after the loop stopped watching"));
  EXPECT_FALSE(thatchdSide.ready());
}

TEST_F(SharedAnswerTest, AnAnswerThatCameBeforeTheAbandonIsTakenAllTheSame) {
  thatchdSide.watch();
  ASSERT_TRUE(answer("just in time"));
  EXPECT_FALSE(thatchdSide.abandon());
  EXPECT_EQ(payloadOf(*thatchdSide.take(limits)), "just in time");
}

TEST_F(SharedAnswerTest, AnAnswerLargerThanThePageGoesToTheChannel) {
  thatchdSide.watch();
  EXPECT_FALSE(answer(std::string(SharedAnswer::kBytes, 'x')));
  EXPECT_FALSE(thatchdSide.ready());
  // The largest that fits still does.
  EXPECT_TRUE(answer(std::string(SharedAnswer::kBytes - 1024, 'y')));
  EXPECT_EQ(payloadOf(*thatchdSide.take(limits)).size(), SharedAnswer::kBytes - 1024);
}

TEST_F(SharedAnswerTest, AScribbledPageIsAnErrorNotACrash) {
  uint32_t* words = rawWords();
  thatchdSide.watch();
  // A length past the page.
  words[1] = 1u << 30;
  words[0] = 2;  // ready
  ASSERT_TRUE(thatchdSide.ready());
  EXPECT_THROW(thatchdSide.take(limits), kj::Exception);
  // A length within the page, over a segment table that claims more.
  thatchdSide.watch();
  words[1] = 4;
  words[16] = 0;         // one segment...
  words[17] = 1u << 20;  // ...of a million words
  words[0] = 2;
  EXPECT_THROW(thatchdSide.take(limits), kj::Exception);
  // A state it does not know: thatchd stops watching and waits for the
  // channel, which is where such a sandbox's answer has to come.
  thatchdSide.watch();
  words[0] = 77;
  EXPECT_FALSE(thatchdSide.ready());
  EXPECT_TRUE(thatchdSide.abandon());
}

TEST_F(SharedAnswerTest, ThePageCanNeitherShrinkNorGrow) {
  // A shrunk page would fault thatchd's reads (SIGBUS).
  EXPECT_EQ(ftruncate(fd.get(), 0), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(ftruncate(fd.get(), SharedAnswer::kBytes * 2), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(fcntl(fd.get(), F_ADD_SEALS, 0), -1) << "the seals themselves are sealed";
}

}  // namespace
}  // namespace runtime
