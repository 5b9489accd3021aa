// base::SocketStream: reads ahead, and waits for room only while a write
// is blocked (the path big payloads take).
#include "base/socket_stream.h"

#include <gtest/gtest.h>
#include <kj/async-io.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "tests/testing.h"

namespace {

struct Pair {
  int ours = -1, theirs = -1;
  Pair() {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    ours = fds[0];
    theirs = fds[1];
  }
  ~Pair() {
    if (theirs >= 0) close(theirs);
  }
};

// Bytes that differ from their neighbours, so a lost or moved piece shows.
std::string patterned(size_t bytes) {
  std::string text(bytes, 0);
  for (size_t i = 0; i < bytes; ++i) text[i] = static_cast<char>(i * 131 + i / 7919);
  return text;
}

TEST(SocketStream, ReadsWhatArrivedInPiecesAndThenTheEnd) {
  auto io = kj::setupAsyncIo();
  Pair pair;
  base::SocketStream stream(io.unixEventPort, base::Fd(pair.ours));
  ASSERT_EQ(write(pair.theirs, "hello world", 11), 11);
  char buffer[16] = {};
  // Asks for 5: the rest stays buffered for the next read.
  EXPECT_EQ(stream.tryRead(buffer, 5, 5).wait(io.waitScope), 5u);
  EXPECT_EQ(std::string(buffer, 5), "hello");
  EXPECT_EQ(stream.tryRead(buffer, 1, sizeof buffer).wait(io.waitScope), 6u);
  EXPECT_EQ(std::string(buffer, 6), " world");
  // Nothing there yet: the read waits for the peer.
  auto pending = stream.tryRead(buffer, 3, sizeof buffer);
  EXPECT_FALSE(pending.poll(io.waitScope));
  ASSERT_EQ(write(pair.theirs, "abc", 3), 3);
  EXPECT_EQ(pending.wait(io.waitScope), 3u);
  close(pair.theirs);
  pair.theirs = -1;
  EXPECT_EQ(stream.tryRead(buffer, 1, sizeof buffer).wait(io.waitScope), 0u);
}

// After a read that empties the socket, the stream waits for the next edge
// instead of reading again: whatever the timing of what comes next (while
// the loop sleeps, runs other events, or before the next read is asked
// for), none of it may be missed.
TEST(SocketStream, DataAfterTheSocketWasEmptiedIsNeverMissed) {
  auto io = kj::setupAsyncIo();
  Pair pair;
  base::SocketStream stream(io.unixEventPort, base::Fd(pair.ours));
  constexpr int kMessages = 2000;
  std::thread writer([&] {
    for (int i = 0; i < kMessages; ++i) {
      char byte = static_cast<char>(i);
      ASSERT_EQ(write(pair.theirs, &byte, 1), 1);
      if (i % 3 == 0) usleep(i % 7 * 50);  // sometimes the reader has emptied it
    }
  });
  for (int i = 0; i < kMessages; ++i) {
    if (i % 5 == 0) io.provider->getTimer().afterDelay(100 * kj::MICROSECONDS).wait(io.waitScope);
    char byte = 0;
    ASSERT_EQ(stream.tryRead(&byte, 1, 1).wait(io.waitScope), 1u) << "message " << i;
    ASSERT_EQ(byte, static_cast<char>(i));
  }
  writer.join();
  close(pair.theirs);
  pair.theirs = -1;
  char byte;
  EXPECT_EQ(stream.tryRead(&byte, 1, 1).wait(io.waitScope), 0u) << "then the end";
}

// A read larger than the stream's buffer goes straight to its destination;
// when the first part empties the socket, the rest is waited for.
TEST(SocketStream, ALargeReadWaitsForEachPiece) {
  auto io = kj::setupAsyncIo();
  Pair pair;
  base::SocketStream stream(io.unixEventPort, base::Fd(pair.ours));
  std::string sent = patterned(200 << 10);
  pid_t reader = gettid();
  std::thread writer([&] {
    for (size_t at = 0; at < sent.size(); at += 50 << 10) {
      size_t n = std::min<size_t>(50 << 10, sent.size() - at);
      for (size_t done = 0; done < n;) {
        ssize_t w = write(pair.theirs, sent.data() + at + done, n - done);
        ASSERT_GT(w, 0);
        done += w;
      }
      // The next piece once the reader has taken this one and waits.
      EXPECT_TRUE(testing_util::eventually([&] {
        return testing_util::unreadBytes(pair.theirs) == 0 &&
               testing_util::schedulerState(reader) == 'S';
      }));
    }
  });
  std::string received(sent.size(), 0);
  EXPECT_EQ(stream.tryRead(received.data(), received.size(), received.size()).wait(io.waitScope),
            sent.size());
  writer.join();
  EXPECT_TRUE(received == sent);
}

TEST(SocketStream, AWriteLargerThanTheSocketWaitsForRoomAndArrivesWhole) {
  auto io = kj::setupAsyncIo();
  Pair pair;
  base::SocketStream stream(io.unixEventPort, base::Fd(pair.ours));
  std::string sent = patterned(8 << 20);
  std::string received;
  std::thread reader([&] {
    char chunk[1 << 16];
    for (ssize_t n; (n = read(pair.theirs, chunk, sizeof chunk)) > 0;) {
      received.append(chunk, n);
      if (received.size() % (1 << 20) < sizeof chunk) usleep(2000);  // a slow peer
    }
  });
  // Two pieces, as Cap'n Proto writes a segment table and its segments.
  kj::ArrayPtr<const kj::byte> pieces[] = {
      kj::arrayPtr(reinterpret_cast<const kj::byte*>(sent.data()), 100),
      kj::arrayPtr(reinterpret_cast<const kj::byte*>(sent.data()) + 100, sent.size() - 100)};
  stream.write(kj::arrayPtr(pieces, 2)).wait(io.waitScope);
  stream.write("end", 3).wait(io.waitScope);
  stream.shutdownWrite();
  reader.join();
  EXPECT_EQ(received.size(), sent.size() + 3);
  EXPECT_TRUE(received.compare(0, sent.size(), sent) == 0) << "bytes out of order or lost";
  EXPECT_EQ(received.substr(sent.size()), "end");
}

TEST(SocketStream, WritingToAClosedPeerIsADisconnect) {
  auto io = kj::setupAsyncIo();
  Pair pair;
  base::SocketStream stream(io.unixEventPort, base::Fd(pair.ours));
  close(pair.theirs);
  pair.theirs = -1;
  try {
    stream.write("x", 1).wait(io.waitScope);
    ADD_FAILURE() << "the write succeeded";
  } catch (const kj::Exception& e) {
    EXPECT_EQ(e.getType(), kj::Exception::Type::DISCONNECTED) << e.getDescription().cStr();
  }
}

// While the hold says so, a read waits even with data there; it goes on
// only when a write completes with the hold lifted (the writes are what
// empty the queue that the hold looks at).
TEST(SocketStream, ReadsWaitWhileHeldUntilAWriteFindsTheHoldLifted) {
  auto io = kj::setupAsyncIo();
  Pair pair;
  base::SocketStream stream(io.unixEventPort, base::Fd(pair.ours));
  bool held = true;
  std::vector<bool> changes;
  stream.holdReadsWhile([&] { return held; }, [&](bool now) { changes.push_back(now); });
  ASSERT_EQ(write(pair.theirs, "abc", 3), 3);
  char buffer[8] = {};
  auto pending = stream.tryRead(buffer, 1, sizeof buffer);
  EXPECT_FALSE(pending.poll(io.waitScope)) << "read while held";
  EXPECT_EQ(changes, std::vector<bool>{true});
  // A write completes, but the hold still says so.
  stream.write("x", 1).wait(io.waitScope);
  EXPECT_FALSE(pending.poll(io.waitScope)) << "read while held";
  // Lifted: nothing looks until the next write completes.
  held = false;
  EXPECT_FALSE(pending.poll(io.waitScope));
  stream.write("y", 1).wait(io.waitScope);
  EXPECT_EQ(pending.wait(io.waitScope), 3u);
  EXPECT_EQ(std::string(buffer, 3), "abc");
  EXPECT_EQ(changes, (std::vector<bool>{true, false}));
  char echoed[2];
  EXPECT_EQ(read(pair.theirs, echoed, 2), 2);
}

}  // namespace
