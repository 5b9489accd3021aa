// thatchd's RPC server: accepts on the listeners and serves each connection
// with its own RpcSystem on the daemon's event loop, its bootstrap Thatch
// knowing the peer.
#pragma once

#include <kj/async-io.h>
#include <kj/async-unix.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/socket_stream.h"
#include "daemon/access.h"
#include "daemon/daemon.h"
#include "daemon/listeners.h"
#include "supervisor/event_log.h"

namespace thatchd {

class Server {
 public:
  // Accepts on `listeners` (bound) and serves with `daemon`; both must
  // outlive it.
  Server(Listeners& listeners, Daemon& daemon, kj::AsyncIoContext& io,
         supervisor::EventLog::Sink logSink = {});
  ~Server();  // closes every connection, cancelling its calls
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // No more connections (the listeners close, the socket file goes); those
  // open keep being served.
  void stopListening();

  size_t connectionCount() const { return connections_.size(); }

  // Serves one connection, accepted on a listener (or made elsewhere: the
  // RPC fuzz target hands it one end of a socketpair). `local`: a Unix
  // socket, whose peer identity has a uid.
  void serve(kj::AuthenticatedStream stream, bool local);

 private:
  struct Connection;

  // A TLS listener's connection: served once the handshake is done (a
  // failed one is logged, and the connection closed).
  void handshake(kj::AuthenticatedStream stream, kj::TlsContext& tls);
  void start(Peer peer, bool local, kj::Own<base::SocketStream> socket,
             kj::Own<kj::AsyncIoStream> tls);

  kj::Promise<void> acceptLoop(Listeners::Listener& listener);
  // The full Thatch where no token is needed; else a Login (daemon/access.h).
  capnp::Capability::Client bootstrapFor(Peer peer, bool local);

  Listeners& listeners_;
  Daemon& daemon_;
  kj::AsyncIoContext& io_;
  supervisor::EventLog log_;
  std::vector<kj::Promise<void>> accepting_;  // one per listener
  std::map<uint64_t, kj::Own<Connection>> connections_;
  uint64_t nextId_ = 0;
  kj::Own<kj::TaskSet> tasks_;
};

}  // namespace thatchd
