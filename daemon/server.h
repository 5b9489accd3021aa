// thatchd's RPC server: the Thatch and Function capabilities of
// api/thatch.capnp over a Unix socket (and, if configured, TCP), each
// connection an RpcSystem on the supervisor's event loop.
#pragma once

#include <kj/async-io.h>
#include <kj/async-unix.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "daemon/capabilities.h"
#include "daemon/stager.h"
#include "supervisor/config.h"
#include "supervisor/event_log.h"
#include "supervisor/registry.h"
#include "supervisor/supervisor.h"

namespace thatchd {

class Server {
 public:
  Server(const supervisor::Config& config, kj::AsyncIoProvider& io, kj::UnixEventPort& eventPort,
         supervisor::EventLog::Sink logSink = {});
  ~Server();  // closes the listeners (removing the socket file) and every connection
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the Unix socket (mode 0660, the configured group) and the TCP
  // listener if configured. Throws std::runtime_error with the reason
  // (another thatchd on the socket, a bad group, ...). Before the
  // supervisor starts: a second thatchd must fail before it touches the
  // first one's cgroups.
  void listen(kj::WaitScope& waitScope);

  // Accepts connections and serves them with `supervisor`.
  void serve(supervisor::Supervisor& supervisor, supervisor::Registry& registry);

  // No more connections; those open keep being served.
  void stopListening();

  size_t connectionCount() const { return connections_.size(); }

 private:
  struct Connection;
  struct Listener;

  kj::Promise<void> acceptLoop(Listener& listener);
  void accepted(kj::AuthenticatedStream stream, bool local);
  void listenUnix(kj::WaitScope& waitScope);
  void listenTcp(kj::WaitScope& waitScope);

  supervisor::Supervisor* supervisor_ = nullptr;  // from serve()
  supervisor::Registry* registry_ = nullptr;
  const supervisor::Config& config_;
  kj::AsyncIoProvider& io_;
  kj::UnixEventPort& eventPort_;
  supervisor::EventLog log_;
  std::string socketPath_;  // to remove, once bound
  std::map<uint64_t, kj::Own<Listener>> listeners_;
  // Before connections_: their calls (and the promises of staging) go first,
  // then the staging threads are joined.
  Stager stager_;
  std::map<uint64_t, kj::Own<Connection>> connections_;
  uint64_t nextId_ = 0;
  kj::Own<kj::TaskSet> tasks_;
};

}  // namespace thatchd
