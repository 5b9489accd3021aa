// A kj stream that reads ahead. Cap'n Proto reads a message as its first
// word, then the rest of the segment table, then the segments: three read()
// calls on a bare socket (the last one after the next message's header
// finds nothing). Reading whatever the socket holds into a buffer makes
// that one call per message, or fewer when messages arrive together;
// syscalls are the main cost of a warm invocation on this class of VM
// (docs/api.md has the figures).
#pragma once

#include <kj/async-io.h>

namespace runtime {

class ReadAheadStream final : public kj::AsyncIoStream {
 public:
  explicit ReadAheadStream(kj::Own<kj::AsyncIoStream> inner, size_t bufferBytes = 64 << 10);

  kj::Promise<size_t> tryRead(void* buffer, size_t minBytes, size_t maxBytes) override;
  kj::Promise<void> write(const void* buffer, size_t size) override;
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override;
  kj::Promise<void> whenWriteDisconnected() override;
  void shutdownWrite() override;
  void abortRead() override;
  void getsockopt(int level, int option, void* value, kj::uint* length) override;
  void setsockopt(int level, int option, const void* value, kj::uint length) override;
  void getsockname(struct sockaddr* addr, kj::uint* length) override;
  void getpeername(struct sockaddr* addr, kj::uint* length) override;
  kj::Maybe<int> getFd() const override;

 private:
  // Reads at least `minBytes` into `out`, `copied` of which are there already.
  kj::Promise<size_t> readMore(kj::byte* out, size_t copied, size_t minBytes, size_t maxBytes);
  size_t takeBuffered(kj::byte* out, size_t maxBytes);

  kj::Own<kj::AsyncIoStream> inner_;
  kj::Array<kj::byte> buffer_;
  size_t begin_ = 0, end_ = 0;  // the unread bytes of buffer_
};

}  // namespace runtime
