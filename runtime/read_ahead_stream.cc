#include "runtime/read_ahead_stream.h"

#include <cstring>

namespace runtime {

ReadAheadStream::ReadAheadStream(kj::Own<kj::AsyncIoStream> inner, size_t bufferBytes)
    : inner_(kj::mv(inner)), buffer_(kj::heapArray<kj::byte>(bufferBytes)) {}

size_t ReadAheadStream::takeBuffered(kj::byte* out, size_t maxBytes) {
  size_t n = kj::min(maxBytes, end_ - begin_);
  memcpy(out, buffer_.begin() + begin_, n);
  begin_ += n;
  return n;
}

kj::Promise<size_t> ReadAheadStream::tryRead(void* buffer, size_t minBytes, size_t maxBytes) {
  auto out = static_cast<kj::byte*>(buffer);
  size_t copied = takeBuffered(out, maxBytes);
  if (copied >= minBytes) return copied;
  return readMore(out, copied, minBytes, maxBytes);
}

kj::Promise<size_t> ReadAheadStream::readMore(kj::byte* out, size_t copied, size_t minBytes,
                                              size_t maxBytes) {
  // A large remainder (a big segment) goes straight to its destination.
  if (maxBytes - copied >= buffer_.size())
    return inner_->tryRead(out + copied, minBytes - copied, maxBytes - copied)
        .then([copied](size_t n) { return copied + n; });
  return inner_->tryRead(buffer_.begin(), 1, buffer_.size())
      .then([this, out, copied, minBytes, maxBytes](size_t n) -> kj::Promise<size_t> {
        begin_ = 0;
        end_ = n;
        if (n == 0) return copied;  // end of stream
        size_t total = copied + takeBuffered(out + copied, maxBytes - copied);
        if (total >= minBytes) return total;
        return readMore(out, total, minBytes, maxBytes);
      });
}

kj::Promise<void> ReadAheadStream::write(const void* buffer, size_t size) {
  return inner_->write(buffer, size);
}

kj::Promise<void> ReadAheadStream::write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) {
  return inner_->write(pieces);
}

kj::Promise<void> ReadAheadStream::whenWriteDisconnected() {
  return inner_->whenWriteDisconnected();
}

void ReadAheadStream::shutdownWrite() {
  inner_->shutdownWrite();
}

void ReadAheadStream::abortRead() {
  inner_->abortRead();
}

void ReadAheadStream::getsockopt(int level, int option, void* value, kj::uint* length) {
  inner_->getsockopt(level, option, value, length);
}

void ReadAheadStream::setsockopt(int level, int option, const void* value, kj::uint length) {
  inner_->setsockopt(level, option, value, length);
}

void ReadAheadStream::getsockname(struct sockaddr* addr, kj::uint* length) {
  inner_->getsockname(addr, length);
}

void ReadAheadStream::getpeername(struct sockaddr* addr, kj::uint* length) {
  inner_->getpeername(addr, length);
}

kj::Maybe<int> ReadAheadStream::getFd() const {
  return inner_->getFd();
}

}  // namespace runtime
