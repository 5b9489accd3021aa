// thatchd's listening sockets: the Unix socket (mode 0660, the configured
// group) and, if configured, TCP. Bound before the supervisor starts, so
// that a second thatchd fails before it touches the first one's cgroups;
// daemon/server.h accepts on them.
#pragma once

#include <kj/async-io.h>
#include <kj/compat/tls.h>

#include <list>
#include <string>

#include "supervisor/config.h"
#include "supervisor/event_log.h"

namespace thatchd {

class Listeners {
 public:
  struct Listener {
    kj::Own<kj::ConnectionReceiver> receiver;
    bool local = false;  // a Unix socket: peers have a uid and pid
    std::string address;
    kj::Own<kj::TlsContext> tls;  // set: its streams speak TLS (tls_cert, tls_key)
  };

  Listeners(const supervisor::Config& config, kj::AsyncIoProvider& io,
            supervisor::EventLog::Sink logSink = {});
  ~Listeners();  // closes them, removing the socket file
  Listeners(const Listeners&) = delete;
  Listeners& operator=(const Listeners&) = delete;

  // Binds the Unix socket, the TCP listener and the Lambda HTTP API's
  // (http_listen) if configured. Throws
  // std::runtime_error with the reason (another thatchd on the socket, a
  // bad group, ...).
  void bind(kj::WaitScope& waitScope);

  // Closes them and removes the socket file; nothing may be accepting.
  void close();

  // The Cap'n Proto API's (daemon/server.h).
  std::list<Listener>& all() { return listeners_; }
  // The Lambda HTTP API's (daemon/lambda_api.h), if http_listen is set.
  Listener* http() { return http_.receiver ? &http_ : nullptr; }

 private:
  void bindUnix(kj::WaitScope& waitScope);
  void bindTcp(kj::WaitScope& waitScope);
  void bindHttp(kj::WaitScope& waitScope);
  kj::Own<kj::TlsContext> tlsServer();

  // The config thatchd started with: it reads only keys that need a
  // restart (the sockets' addresses and group, log_format).
  const supervisor::Config& config_;
  kj::AsyncIoProvider& io_;
  supervisor::EventLog log_;
  std::string socketPath_;         // to remove, once bound
  std::list<Listener> listeners_;  // at fixed addresses: the server accepts on them
  Listener http_;
};

}  // namespace thatchd
