// The Thatch and Function capabilities of api/thatch.capnp, served by the
// supervisor and the registry: the RPC side of thatch, whoever the caller
// is (a connection to thatchd, or the program that embeds it).
#pragma once

#include <cstdint>
#include <string>

#include "api/thatch.capnp.h"
#include "daemon/stager.h"
#include "daemon/triggers.h"
#include "supervisor/config.h"
#include "supervisor/grants.h"
#include "supervisor/registry.h"
#include "supervisor/supervisor.h"

namespace thatchd {

// Who is calling: what thatchd logs, and what the caller may do.
struct Peer {
  std::string description;    // "uid 1000 pid 4242", "tcp 127.0.0.1:5555", "in-process"
  bool mayReadHost = false;   // may deploy from a directory on thatchd's host (root only)
  supervisor::Grants grants;  // none until a login or the socket's file mode gives some
};

// The bootstrap capability for one caller, restricted to peer.grants: the
// methods they do not grant are not served, and the functions they do not
// let it see do not exist for it.
// Deploys stage their code through `stager`, which must outlive the calls,
// as must `triggers` (a removed function's go with it).
thatch::api::Thatch::Client makeThatch(supervisor::Supervisor& supervisor,
                                       supervisor::Registry& registry,
                                       const supervisor::Config& config, Stager& stager,
                                       Triggers& triggers, Peer peer);

// The largest message a client may send: a payload or a deploy's archive,
// with room for the rest of the request.
uint64_t maxRequestBytes(const supervisor::LimitsConfig& limits);
// What a client's unread answers may come to before nothing more is read
// from it: the largest answer (result and logs, with room for the rest).
uint64_t maxQueuedAnswerBytes(const supervisor::LimitsConfig& limits);

}  // namespace thatchd
