// The stream each connection of the Lambda HTTP API (daemon/lambda_api.h)
// is served over, chosen for what a warm Invoke costs in system calls and
// wake-ups (docs/performance.md has the figures):
//
// - base::SocketStream, as the Cap'n Proto connections have: it reads
//   ahead and waits for the next edge rather than reading for EAGAIN, and
//   does not watch for writability, which with kj's own stream woke the
//   loop each time a client read its answer;
// - corked (TCP_CORK) from the first write of a turn of the event loop
//   until the loop would otherwise wait (kj::evalLast): kj-http writes a
//   response's headers and its body in two write()s, which over loopback
//   were two TCP segments, each with its pass through the host's netfilter
//   and often a wake-up of the client. Uncorked at the end of the turn,
//   they leave as one; nothing waits for a timer.
#pragma once

#include <kj/async-io.h>
#include <kj/async-unix.h>

namespace thatchd {

// `accepted` as above. Out of file descriptors (the SocketStream needs a
// duplicate), it is kept as kj made it, still corked; a stream that cannot
// be corked (not TCP) is written as it comes.
kj::Own<kj::AsyncIoStream> httpConnection(kj::UnixEventPort& eventPort,
                                          kj::Own<kj::AsyncIoStream> accepted);

// Only the corking, for a stream of one's own (bench/http_bench.cc's
// clients, whose kj-http writes requests in two pieces too).
kj::Own<kj::AsyncIoStream> corkPerTurn(kj::Own<kj::AsyncIoStream> stream);

}  // namespace thatchd
