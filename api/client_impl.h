// What a thatch::Thatch holds: a Cap'n Proto client of api/thatch.capnp,
// over a connection to thatchd (api/client.cc) or straight to a daemon in
// this process (daemon/embedded.cc). Internal: not installed.
#pragma once

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/compat/tls.h>

#include <map>
#include <memory>
#include <string>

#include "api/thatch.capnp.h"
#include "thatch/thatch.h"

namespace thatch {

// Declaration order is teardown order, reversed: the capabilities go
// before the connection or the daemon that serves them, and the event loop
// goes last.
struct Thatch::Impl {
  // What serves the calls in process, owned here so that it stops after
  // the capabilities and before the loop.
  struct Local {
    virtual ~Local() noexcept(false) = default;  // kj destructors may throw
  };

  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::Own<kj::TlsContext> tls;  // for tls: addresses; outlives the stream
  // Connected to a thatchd:
  kj::Own<kj::AsyncIoStream> stream;
  kj::Own<capnp::TwoPartyVatNetwork> network;
  kj::Own<capnp::RpcSystem<capnp::rpc::twoparty::VatId>> rpc;
  // In process:
  std::unique_ptr<Local> local;

  bool readsDirectoriesInPlace = false;  // in process: directories are not sent as archives
  api::Thatch::Client thatch = nullptr;
  std::map<std::string, api::Function::Client> functions;  // by name, from get()

  // The function named `name`, pipelined: calls on it wait for the lookup,
  // and fail with its error if there is no such function.
  api::Function::Client function(const std::string& name);

  // Speaks Cap'n Proto on `connection`, with thatchd's Thatch as `thatch`.
  void connect(kj::Own<kj::AsyncIoStream> connection);
  // Trades `token` for the Thatch its client may use: thatchd's bootstrap
  // is a Login then (unless the socket needs no token). Throws Error.
  void logIn(const std::string& token);
};

}  // namespace thatch
