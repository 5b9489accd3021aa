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

#include <functional>
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

  // Reads wait while `held()` is true: a peer that does not read what is
  // sent to it gets nothing more read from it (thatchd's clients, whose
  // answers queue up while they do not read them: docs/api.md). Checked
  // before each read from the buffer or the socket (a read that waits for
  // data looks again when it comes), and while held, again after each write has completed
  // and what that completion set off on the loop has run (the queue the
  // predicate looks at shrinks there). `changed(true)` when reads begin
  // to wait, `changed(false)` when they go on.
  void holdReadsWhile(std::function<bool()> held, std::function<void(bool)> changed);

 private:
  size_t takeBuffered(kj::byte* out, size_t maxBytes);
  // Reads until at least `minBytes` of `out` are filled, `copied` already are.
  kj::Promise<size_t> readMore(kj::byte* out, size_t copied, size_t minBytes, size_t maxBytes);
  // Sends the pieces from `offset` bytes in; waits for room when the socket is full.
  kj::Promise<void> writeFrom(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces,
                              size_t offset);
  kj::Promise<void> whenWritable();
  // A promise that resolves when reads may go on, if they are held now.
  kj::Maybe<kj::Promise<void>> holdIfAsked();
  // A write has completed: while reads are held, look again once the loop
  // has run what else is ready.
  void wrote();

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
  std::function<bool()> readHold_;
  std::function<void(bool)> holdChanged_;
  kj::Own<kj::PromiseFulfiller<void>> released_;  // set while a read is held
  kj::Maybe<kj::Promise<void>> recheck_;
};

// A SocketStream in place of a kj stream that has a socket under it (one
// from kj's accept or connect): the descriptor is duplicated and the kj
// stream dropped.
kj::Own<SocketStream> socketStreamFrom(kj::UnixEventPort& eventPort,
                                       kj::Own<kj::AsyncIoStream> stream);

}  // namespace base
