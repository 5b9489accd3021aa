#include "daemon/server.h"

#include <capnp/rpc-twoparty.h>

#include "base/socket_stream.h"
#include "base/units.h"
#include "daemon/access.h"
#include "supervisor/messages.h"

namespace thatchd {

// Members are destroyed in reverse: the RpcSystem (cancelling the calls in
// flight), then the network, then the TLS stream, then the socket.
struct Server::Connection {
  Connection(kj::Own<base::SocketStream> s, kj::Own<kj::AsyncIoStream> tlsStream,
             capnp::ReaderOptions options, capnp::Capability::Client bootstrap,
             std::string peerName)
      : stream(kj::mv(s)),
        tls(kj::mv(tlsStream)),
        network(tls ? *tls : *stream, capnp::rpc::twoparty::Side::SERVER, options),
        rpc(capnp::makeRpcServer(network, kj::mv(bootstrap))),
        peer(std::move(peerName)) {}

  // The socket; holding its reads holds TLS's too, which reads through it.
  kj::Own<base::SocketStream> stream;
  kj::Own<kj::AsyncIoStream> tls;  // over `stream`, for a tls_cert listener
  capnp::TwoPartyVatNetwork network;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc;
  std::string peer;
};

namespace {

supervisor::StderrTaskErrors serverErrors("api");

// Why each peer is who it says: the kernel's SO_PEERCRED for Unix sockets.
Peer describePeer(kj::PeerIdentity& identity, bool local) {
  Peer peer;
  if (local) {
    peer.grants = supervisor::allGrants();  // the socket's file mode let it in
    KJ_IF_MAYBE (unix, kj::dynamicDowncastIfAvailable<kj::LocalPeerIdentity>(identity)) {
      kj::LocalPeerIdentity::Credentials credentials = unix->getCredentials();
      KJ_IF_MAYBE (uid, credentials.uid) {
        peer.description = "uid " + std::to_string(*uid);
        peer.mayReadHost = *uid == 0;
      }
      KJ_IF_MAYBE (pid, credentials.pid) peer.description += " pid " + std::to_string(*pid);
    }
    if (peer.description.empty()) peer.description = "unix (unknown peer)";
    return peer;
  }
  KJ_IF_MAYBE (network, kj::dynamicDowncastIfAvailable<kj::NetworkPeerIdentity>(identity))
    peer.description = std::string("tcp ") + network->toString().cStr();
  else
    peer.description = "tcp (unknown peer)";
  return peer;
}

}  // namespace

Server::Server(Listeners& listeners, Daemon& daemon, kj::AsyncIoContext& io,
               supervisor::EventLog::Sink logSink)
    : listeners_(listeners),
      daemon_(daemon),
      io_(io),
      log_(daemon.config().logFormat == "json" ? supervisor::EventLog::Format::kJson
                                               : supervisor::EventLog::Format::kText,
           std::move(logSink)),
      tasks_(kj::heap<kj::TaskSet>(serverErrors)) {
  for (Listeners::Listener& listener : listeners_.all())
    accepting_.push_back(acceptLoop(listener).eagerlyEvaluate(nullptr));
}

Server::~Server() {
  tasks_ = nullptr;
  connections_.clear();
  accepting_.clear();
}

void Server::stopListening() {
  accepting_.clear();  // before the listeners they accept on
  listeners_.close();
}

kj::Promise<void> Server::acceptLoop(Listeners::Listener& listener) {
  return listener.receiver->acceptAuthenticated().then(
      [this, &listener](kj::AuthenticatedStream stream) {
        if (listener.tls)
          handshake(kj::mv(stream), *listener.tls);
        else
          serve(kj::mv(stream), listener.local);
        return acceptLoop(listener);
      },
      [this, &listener](kj::Exception&& e) {
        // Out of file descriptors, usually: refuse for a moment, then go on.
        log_.write("accept_failed",
                   {{"address", listener.address}, {"error", e.getDescription().cStr()}});
        return io_.provider->getTimer()
            .afterDelay(100 * kj::MILLISECONDS)
            .then([this, &listener]() { return acceptLoop(listener); });
      });
}

capnp::Capability::Client Server::bootstrapFor(Peer peer, bool local) {
  const supervisor::Config& config = daemon_.config();
  if (local ? !config.socketRequiresToken : config.tcpWithoutToken) {
    peer.grants = supervisor::allGrants();
    return daemon_.thatchFor(std::move(peer));
  }
  return makeLogin(
      daemon_.clients(), peer, [this](Peer p) { return daemon_.thatchFor(std::move(p)); }, log_);
}

void Server::handshake(kj::AuthenticatedStream stream, kj::TlsContext& tls) {
  Peer peer = describePeer(*stream.peerIdentity, false);
  peer.description.replace(0, 3, "tls");
  auto socket = base::socketStreamFrom(io_.unixEventPort, kj::mv(stream.stream));
  // The socket is the connection's to own; TLS reads and writes through it.
  kj::Own<kj::AsyncIoStream> under(socket.get(), kj::NullDisposer::instance);
  tasks_->add(
      tls.wrapServer(kj::mv(under))
          .then(
              [this, peer, socket = kj::mv(socket)](kj::Own<kj::AsyncIoStream> tlsStream) mutable {
                start(std::move(peer), false, kj::mv(socket), kj::mv(tlsStream));
              },
              [this, name = peer.description](kj::Exception&& e) {
                log_.write("tls_handshake_failed",
                           {{"peer", name}, {"error", e.getDescription().cStr()}});
              })
          // A client that never finishes its handshake is dropped (its
          // socket with the abandoned handshake): each holds a descriptor.
          .exclusiveJoin(
              io_.provider->getTimer()
                  .afterDelay(daemon_.config().tlsHandshakeTimeout.count() * kj::MILLISECONDS)
                  .then([this, name = peer.description]() {
                    log_.write("tls_handshake_failed",
                               {{"peer", name},
                                {"error",
                                 "no TLS handshake within " +
                                     base::formatDuration(daemon_.config().tlsHandshakeTimeout)}});
                  })));
}

void Server::serve(kj::AuthenticatedStream stream, bool local) {
  Peer peer = describePeer(*stream.peerIdentity, local);
  start(std::move(peer), local, base::socketStreamFrom(io_.unixEventPort, kj::mv(stream.stream)),
        kj::Own<kj::AsyncIoStream>());
}

void Server::start(Peer peer, bool local, kj::Own<base::SocketStream> socket,
                   kj::Own<kj::AsyncIoStream> tls) {
  capnp::ReaderOptions options;
  uint64_t limit = maxRequestBytes(daemon_.config().limits);
  options.traversalLimitInWords = limit / 8;
  uint64_t id = ++nextId_;
  std::string name = peer.description;
  auto connection =
      kj::heap<Connection>(kj::mv(socket), kj::mv(tls), options, bootstrapFor(peer, local), name);
  // Requests in flight on one connection: past this, it is not read until
  // some finish (one request of the largest size always fits).
  connection->rpc.setFlowLimit(limit / 8);
  // Answers this client has not read: past the largest one, nothing more
  // is read from it until it reads them (docs/api.md, "A client that does
  // not read").
  Connection& c = *connection;
  uint64_t holdAt = maxQueuedAnswerBytes(daemon_.config().limits);
  c.stream->holdReadsWhile([&c, holdAt]() { return c.network.getCurrentQueueSize() > holdAt; },
                           [this, &c, id](bool held) {
                             log_.write(
                                 held ? "client_reads_held" : "client_reads_resumed",
                                 {{"connection", id},
                                  {"peer", c.peer},
                                  {"queued_bytes", uint64_t(c.network.getCurrentQueueSize())}});
                           });
  log_.write("client_connected", {{"connection", id}, {"peer", name}});
  tasks_->add(connection->network.onDisconnect().then([this, id]() {
    // Destroyed on a later turn: not from inside its own network's callback.
    return kj::evalLater([this, id]() {
      auto it = connections_.find(id);
      if (it == connections_.end()) return;
      log_.write("client_disconnected", {{"connection", id}, {"peer", it->second->peer}});
      connections_.erase(it);
    });
  }));
  connections_[id] = kj::mv(connection);
}

}  // namespace thatchd
