#include "runtime/framing.h"

#include <kj/exception.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "base/sys_error.h"
#include "sandbox/confine.h"

namespace runtime {

using base::Fd;
using base::throwSysError;

capnp::ReaderOptions channelLimits(uint64_t maxBytes) {
  capnp::ReaderOptions options;
  options.traversalLimitInWords = maxBytes / sizeof(capnp::word) + 1;
  options.nestingLimit = 32;
  return options;
}

MessageStream::MessageStream(int fd, uint64_t maxMessageBytes)
    : fd_(fd), options_(channelLimits(maxMessageBytes)), input_(fd), buffered_(input_) {}

// A reader blocked in read(2) on a unix stream socket sleeps on the same wait
// queue as a writer waiting for room, and the kernel wakes that queue each
// time the peer consumes what this end wrote: a sandbox asleep waiting for
// its next request was woken, for nothing, every time the supervisor read its
// answer (a context switch in and out per invocation, the costliest thing a
// warm invocation did). poll(POLLIN) waits for input only.
//
// Busy polling: a hot function's next request often comes within tens of
// microseconds, less than the two context switches that sleeping and being
// woken cost on a virtualised host. The supervisor asks for it only while the
// host has idle cores.
size_t MessageStream::Input::tryRead(void* buffer, size_t minBytes, size_t maxBytes) {
  auto* out = static_cast<kj::byte*>(buffer);
  size_t got = 0;
  if (busyPollNs > 0) {
    // recv(MSG_DONTWAIT) both polls and reads: one system call per try.
    uint64_t until = sandbox::monotonicNs() + busyPollNs;
    busyPollNs = 0;
    for (;;) {
      ssize_t n = recv(fd_, out, maxBytes, MSG_DONTWAIT);
      if (n == 0) return 0;  // end of stream
      if (n > 0) {
        got = n;
        break;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        throw FramingError(std::string("recv: ") + std::strerror(errno));
      if (sandbox::monotonicNs() >= until) break;
    }
  }
  while (got < minBytes) {
    pollfd ready{fd_, POLLIN, 0};
    if (poll(&ready, 1, -1) < 0) {
      if (errno == EINTR) continue;
      throw FramingError(std::string("poll: ") + std::strerror(errno));
    }
    ssize_t n = ::read(fd_, out + got, maxBytes - got);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) throw FramingError(std::string("read: ") + std::strerror(errno));
    if (n == 0) break;  // end of stream
    got += n;
  }
  return got;
}

namespace {

// write(2) on a socket whose peer is gone raises SIGPIPE; a supervisor must
// never die of a sandbox's death, so every write is a send(MSG_NOSIGNAL).
class SocketOutputStream final : public kj::OutputStream {
 public:
  explicit SocketOutputStream(int fd) : fd_(fd) {}
  void write(const void* buffer, size_t size) override {
    kj::ArrayPtr<const kj::byte> piece(static_cast<const kj::byte*>(buffer), size);
    write(kj::arrayPtr(&piece, 1));
  }
  void write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    std::vector<iovec> iov;
    for (auto piece : pieces)
      if (piece.size()) iov.push_back({const_cast<kj::byte*>(piece.begin()), piece.size()});
    size_t next = 0;
    while (next < iov.size()) {
      msghdr msg{};
      msg.msg_iov = iov.data() + next;
      msg.msg_iovlen = std::min<size_t>(iov.size() - next, IOV_MAX);
      ssize_t n = sendmsg(fd_, &msg, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw FramingError(std::string("send: ") + std::strerror(errno));
      // Skip what was sent, possibly part of one piece.
      while (n > 0 && next < iov.size()) {
        size_t take = std::min<size_t>(n, iov[next].iov_len);
        iov[next].iov_base = static_cast<char*>(iov[next].iov_base) + take;
        iov[next].iov_len -= take;
        n -= take;
        if (iov[next].iov_len == 0) ++next;
      }
    }
  }

 private:
  int fd_;
};

}  // namespace

void MessageStream::write(capnp::MessageBuilder& message) {
  SocketOutputStream output(fd_);
  try {
    capnp::writeMessage(output, message);
  } catch (const kj::Exception& e) {
    throw FramingError(std::string("write message: ") + e.getDescription().cStr());
  }
}

std::unique_ptr<capnp::MessageReader> MessageStream::read(uint64_t busyPollNs) {
  input_.busyPollNs = busyPollNs;
  try {
    if (buffered_.tryGetReadBuffer().size() == 0) return nullptr;
    auto reader = std::make_unique<capnp::InputStreamMessageReader>(buffered_, options_);
    return reader;
  } catch (const kj::Exception& e) {
    throw FramingError(std::string("malformed message: ") + e.getDescription().cStr());
  }
}

namespace {

// One sendmsg of a whole packet; false if the socket would block.
bool sendWords(int socket, kj::ArrayPtr<const capnp::word> words, const int* fds, size_t count,
               int flags) {
  auto bytes = words.asBytes();
  iovec iov{const_cast<kj::byte*>(bytes.begin()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPassedFds)];
  if (count > 0) {
    std::memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * count);
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * count);
    std::memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * count);
  }
  ssize_t n;
  do n = sendmsg(socket, &msg, MSG_NOSIGNAL | flags);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
  if (n < 0) throwSysError("sendmsg");
  if (static_cast<size_t>(n) != bytes.size()) throw FramingError("short packet write");
  return true;
}

}  // namespace

void sendPacket(int socket, capnp::MessageBuilder& message, std::initializer_list<int> passFds) {
  if (passFds.size() > kMaxPassedFds) throw FramingError("too many fds to pass");
  int fds[kMaxPassedFds];
  size_t count = 0;
  for (int fd : passFds)
    if (fd >= 0) fds[count++] = fd;
  kj::Array<capnp::word> flat = capnp::messageToFlatArray(message);
  // A blocking socket: this waits for room (thatch-run, stem cells, tests).
  if (!sendWords(socket, flat, fds, count, 0)) throwSysError("sendmsg", EAGAIN);
}

void PacketQueue::push(capnp::MessageBuilder& message, std::vector<base::Fd> fds, uint64_t tag,
                       bool urgent) {
  std::erase_if(fds, [](const base::Fd& fd) { return !fd; });
  if (fds.size() > kMaxPassedFds) throw FramingError("too many fds to pass");
  (urgent ? urgent_ : normal_).push_back({capnp::messageToFlatArray(message), std::move(fds), tag});
}

bool PacketQueue::trySend(int socket, const Outgoing& packet) {
  int fds[kMaxPassedFds];
  for (size_t i = 0; i < packet.fds.size(); ++i) fds[i] = packet.fds[i].get();
  return sendWords(socket, packet.words, fds, packet.fds.size(), MSG_DONTWAIT);
}

bool PacketQueue::flush(int socket) {
  for (std::deque<Outgoing>* queue : {&urgent_, &normal_}) {
    while (!queue->empty()) {
      if (!trySend(socket, queue->front())) return false;
      queue->pop_front();
    }
  }
  return true;
}

bool PacketQueue::withdraw(uint64_t tag) {
  for (std::deque<Outgoing>* queue : {&urgent_, &normal_}) {
    auto it = std::find_if(queue->begin(), queue->end(),
                           [tag](const Outgoing& packet) { return packet.tag == tag; });
    if (it == queue->end()) continue;
    queue->erase(it);
    return true;
  }
  return false;
}

std::optional<Packet> receivePacket(int socket, uint64_t maxBytes) {
  Packet packet;
  for (;;) {
    switch (receivePacketNow(socket, maxBytes, &packet)) {
      case Received::kPacket:
        return packet;
      case Received::kClosed:
        return std::nullopt;
      case Received::kNothingYet: {
        pollfd ready{socket, POLLIN, 0};
        if (poll(&ready, 1, -1) < 0 && errno != EINTR) throwSysError("poll");
      }
    }
  }
}

Received receivePacketNow(int socket, uint64_t maxBytes, Packet* packet) {
  // The packet's size first, so that the buffer is what it needs, not the
  // limit (a megabyte allocated and freed per packet).
  ssize_t size;
  do size = recv(socket, nullptr, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
  while (size < 0 && errno == EINTR);
  if (size < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Received::kNothingYet;
  if (size < 0) throwSysError("recv");
  size_t words = std::min<uint64_t>(size, maxBytes) / sizeof(capnp::word) + 1;
  packet->words = kj::heapArray<capnp::word>(words);
  auto bytes = packet->words.asBytes();
  iovec iov{bytes.begin(), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = recvmsg(socket, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Received::kNothingYet;
  if (n < 0) throwSysError("recvmsg");
  // Take ownership of any fds first, so none leaks whatever follows.
  std::vector<Fd> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.emplace_back(fd);
    }
  }
  if (n == 0 && size == 0) return Received::kClosed;
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC) || static_cast<uint64_t>(n) > maxBytes)
    throw FramingError("packet too large");
  if (fds.size() > kMaxPassedFds) throw FramingError("too many fds passed");
  if (n % sizeof(capnp::word) != 0) throw FramingError("packet is not a whole number of words");
  packet->passedFds = std::move(fds);
  try {
    packet->reader = std::make_unique<capnp::FlatArrayMessageReader>(
        packet->words.slice(0, n / sizeof(capnp::word)), channelLimits(maxBytes));
  } catch (const kj::Exception& e) {
    throw FramingError(std::string("malformed packet: ") + e.getDescription().cStr());
  }
  return Received::kPacket;
}

}  // namespace runtime
