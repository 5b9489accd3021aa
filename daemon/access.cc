#include "daemon/access.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cctype>

#include "api/wire.h"
#include "daemon/capabilities.h"
#include "supervisor/messages.h"

namespace thatchd {

namespace schema = thatch::api;

namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// 64 hex digits (config_check.cc has checked them) as 32 bytes.
std::array<unsigned char, 32> digestFromHex(const std::string& hex) {
  std::array<unsigned char, 32> digest{};
  for (size_t i = 0; i < digest.size() && 2 * i + 1 < hex.size(); ++i)
    digest[i] = static_cast<unsigned char>(hexValue(hex[2 * i]) * 16 + hexValue(hex[2 * i + 1]));
  return digest;
}

std::array<unsigned char, 32> sha256(std::string_view text) {
  std::array<unsigned char, 32> digest;
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest.data());
  return digest;
}

class LoginImpl final : public schema::Login::Server {
 public:
  LoginImpl(const Clients& clients, Peer peer,
            std::function<schema::Thatch::Client(Peer)> thatchFor, supervisor::EventLog& log)
      : clients_(clients), peer_(std::move(peer)), thatchFor_(std::move(thatchFor)), log_(log) {}

  kj::Promise<void> login(LoginContext call) override {
    if (failures_ >= kMaxFailedLogins) return refuse("too many failed logins");
    std::string_view token(call.getParams().getToken().cStr(), call.getParams().getToken().size());
    std::optional<Clients::Client> client = clients_.find(token);
    if (!client) {
      ++failures_;
      return refuse("no client has this token");
    }
    log_.write("login", {{"peer", peer_.description}, {"client", client->name}});
    Peer peer = peer_;
    peer.description += " client " + client->name;
    peer.grants = client->grants;
    auto results = call.getResults();
    results.setThatch(thatchFor_(std::move(peer)));
    results.setClient(client->name);
    return kj::READY_NOW;
  }

  // A Thatch call on the Login capability: a client that sent no token.
  DispatchCallResult dispatchCall(
      uint64_t interfaceId, uint16_t methodId,
      capnp::CallContext<capnp::AnyPointer, capnp::AnyPointer> context) override {
    if (interfaceId == capnp::typeId<schema::Login>())
      return schema::Login::Server::dispatchCall(interfaceId, methodId, context);
    ++failures_;
    return {refuse("no token"), false};
  }

 private:
  kj::Promise<void> refuse(const char* why) {
    log_.write("login_refused", {{"peer", peer_.description}, {"reason", why}});
    return supervisor::failure(kj::Exception::Type::FAILED, thatch::wire::kRefusedToken);
  }

  const Clients& clients_;
  Peer peer_;
  std::function<schema::Thatch::Client(Peer)> thatchFor_;
  supervisor::EventLog& log_;
  unsigned failures_ = 0;
};

}  // namespace

Clients::Clients(const std::vector<supervisor::ClientConfig>& clients) {
  for (const supervisor::ClientConfig& c : clients)
    entries_.push_back({{c.name, supervisor::grantsOf(c.allow)}, digestFromHex(c.tokenSha256)});
}

std::optional<Clients::Client> Clients::find(std::string_view token) const {
  std::array<unsigned char, 32> digest = sha256(token);
  const Entry* found = nullptr;
  for (const Entry& entry : entries_)
    if (CRYPTO_memcmp(entry.digest.data(), digest.data(), digest.size()) == 0) found = &entry;
  if (!found) return std::nullopt;
  return found->client;
}

bool mayScrapeMetrics(const Clients& clients, std::string_view authorization) {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size()) return false;
  for (size_t i = 0; i < kBearer.size(); ++i)  // the scheme is case-insensitive (RFC 9110)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
        std::tolower(static_cast<unsigned char>(kBearer[i])))
      return false;
  std::optional<Clients::Client> client = clients.find(authorization.substr(kBearer.size()));
  return client && client->grants.metrics;
}

schema::Login::Client makeLogin(const Clients& clients, const Peer& peer,
                                std::function<schema::Thatch::Client(Peer)> thatchFor,
                                supervisor::EventLog& log) {
  return kj::heap<LoginImpl>(clients, peer, std::move(thatchFor), log);
}

}  // namespace thatchd
