#include "daemon/server.h"

#include <capnp/rpc-twoparty.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "base/socket_stream.h"
#include "base/text.h"
#include "supervisor/messages.h"

namespace thatchd {

using base::quoted;

struct Server::Listener {
  kj::Own<kj::ConnectionReceiver> receiver;
  bool local;  // a Unix socket: peers have a uid and pid
  std::string address;
  kj::Promise<void> accepting = nullptr;
};

// Members are destroyed in reverse: the RpcSystem (cancelling the calls in
// flight), then the network, then the socket.
struct Server::Connection {
  Connection(kj::Own<kj::AsyncIoStream> s, capnp::ReaderOptions options,
             thatch::api::Thatch::Client bootstrap, std::string peerName)
      : stream(kj::mv(s)),
        network(*stream, capnp::rpc::twoparty::Side::SERVER, options),
        rpc(capnp::makeRpcServer(network, kj::mv(bootstrap))),
        peer(std::move(peerName)) {}

  kj::Own<kj::AsyncIoStream> stream;
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

// Whether something accepts connections at `path` (a live thatchd).
bool socketIsLive(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  bool live = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return live;
}

}  // namespace

Server::Server(const supervisor::Config& config, kj::AsyncIoProvider& io,
               kj::UnixEventPort& eventPort, supervisor::EventLog::Sink logSink)
    : config_(config),
      io_(io),
      eventPort_(eventPort),
      log_(config.logFormat == "json" ? supervisor::EventLog::Format::kJson
                                      : supervisor::EventLog::Format::kText,
           std::move(logSink)),
      stager_(eventPort),
      tasks_(kj::heap<kj::TaskSet>(serverErrors)) {}

Server::~Server() {
  tasks_ = nullptr;
  connections_.clear();
  stopListening();
}

void Server::listen(kj::WaitScope& waitScope) {
  listenUnix(waitScope);
  if (!config_.tcpListen.empty()) listenTcp(waitScope);
}

void Server::listenUnix(kj::WaitScope& waitScope) {
  const std::string& path = config_.socketPath;
  if (path.size() >= sizeof(sockaddr_un::sun_path))
    throw std::runtime_error("socket path " + path + " is longer than " +
                             std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
  std::string dir = path.substr(0, path.rfind('/'));
  if (!dir.empty() && mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    throw std::runtime_error("cannot create " + dir + ": " + strerror(errno));
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) throw std::runtime_error(path + " exists and is not a socket");
    if (socketIsLive(path)) throw std::runtime_error("another thatchd is serving on " + path);
    unlink(path.c_str());  // a stale socket of a thatchd that was killed
  }
  gid_t group = static_cast<gid_t>(-1);
  if (!config_.socketGroup.empty()) {
    struct group* entry = getgrnam(config_.socketGroup.c_str());
    if (!entry)
      throw std::runtime_error("socket_group " + quoted(config_.socketGroup, 64) +
                               ": no such group");
    group = entry->gr_gid;
  }
  // Created 0660 from the start: no window in which anyone else may connect.
  mode_t previous = umask(0117);
  auto listener = kj::heap<Listener>();
  try {
    listener->receiver =
        io_.getNetwork().parseAddress(kj::str("unix:", path.c_str())).wait(waitScope)->listen();
  } catch (...) {
    umask(previous);
    throw;
  }
  umask(previous);
  socketPath_ = path;
  if (chown(path.c_str(), static_cast<uid_t>(-1), group) != 0 || chmod(path.c_str(), 0660) != 0)
    throw std::runtime_error("cannot set the owner and mode of " + path + ": " + strerror(errno));
  listener->local = true;
  listener->address = path;
  log_.write("listening", {{"address", "unix:" + path}});
  listeners_[++nextId_] = kj::mv(listener);
}

void Server::listenTcp(kj::WaitScope& waitScope) {
  auto listener = kj::heap<Listener>();
  listener->receiver =
      io_.getNetwork().parseAddress(kj::str(config_.tcpListen.c_str())).wait(waitScope)->listen();
  listener->local = false;
  listener->address = config_.tcpListen;
  log_.write("listening", {{"address", "tcp:" + config_.tcpListen}});
  listeners_[++nextId_] = kj::mv(listener);
}

void Server::serve(supervisor::Supervisor& supervisor, supervisor::Registry& registry) {
  supervisor_ = &supervisor;
  registry_ = &registry;
  for (auto& [id, listener] : listeners_)
    listener->accepting = acceptLoop(*listener).eagerlyEvaluate(nullptr);
}

void Server::stopListening() {
  listeners_.clear();
  if (!socketPath_.empty()) {
    unlink(socketPath_.c_str());
    socketPath_.clear();
  }
}

kj::Promise<void> Server::acceptLoop(Listener& listener) {
  return listener.receiver->acceptAuthenticated().then(
      [this, &listener](kj::AuthenticatedStream stream) {
        accepted(kj::mv(stream), listener.local);
        return acceptLoop(listener);
      },
      [this, &listener](kj::Exception&& e) {
        // Out of file descriptors, usually: refuse for a moment, then go on.
        log_.write("accept_failed",
                   {{"address", listener.address}, {"error", e.getDescription().cStr()}});
        return io_.getTimer().afterDelay(100 * kj::MILLISECONDS).then([this, &listener]() {
          return acceptLoop(listener);
        });
      });
}

void Server::accepted(kj::AuthenticatedStream stream, bool local) {
  Peer peer = describePeer(*stream.peerIdentity, local);
  capnp::ReaderOptions options;
  uint64_t limit = maxRequestBytes(config_.limits);
  options.traversalLimitInWords = limit / 8;
  uint64_t id = ++nextId_;
  std::string name = peer.description;
  auto connection =
      kj::heap<Connection>(base::socketStreamFrom(eventPort_, kj::mv(stream.stream)), options,
                           makeThatch(*supervisor_, *registry_, config_, stager_, peer), name);
  // Requests in flight on one connection: past this, it is not read until
  // some finish (one request of the largest size always fits).
  connection->rpc.setFlowLimit(limit / 8);
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
