#include "base/socket_stream.h"

#include <fcntl.h>
#include <kj/debug.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace base {

namespace {

int nonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
    KJ_FAIL_SYSCALL("fcntl(O_NONBLOCK)", errno);
  return fd;
}

kj::Exception socketError(const char* call, int error) {
  auto type = error == EPIPE || error == ECONNRESET || error == ENOTCONN
                  ? kj::Exception::Type::DISCONNECTED
                  : kj::Exception::Type::FAILED;
  return kj::Exception(type, __FILE__, __LINE__, kj::str(call, ": ", strerror(error)));
}

}  // namespace

SocketStream::SocketStream(kj::UnixEventPort& eventPort, Fd fd, size_t bufferBytes)
    : eventPort_(eventPort),
      fd_(std::move(fd)),  // a member first, so that a failure below closes it
      readObserver_(eventPort, nonBlocking(fd_.get()), kj::UnixEventPort::FdObserver::OBSERVE_READ),
      buffer_(kj::heapArray<kj::byte>(bufferBytes)) {}

SocketStream::WriteWatch::WriteWatch(kj::UnixEventPort& eventPort, Fd copy)
    : fd(std::move(copy)),
      observer(eventPort, fd.get(), kj::UnixEventPort::FdObserver::OBSERVE_WRITE) {}

size_t SocketStream::takeBuffered(kj::byte* out, size_t maxBytes) {
  size_t n = kj::min(maxBytes, end_ - begin_);
  memcpy(out, buffer_.begin() + begin_, n);
  begin_ += n;
  bytesRead_ += n;
  return n;
}

kj::Promise<size_t> SocketStream::tryRead(void* buffer, size_t minBytes, size_t maxBytes) {
  KJ_IF_MAYBE (hold, holdIfAsked()) {
    return hold->then(
        [this, buffer, minBytes, maxBytes]() { return tryRead(buffer, minBytes, maxBytes); });
  }
  auto out = static_cast<kj::byte*>(buffer);
  size_t copied = takeBuffered(out, maxBytes);
  if (copied >= minBytes) return copied;
  return readMore(out, copied, minBytes, maxBytes);
}

kj::Promise<size_t> SocketStream::readMore(kj::byte* out, size_t copied, size_t minBytes,
                                           size_t maxBytes) {
  for (;;) {
    KJ_IF_MAYBE (hold, holdIfAsked()) {
      return hold->then([this, out, copied, minBytes, maxBytes]() {
        return readMore(out, copied, minBytes, maxBytes);
      });
    }
    KJ_IF_MAYBE (emptied, emptied_) {
      // The last read took everything: wait for the edge rather than read()
      // for EAGAIN (a system call per message, ~1 us here).
      auto dataCame = emptied->addBranch();
      emptied_ = nullptr;
      return dataCame.then([this, out, copied, minBytes, maxBytes]() {
        return readMore(out, copied, minBytes, maxBytes);
      });
    }
    // A large remainder (a big segment) goes straight to its destination.
    bool direct = maxBytes - copied >= buffer_.size();
    size_t asked = direct ? maxBytes - copied : buffer_.size();
    ssize_t n = ::read(fd_.get(), direct ? out + copied : buffer_.begin(), asked);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return socketError("read", errno);
      // Empty: the edge that the next data raises is ours to wait for.
      return readObserver_.whenBecomesReadable().then([this, out, copied, minBytes, maxBytes]() {
        return readMore(out, copied, minBytes, maxBytes);
      });
    }
    if (n == 0) return copied;  // end of stream
    // A short read of a stream socket emptied it, so the next data raises a
    // new edge. Watching for it from now on means no edge can be missed.
    if (size_t(n) < asked) emptied_ = readObserver_.whenBecomesReadable().fork();
    if (direct) {
      copied += size_t(n);
      bytesRead_ += size_t(n);
    } else {
      begin_ = 0;
      end_ = size_t(n);
      copied += takeBuffered(out + copied, maxBytes - copied);
    }
    if (copied >= minBytes) return copied;
  }
}

bool SocketStream::hasInput() const {
  if (end_ > begin_) return true;
  pollfd ready{fd_.get(), POLLIN, 0};
  return poll(&ready, 1, 0) > 0;
}

kj::Promise<void> SocketStream::write(const void* buffer, size_t size) {
  // On the heap: the write may wait for room after this frame is gone.
  auto pieces = kj::heapArray<kj::ArrayPtr<const kj::byte>>(1);
  pieces[0] = kj::arrayPtr(static_cast<const kj::byte*>(buffer), size);
  auto view = pieces.asPtr();
  return writeFrom(view, 0).attach(kj::mv(pieces));
}

kj::Promise<void> SocketStream::write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) {
  return writeFrom(pieces, 0);
}

kj::Promise<void> SocketStream::writeFrom(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces,
                                          size_t offset) {
  for (;;) {
    // The iovecs from `offset` on, at most IOV_MAX of them per call.
    constexpr size_t kMaxIov = 1024;
    iovec iov[kMaxIov];
    size_t count = 0, skip = offset;
    for (const auto& piece : pieces) {
      if (skip >= piece.size()) {
        skip -= piece.size();
        continue;
      }
      if (count == kMaxIov) break;
      iov[count].iov_base = const_cast<kj::byte*>(piece.begin() + skip);
      iov[count++].iov_len = piece.size() - skip;
      skip = 0;
    }
    if (count == 0) {
      wrote();
      return kj::READY_NOW;
    }
    msghdr message{};
    message.msg_iov = iov;
    message.msg_iovlen = count;
    ssize_t n = sendmsg(fd_.get(), &message, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return socketError("sendmsg", errno);
      return whenWritable().then([this, pieces, offset]() { return writeFrom(pieces, offset); });
    }
    offset += size_t(n);
  }
}

kj::Promise<void> SocketStream::whenWritable() {
  if (!writeWatch_) {
    Fd copy(dup(fd_.get()));
    if (!copy) return socketError("dup", errno);
    // Registered while the socket is full: epoll reports the room when it comes.
    writeWatch_.emplace(eventPort_, std::move(copy));
  }
  return writeWatch_->observer.whenBecomesWritable().then([this]() {
    // Unwatched again: otherwise every read by the peer would wake the loop.
    writeWatch_.reset();
  });
}

void SocketStream::holdReadsWhile(std::function<bool()> held, std::function<void(bool)> changed) {
  readHold_ = std::move(held);
  holdChanged_ = std::move(changed);
}

kj::Maybe<kj::Promise<void>> SocketStream::holdIfAsked() {
  if (!readHold_ || !readHold_()) return nullptr;
  KJ_REQUIRE(!released_, "a second read while one is held");
  auto paf = kj::newPromiseAndFulfiller<void>();
  released_ = kj::mv(paf.fulfiller);
  holdChanged_(true);
  return kj::mv(paf.promise);
}

void SocketStream::wrote() {
  if (!released_) return;
  // evalLast: after the continuations this write's completion made ready
  // (Cap'n Proto's, which take the message off its queue).
  recheck_ = kj::evalLast([this]() {
               if (!released_ || readHold_()) return;  // the next write looks again
               auto released = kj::mv(released_);
               holdChanged_(false);
               released->fulfill();
             }).eagerlyEvaluate(nullptr);
}

kj::Promise<void> SocketStream::whenWriteDisconnected() {
  return readObserver_.whenWriteDisconnected();
}

void SocketStream::shutdownWrite() {
  if (shutdown(fd_.get(), SHUT_WR) < 0 && errno != ENOTCONN) KJ_FAIL_SYSCALL("shutdown", errno);
}

void SocketStream::abortRead() {
  shutdown(fd_.get(), SHUT_RD);  // best effort: the peer may be gone already
}

void SocketStream::getsockopt(int level, int option, void* value, kj::uint* length) {
  socklen_t len = *length;
  if (::getsockopt(fd_.get(), level, option, value, &len) < 0) KJ_FAIL_SYSCALL("getsockopt", errno);
  *length = len;
}

void SocketStream::setsockopt(int level, int option, const void* value, kj::uint length) {
  if (::setsockopt(fd_.get(), level, option, value, length) < 0)
    KJ_FAIL_SYSCALL("setsockopt", errno);
}

void SocketStream::getsockname(struct sockaddr* addr, kj::uint* length) {
  socklen_t len = *length;
  if (::getsockname(fd_.get(), addr, &len) < 0) KJ_FAIL_SYSCALL("getsockname", errno);
  *length = len;
}

void SocketStream::getpeername(struct sockaddr* addr, kj::uint* length) {
  socklen_t len = *length;
  if (::getpeername(fd_.get(), addr, &len) < 0) KJ_FAIL_SYSCALL("getpeername", errno);
  *length = len;
}

kj::Own<SocketStream> socketStreamFrom(kj::UnixEventPort& eventPort,
                                       kj::Own<kj::AsyncIoStream> stream) {
  int fd = KJ_REQUIRE_NONNULL(stream->getFd(), "not a socket");
  Fd own(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!own) KJ_FAIL_SYSCALL("fcntl(F_DUPFD_CLOEXEC)", errno);
  stream = nullptr;  // kj's observer leaves epoll and its descriptor closes
  return kj::heap<SocketStream>(eventPort, std::move(own));
}

}  // namespace base
