// Cap'n Proto messages over the zygote's two channels.
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/io.h>

#include <deque>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include "base/fd.h"

namespace runtime {

// A peer sent something that is not a valid message (or one over the size
// limit). The receiver reports it and closes the channel.
class FramingError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Limits for everything read from a channel: a message over them is a
// FramingError, never an allocation of the size the peer claims.
capnp::ReaderOptions channelLimits(uint64_t maxBytes);

// The invocation channel: standard stream framing over a SOCK_STREAM fd
// (borrowed, not owned).
// The longest busy poll between two requests: what the configuration allows
// ([host] busy_poll_us) and the most a sandbox does.
constexpr uint64_t kMaxBusyPollNs = 1'000'000;

class MessageStream {
 public:
  MessageStream(int fd, uint64_t maxMessageBytes);
  // Writes one message (writev of its segments: payloads are not copied again).
  void write(capnp::MessageBuilder& message);
  // The next message, or null at a clean end of stream. Throws FramingError.
  // With `busyPollNs`, polls for that long before sleeping until it comes
  // (a sandbox polls for at most kMaxBusyPollNs, whatever it is asked).
  std::unique_ptr<capnp::MessageReader> read(uint64_t busyPollNs = 0);
  int fd() const { return fd_; }

 private:
  int fd_;
  capnp::ReaderOptions options_;
  // Waits in poll(POLLIN), never in read(): see framing.cc.
  class Input final : public kj::InputStream {
   public:
    explicit Input(int fd) : fd_(fd) {}
    size_t tryRead(void* buffer, size_t minBytes, size_t maxBytes) override;
    uint64_t busyPollNs = 0;  // for the next wait only

   private:
    int fd_;
  };
  Input input_;
  kj::BufferedInputStreamWrapper buffered_;
};

// The control channel: one message per SOCK_SEQPACKET packet, optionally
// with up to kMaxPassedFds fds passed alongside (SCM_RIGHTS); a negative fd
// in `passFds` stands for none and is left out.
constexpr size_t kMaxPassedFds = 2;
void sendPacket(int socket, capnp::MessageBuilder& message,
                std::initializer_list<int> passFds = {});

struct Packet {
  kj::Array<capnp::word> words;
  std::vector<base::Fd> passedFds;
  std::unique_ptr<capnp::FlatArrayMessageReader> reader;
};
// The next packet, or nullopt when the peer closed. Throws FramingError.
std::optional<Packet> receivePacket(int socket, uint64_t maxBytes);

enum class Received { kPacket, kNothingYet, kClosed };
// Without waiting: kPacket (into *packet), kNothingYet when no packet is
// there, kClosed when the peer closed. Throws FramingError.
Received receivePacketNow(int socket, uint64_t maxBytes, Packet* packet);

// What one end of a non-blocking SOCK_SEQPACKET channel has to say and the
// socket has not taken yet. Neither end ever waits in sendmsg(): a unix
// datagram socket holds only net.unix.max_dgram_qlen unread packets, and two
// ends each blocked writing to the other never read again. Packets go whole
// and in order, except that urgent ones go before the others still waiting.
// The queue itself is bounded by whoever fills it (see its users).
class PacketQueue {
 public:
  // `tag` names the packet for withdraw(); the fds are passed with it
  // (SCM_RIGHTS) and closed here once it is sent.
  void push(capnp::MessageBuilder& message, std::vector<base::Fd> fds = {}, uint64_t tag = 0,
            bool urgent = false);
  // Sends what the socket takes now. True when nothing is left. Throws
  // base::SysError when the socket is broken (the peer is gone).
  bool flush(int socket);
  // Takes back a packet not sent yet; false if there is none with `tag`.
  bool withdraw(uint64_t tag);
  bool empty() const { return urgent_.empty() && normal_.empty(); }
  size_t size() const { return urgent_.size() + normal_.size(); }

 private:
  struct Outgoing {
    kj::Array<capnp::word> words;
    std::vector<base::Fd> fds;
    uint64_t tag = 0;
  };
  static bool trySend(int socket, const Outgoing& packet);
  std::deque<Outgoing> urgent_;
  std::deque<Outgoing> normal_;
};

}  // namespace runtime
