// The stream each connection of the Lambda HTTP API (daemon/lambda_api.h)
// is served over: base::SocketStream, as the Cap'n Proto connections have.
// With kj's own stream, every warm Invoke cost thatchd a wake-up for
// nothing (kj watches for writability, edge-triggered, so each time a
// client read its answer the loop woke) and a read() for EAGAIN after each
// request; docs/performance.md has the figures.
#pragma once

#include <kj/async-io.h>
#include <kj/async-unix.h>

namespace thatchd {

// `accepted` over a base::SocketStream; kept as kj made it when there is no
// descriptor to spare for the SocketStream's duplicate, rather than failing
// the accept loop.
kj::Own<kj::AsyncIoStream> httpConnection(kj::UnixEventPort& eventPort,
                                          kj::Own<kj::AsyncIoStream> accepted);

}  // namespace thatchd
