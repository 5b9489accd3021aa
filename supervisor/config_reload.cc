#include "supervisor/config_reload.h"

#include <map>
#include <string_view>

#include "supervisor/config_keys.h"

namespace supervisor {
namespace {

// The keys a running thatchd takes, each with who reads it and when. A
// name ending in '.' or '[' covers every key below it.
const std::string_view kReloadable[] = {
    // Sandboxes of functions whose settings change retire
    // (Supervisor::reconfigure); the others are read per request.
    "limits.",
    // Per function at its next invocation (Admission) and pool
    // (WarmPools::setLimits: lowering destroys nothing now).
    "pool.idle_ttl",
    "pool.min_warm",
    "pool.max_warm",
    "pool.concurrency",
    "pool.queue_length",
    "pool.queue_timeout",
    "pool.send_ahead_under_us",
    // WarmPools::setHostLimits; spawn_timeout is read at each spawn.
    // (max_sandboxes sized the host limits checked at start, which the
    // zygotes inherited: it needs a restart.)
    "host.max_warm",
    "host.max_warm_memory",
    "host.spawn_timeout",
    // Registry::setRetention: from the next deploy.
    "registry.",
    // The Lambda API reads them per request; a new region or account
    // retires every sandbox (their ARN and AWS_REGION).
    "lambda.region",
    "lambda.account_id",
    "lambda.anonymous",
    "lambda.max_connections",
    "access_key[",
    // Daemon::clients(), changed in place: new logins and /metrics scrapes
    // are checked against the new list; a connection logged in keeps the
    // capabilities it was given until it closes.
    "client[",
    // Read at each TLS connection accepted.
    "tls_handshake_timeout",
};

}  // namespace

bool reloadable(const std::string& key) {
  for (std::string_view entry : kReloadable) {
    bool prefix = entry.back() == '.' || entry.back() == '[';
    if (prefix ? std::string_view(key).starts_with(entry) : key == entry) return true;
  }
  return false;
}

ConfigChange compareConfigs(const Config& running, const Config& next) {
  std::vector<std::pair<std::string, std::string>> before = renderKeys(running);
  std::vector<std::pair<std::string, std::string>> after = renderKeys(next);
  std::map<std::string, std::string> old(before.begin(), before.end());
  ConfigChange change;
  auto differs = [&change](const std::string& key) {
    change.changed.push_back(key);
    if (!reloadable(key)) change.needRestart.push_back(key);
  };
  for (const auto& [key, value] : after) {
    auto it = old.find(key);
    if (it == old.end() || it->second != value) differs(key);
    if (it != old.end()) old.erase(it);
  }
  for (const auto& [key, value] : before)  // removed entries, in the old file's order
    if (old.count(key)) differs(key);
  return change;
}

}  // namespace supervisor
