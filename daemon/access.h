// Who a network client is: the [[client]] whose token_sha256 is the digest
// of the token it presents, and what it may do (supervisor/grants.h). The
// Login capability that trades a token for a restricted Thatch is built
// here; the restriction itself is daemon/capabilities.h's.
#pragma once

#include <array>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/thatch.capnp.h"
#include "supervisor/config.h"
#include "supervisor/event_log.h"
#include "supervisor/grants.h"

namespace thatchd {

struct Peer;

// The configured clients, their digests decoded once.
class Clients {
 public:
  struct Client {
    std::string name;
    supervisor::Grants grants;
  };

  explicit Clients(const std::vector<supervisor::ClientConfig>& clients);

  // The client whose token this is. The digest is compared with every
  // client's in constant time (CRYPTO_memcmp), none skipped, so that the
  // time taken says nothing of how close a guess came.
  std::optional<Client> find(std::string_view token) const;

 private:
  struct Entry {
    Client client;
    std::array<unsigned char, 32> digest;
  };
  std::vector<Entry> entries_;
};

// Whether an HTTP request whose Authorization header is `authorization`
// ("Bearer TOKEN") may read /metrics: a client allowed "metrics" or "admin".
bool mayScrapeMetrics(const Clients& clients, std::string_view authorization);

// Logins refused on one connection before every further one is refused
// unread: a bound on guessing, per connection.
inline constexpr unsigned kMaxFailedLogins = 3;

// The bootstrap of a connection that must log in: `thatchFor` builds the
// Thatch for the peer once its grants are known. `clients` and `log` must
// outlive it.
thatch::api::Login::Client makeLogin(const Clients& clients, const Peer& peer,
                                     std::function<thatch::api::Thatch::Client(Peer)> thatchFor,
                                     supervisor::EventLog& log);

}  // namespace thatchd
