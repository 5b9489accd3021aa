#include "daemon/http_connection.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "base/fd.h"
#include "base/socket_stream.h"

namespace thatchd {
namespace {

class CorkPerTurnStream final : public kj::AsyncIoStream {
 public:
  explicit CorkPerTurnStream(kj::Own<kj::AsyncIoStream> inner) : inner_(kj::mv(inner)) {}

  kj::Promise<void> write(const void* buffer, size_t size) override {
    cork();
    return inner_->write(buffer, size);
  }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    cork();
    return inner_->write(pieces);
  }
  void shutdownWrite() override {
    uncork();
    inner_->shutdownWrite();
  }

  // The rest as the connection's own.
  kj::Promise<size_t> tryRead(void* buffer, size_t minBytes, size_t maxBytes) override {
    return inner_->tryRead(buffer, minBytes, maxBytes);
  }
  kj::Maybe<uint64_t> tryGetLength() override { return inner_->tryGetLength(); }
  kj::Promise<uint64_t> pumpTo(kj::AsyncOutputStream& output, uint64_t amount) override {
    return inner_->pumpTo(output, amount);
  }
  kj::Promise<void> whenWriteDisconnected() override { return inner_->whenWriteDisconnected(); }
  void abortRead() override { inner_->abortRead(); }
  void getsockopt(int level, int option, void* value, uint* length) override {
    inner_->getsockopt(level, option, value, length);
  }
  void setsockopt(int level, int option, const void* value, uint length) override {
    inner_->setsockopt(level, option, value, length);
  }
  void getsockname(struct sockaddr* addr, uint* length) override {
    inner_->getsockname(addr, length);
  }
  void getpeername(struct sockaddr* addr, uint* length) override {
    inner_->getpeername(addr, length);
  }
  kj::Maybe<int> getFd() const override { return inner_->getFd(); }

 private:
  void cork() {
    if (corked_ || !corkable_ || !setCork(true)) return;
    corked_ = true;
    uncorking_ = kj::evalLast([this]() { uncork(); }).eagerlyEvaluate(nullptr);
  }

  void uncork() {
    if (!corked_) return;
    corked_ = false;
    setCork(false);  // sends what was held
  }

  bool setCork(bool on) {
    int value = on;
    KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() {
                   inner_->setsockopt(IPPROTO_TCP, TCP_CORK, &value, sizeof value);
                 })) {
      corkable_ = false;  // not TCP, or gone: written as it comes
      return false;
    }
    return true;
  }

  kj::Own<kj::AsyncIoStream> inner_;
  bool corked_ = false, corkable_ = true;
  // Before inner_ in destruction; closing the socket sends what it holds.
  kj::Promise<void> uncorking_ = nullptr;
};

}  // namespace

kj::Own<kj::AsyncIoStream> corkPerTurn(kj::Own<kj::AsyncIoStream> stream) {
  return kj::heap<CorkPerTurnStream>(kj::mv(stream));
}

kj::Own<kj::AsyncIoStream> httpConnection(kj::UnixEventPort& eventPort,
                                          kj::Own<kj::AsyncIoStream> accepted) {
  KJ_IF_MAYBE (fd, accepted->getFd()) {
    // As base::socketStreamFrom, but keeping kj's stream when there is no
    // descriptor to spare rather than failing the accept loop.
    base::Fd own(fcntl(*fd, F_DUPFD_CLOEXEC, 0));
    if (own) {
      accepted = nullptr;  // kj's observer leaves epoll and its descriptor closes
      return corkPerTurn(kj::heap<base::SocketStream>(eventPort, std::move(own)));
    }
  }
  return corkPerTurn(kj::mv(accepted));
}

}  // namespace thatchd
