// A kj stream over a non-blocking socket, for thatch's Cap'n Proto
// connections (clients, thatchd, sandbox channels). It differs from kj's own
// in two ways that cost system calls and wake-ups on every message:
//
// - It reads ahead: Cap'n Proto reads a message as its first word, then the
//   segment table, then the segments, three read() calls on a bare socket;
//   reading whatever the socket holds makes it one. And after a read that
//   emptied the socket, it waits for the next edge instead of reading again
//   for EAGAIN.
// - It watches the socket for reading only. kj's stream also registers for
//   EPOLLOUT (edge-triggered), so every time the peer reads what was sent,
//   the kernel reports the socket writable again and wakes the loop for
//   nothing. Here writability is watched only while a write waits for
//   room, through a duplicate descriptor that exists for that wait alone.
//
// docs/api.md has the figures.
#pragma once

#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <kj/io.h>

#include <optional>

#include "base/fd.h"

namespace base {

class SocketStream final : public kj::AsyncIoStream {
 public:
  // Takes `fd` (made non-blocking here).
  SocketStream(kj::UnixEventPort& eventPort, Fd fd, size_t bufferBytes = 64 << 10);

  kj::Promise<size_t> tryRead(void* buffer, size_t minBytes, size_t maxBytes) override;
  // Whether something the peer sent (or its end of stream) waits to be read,
  // in this stream's buffer or the socket's, without reading it.
  bool hasInput() const;
  // Bytes handed to readers so far.
  uint64_t bytesRead() const { return bytesRead_; }
  kj::Promise<void> write(const void* buffer, size_t size) override;
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override;
  kj::Promise<void> whenWriteDisconnected() override;
  void shutdownWrite() override;
  void abortRead() override;
  void getsockopt(int level, int option, void* value, kj::uint* length) override;
  void setsockopt(int level, int option, const void* value, kj::uint length) override;
  void getsockname(struct sockaddr* addr, kj::uint* length) override;
  void getpeername(struct sockaddr* addr, kj::uint* length) override;
  kj::Maybe<int> getFd() const override { return fd_.get(); }

 private:
  size_t takeBuffered(kj::byte* out, size_t maxBytes);
  // Reads until at least `minBytes` of `out` are filled, `copied` already are.
  kj::Promise<size_t> readMore(kj::byte* out, size_t copied, size_t minBytes, size_t maxBytes);
  // Sends the pieces from `offset` bytes in; waits for room when the socket is full.
  kj::Promise<void> writeFrom(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces,
                              size_t offset);
  kj::Promise<void> whenWritable();

  // Writability is watched through a duplicate of the socket with an
  // observer of its own, only while a write waits for room (see above).
  struct WriteWatch {
    WriteWatch(kj::UnixEventPort& eventPort, Fd copy);
    Fd fd;  // declared before its observer: closed after it leaves epoll
    kj::UnixEventPort::FdObserver observer;
  };

  kj::UnixEventPort& eventPort_;
  Fd fd_;  // declared before its observer: closed after it leaves epoll
  kj::UnixEventPort::FdObserver readObserver_;
  uint64_t bytesRead_ = 0;
  std::optional<WriteWatch> writeWatch_;
  kj::Array<kj::byte> buffer_;
  size_t begin_ = 0, end_ = 0;  // the unread bytes of buffer_
  // Armed by a read that emptied the socket: resolves when data comes.
  kj::Maybe<kj::ForkedPromise<void>> emptied_;
};

// A SocketStream in place of a kj stream that has a socket under it (one
// from kj's accept or connect): the descriptor is duplicated and the kj
// stream dropped.
kj::Own<kj::AsyncIoStream> socketStreamFrom(kj::UnixEventPort& eventPort,
                                            kj::Own<kj::AsyncIoStream> stream);

}  // namespace base
