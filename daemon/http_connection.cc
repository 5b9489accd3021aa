#include "daemon/http_connection.h"

#include <fcntl.h>

#include "base/fd.h"
#include "base/socket_stream.h"

namespace thatchd {

kj::Own<kj::AsyncIoStream> httpConnection(kj::UnixEventPort& eventPort,
                                          kj::Own<kj::AsyncIoStream> accepted) {
  KJ_IF_MAYBE (fd, accepted->getFd()) {
    // As base::socketStreamFrom, which throws when the duplicate fails.
    base::Fd own(fcntl(*fd, F_DUPFD_CLOEXEC, 0));
    if (own) {
      accepted = nullptr;  // kj's observer leaves epoll and its descriptor closes
      return kj::heap<base::SocketStream>(eventPort, std::move(own));
    }
  }
  return accepted;
}

}  // namespace thatchd
