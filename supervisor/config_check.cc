#include "supervisor/config_check.h"

#include <sys/un.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

#include "base/text.h"
#include "base/units.h"
#include "sandbox/egress_rules.h"
#include "supervisor/busy_poll.h"
#include "supervisor/grants.h"
#include "supervisor/keep_alive_choice.h"

namespace supervisor {

using base::quoted;
namespace {

// Sending ahead makes an invocation wait for one sandbox's current one: a
// bound on that wait.
constexpr std::chrono::microseconds kMaxSendAheadUnder = std::chrono::seconds(1);

// A value quoted in a message.
std::string quoted(std::string_view text) {
  return base::quoted(text, 40);
}

// Why `path` is not an absolute path; empty when it is one.
std::string pathProblem(const std::string& path) {
  if (path.find('\0') != std::string::npos) return quoted(path) + " contains a NUL byte";
  if (path.empty() || path[0] != '/') return quoted(path) + " is not an absolute path";
  return "";
}

// A cgroup below thatchd's own: relative, no "." or "..", no empty parts.
bool isCgroupSubdir(const std::string& path) {
  if (path.empty() || path.find_first_of(std::string_view("\0\n", 2)) != std::string::npos)
    return false;
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    std::string part = path.substr(start, slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (slash == std::string::npos) return true;
    start = slash + 1;
  }
}

// The portable user/group name set (POSIX), which useradd also enforces.
bool isGroupName(const std::string& name) {
  if (name.empty() || name.size() > 32 || name[0] == '-') return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-')
      return false;
  return true;
}

// "HOST:PORT", HOST a name, an IPv4 address or a bracketed IPv6 address.
bool isHostPort(const std::string& text, bool anyPort = false) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  std::string host = text.substr(0, colon), port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5) return false;
  for (char c : port)
    if (c < '0' || c > '9') return false;
  int portNumber = std::stoi(port);
  if (portNumber < (anyPort ? 0 : 1) || portNumber > 65535) return false;
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return false;
    for (char c : host.substr(1, host.size() - 2))
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
    return true;
  }
  for (char c : host)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') return false;
  return true;
}

// A dotted Python module name (ASCII identifiers).
bool isModuleName(const std::string& name) {
  if (name.empty()) return false;
  bool atStart = true;
  for (char c : name) {
    if (c == '.') {
      if (atStart) return false;
      atStart = true;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
               (!atStart && std::isdigit(static_cast<unsigned char>(c)))) {
      atStart = false;
    } else {
      return false;
    }
  }
  return !atStart;
}

class Checker {
 public:
  Checker(const KeyInfo& keys, std::vector<ConfigIssue>& issues) : keys_(keys), issues_(issues) {}

  // Records `message` against `key` unless `ok`, or unless the key has an
  // issue already (unreadable, or out of range: one issue per key is enough
  // and a second one about the same value only repeats it).
  void require(bool ok, const std::string& key, const std::string& message) {
    if (ok || !clean(key)) return;
    issues_.push_back({key, keys_.lineOf(key), message});
    reported_.insert(key);
  }
  bool clean(const std::string& key) const {
    return !keys_.unreadable.count(key) && !reported_.count(key);
  }
  bool inFile(const std::string& key) const { return keys_.lines.count(key) > 0; }

 private:
  const KeyInfo& keys_;
  std::vector<ConfigIssue>& issues_;
  std::set<std::string> reported_;
};

void checkTopLevel(const Config& c, Checker& check) {
  std::string problem = pathProblem(c.stateDir);
  check.require(problem.empty(), "state_dir", problem);
  problem = pathProblem(c.socketPath);
  check.require(problem.empty(), "socket", problem);
  check.require(c.socketPath.size() < sizeof(sockaddr_un::sun_path), "socket",
                "is " + std::to_string(c.socketPath.size()) +
                    " bytes long; a Unix socket path holds at most " +
                    std::to_string(sizeof(sockaddr_un::sun_path) - 1));
  check.require(c.socketGroup.empty() || isGroupName(c.socketGroup), "socket_group",
                "must be a group name (letters, digits, '_', '.', '-'; at most 32) or empty");
  check.require(c.tcpListen.empty() || isHostPort(c.tcpListen), "tcp_listen",
                "must be HOST:PORT (e.g. \"127.0.0.1:7070\" or \"[::1]:7070\", port 1-65535) or "
                "empty");
  check.require(c.httpListen.empty() || isHostPort(c.httpListen, true), "http_listen",
                "must be HOST:PORT (e.g. \"127.0.0.1:9001\"; port 0: any free one) or empty");
  problem = c.zygotePath.empty() ? "" : pathProblem(c.zygotePath);
  check.require(problem.empty(), "zygote",
                problem + " (leave it empty for the thatch-zygote beside thatchd)");
  check.require(isCgroupSubdir(c.cgroupSubdir), "cgroup_subdir",
                "must be a relative path below thatchd's cgroup, without '.' or '..' parts");
  check.require(c.logFormat == "text" || c.logFormat == "json", "log_format",
                "must be \"text\" or \"json\", not " + quoted(c.logFormat));
}

void checkLimits(const LimitsConfig& l, Checker& check) {
  constexpr uint64_t kMinMemory = 8ull << 20;
  check.require(l.memoryBytes >= kMinMemory, "limits.memory",
                "must be at least " + base::formatSize(kMinMemory) + ", not " +
                    base::formatSize(l.memoryBytes));
  check.require(l.timeout.count() > 0, "limits.timeout", "must be above 0s");
  check.require(l.pids >= 1, "limits.pids", "must be at least 1");
  // thatch-run's bounds: cgroup quotas are per 100 ms period, so below 1 ms
  // (0.01 cores) the kernel's accounting is coarser than the setting.
  check.require(std::isfinite(l.cpus) && l.cpus >= 0.01 && l.cpus <= 4096, "limits.cpus",
                "must be a number of cores from 0.01 to 4096, not " + tomlFloat(l.cpus));
  check.require(l.payloadBytes >= 1, "limits.payload", "must be at least 1 byte");
  check.require(l.resultBytes >= 1, "limits.result", "must be at least 1 byte");
  // The API's message limit follows the largest of payload and archive:
  // Cap'n Proto counts it in 64-bit words, and a message must fit in memory.
  constexpr uint64_t kMaxMessage = 1ull << 30;
  check.require(l.payloadBytes <= kMaxMessage, "limits.payload",
                "must be at most " + base::formatSize(kMaxMessage));
  check.require(l.archiveBytes >= 1 && l.archiveBytes <= kMaxMessage, "limits.archive",
                "must be from 1 byte to " + base::formatSize(kMaxMessage));
}

constexpr std::chrono::milliseconds kMinSpawnTimeout{1000};

void checkPoolAndHost(const Config& c, Checker& check) {
  const PoolConfig& p = c.pool;
  const HostConfig& h = c.host;
  check.require(p.concurrency >= 1, "pool.concurrency", "must be at least 1");
  check.require(p.queueLength == 0 || p.queueTimeout.count() > 0, "pool.queue_timeout",
                "must be above 0s while pool.queue_length is above 0 (queue_length = 0 turns the "
                "queue off)");
  check.require(p.sendAheadUnder <= kMaxSendAheadUnder, "pool.send_ahead_under_us",
                "must be at most 1000000 (1 s), not " + std::to_string(p.sendAheadUnder.count()));
  check.require(parseKeepAlive(p.keepAlive).has_value(), "pool.keep_alive",
                "must be one of " + keepAliveNames() + ", not " + quoted(p.keepAlive));
  check.require(h.maxSandboxes >= 1, "host.max_sandboxes", "must be at least 1");
  static_assert(BusyPoll::kMaxWindow == std::chrono::milliseconds(1), "the message says 1 ms");
  check.require(h.busyPoll <= BusyPoll::kMaxWindow, "host.busy_poll_us",
                "must be at most " + std::to_string(BusyPoll::kMaxWindow.count()) +
                    " (1 ms), not " + std::to_string(h.busyPoll.count()));
  check.require(h.spawnTimeout >= kMinSpawnTimeout, "host.spawn_timeout",
                "must be at least " + base::formatDuration(kMinSpawnTimeout) +
                    " (a healthy zygote under a burst answers a spawn in milliseconds)");

  // Cross-checks name the key the file set (`b` if both), and only when
  // neither key has an issue of its own.
  auto crossCheck = [&](bool ok, const std::string& a, const std::string& b,
                        const std::string& message) {
    if (ok || !check.clean(a) || !check.clean(b)) return;
    check.require(false, check.inFile(b) ? b : a, message);
  };
  crossCheck(p.minWarm <= p.maxWarm, "pool.min_warm", "pool.max_warm",
             "pool.max_warm (" + std::to_string(p.maxWarm) + ") is below pool.min_warm (" +
                 std::to_string(p.minWarm) + ")");
  crossCheck(p.minWarm <= h.maxWarm, "host.max_warm", "pool.min_warm",
             "pool.min_warm (" + std::to_string(p.minWarm) + ") is above host.max_warm (" +
                 std::to_string(h.maxWarm) + "): no function could keep that many warm");
  crossCheck(h.maxWarm <= h.maxSandboxes, "host.max_sandboxes", "host.max_warm",
             "host.max_warm (" + std::to_string(h.maxWarm) + ") is above host.max_sandboxes (" +
                 std::to_string(h.maxSandboxes) + "): warm sandboxes are live sandboxes");
}

// Each zygote holds a whole interpreter (~20 MiB): more than the cores
// of any host thatch runs on gains nothing.
constexpr unsigned kMaxZygotes = 64;

void checkNetwork(const NetworkConfig& n, Checker& check) {
  for (const std::string& entry : n.allow) {
    try {
      sandbox::parseEgressAllow(entry);
    } catch (const std::invalid_argument& e) {
      check.require(false, "network.allow", e.what());
    }
  }
}

// Below this, a registry could not hold even one version of a function
// of a few files.
constexpr uint64_t kMinStoredBytes = 1ull << 20;

void checkRegistry(const RegistryConfig& r, Checker& check) {
  check.require(r.keepVersions >= 1, "registry.keep_versions",
                "must be at least 1 (the newest version is always kept)");
  check.require(r.maxStoredBytes >= kMinStoredBytes, "registry.max_stored",
                "must be at least " + base::formatSize(kMinStoredBytes));
}

// A loopback HOST:PORT: 127.0.0.0/8, [::1] or localhost.
bool isLoopback(const std::string& hostPort) {
  std::string host = hostPort.substr(0, hostPort.rfind(':'));
  return host == "localhost" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

bool allOf(const std::string& text, size_t min, size_t max, bool (*ok)(char)) {
  return text.size() >= min && text.size() <= max && std::all_of(text.begin(), text.end(), ok);
}

void checkAllow(const std::vector<std::string>& allow, const std::string& key, const char* who,
                Checker& check) {
  std::string unknown;
  Grants grants;
  for (const std::string& word : allow)
    if (unknown.empty() && !addGrant(word, grants)) unknown = word;
  check.require(!allow.empty() && unknown.empty(), key,
                (unknown.empty() ? std::string("is empty") : "has " + quoted(unknown)) +
                    ": it must list what the " + who + " may do, in " + kGrantWords);
}

void checkLambda(const Config& c, Checker& check) {
  const LambdaConfig& l = c.lambda;
  check.require(allOf(l.region, 1, 32,
                      [](char ch) {
                        return std::islower(static_cast<unsigned char>(ch)) ||
                               std::isdigit(static_cast<unsigned char>(ch)) || ch == '-';
                      }),
                "lambda.region", "must be a region name such as \"us-east-1\" (a-z, 0-9, '-')");
  check.require(allOf(l.accountId, 12, 12,
                      [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)) != 0; }),
                "lambda.account_id", "must be 12 digits, as an AWS account id");
  check.require(!l.anonymous || !isHostPort(c.httpListen, true) || isLoopback(c.httpListen),
                "lambda.anonymous",
                "is for a loopback http_listen only (127.0.0.1, [::1], localhost): anyone who "
                "can reach " +
                    c.httpListen + " could deploy code");
  check.require(l.maxConnections >= 1, "lambda.max_connections", "must be at least 1");
  check.require(l.eventQueue >= 1, "lambda.event_queue", "must be at least 1");
  check.require(l.eventConcurrency >= 1, "lambda.event_concurrency", "must be at least 1");
  check.require(c.testing.scheduleClockScale >= 1 && c.testing.scheduleClockScale <= 3600,
                "testing.schedule_clock_scale", "must be 1-3600");
  check.require(c.httpListen.empty() || l.anonymous || !c.accessKeys.empty(), "http_listen",
                "no client could use it: add an [[access_key]] (or, on loopback, set "
                "lambda.anonymous = true)");
  std::set<std::string> ids;
  for (size_t i = 0; i < c.accessKeys.size(); ++i) {
    const AccessKey& key = c.accessKeys[i];
    std::string prefix = std::string(kAccessKeyKey) + "[" + std::to_string(i) + "].";
    check.require(
        allOf(key.id, 1, 128,
              [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; }),
        prefix + "id", "must be 1 to 128 of A-Z, a-z, 0-9 and '_'");
    check.require(key.id.empty() || ids.insert(key.id).second, prefix + "id",
                  "key " + quoted(key.id) + " is listed twice");
    check.require(key.secret.size() >= 16 && key.secret.size() <= 256, prefix + "secret",
                  "must be 16 to 256 characters");
    checkAllow(key.allow, prefix + "allow", "key", check);
  }
}

bool isHexDigit(char ch) {
  return std::isxdigit(static_cast<unsigned char>(ch)) != 0;
}

// Who may use the Cap'n Proto API without the socket's file mode: a
// listener no client could log in to is a mistake, and one that needs no
// token only on loopback.
void checkClients(const Config& c, Checker& check) {
  bool loopback = isHostPort(c.tcpListen) && isLoopback(c.tcpListen);
  check.require(!c.tcpWithoutToken || c.tcpListen.empty() || loopback, "tcp_without_token",
                "is for a loopback tcp_listen only (127.0.0.1, [::1], localhost): anyone who "
                "can reach " +
                    c.tcpListen + " could deploy code");
  check.require(c.tcpListen.empty() || c.tcpWithoutToken || !c.clients.empty(), "tcp_listen",
                "no client could log in: add a [[client]] (or, on loopback, set "
                "tcp_without_token = true)");
  for (auto [key, path] : {std::pair{"tls_cert", &c.tlsCert}, std::pair{"tls_key", &c.tlsKey}}) {
    std::string problem = path->empty() ? "" : pathProblem(*path);
    check.require(problem.empty(), key, problem);
  }
  check.require(c.tlsCert.empty() == c.tlsKey.empty(), c.tlsCert.empty() ? "tls_key" : "tls_cert",
                "tls_cert and tls_key go together: the certificate chain and its private key");
  check.require(c.tlsCert.empty() || !c.tcpListen.empty(), "tls_cert",
                "is for tcp_listen, which is not set");
  check.require(c.tlsHandshakeTimeout >= std::chrono::milliseconds(100) &&
                    c.tlsHandshakeTimeout <= std::chrono::minutes(5),
                "tls_handshake_timeout", "must be 100ms to 5m");
  check.require(!c.socketRequiresToken || !c.clients.empty(), "socket_requires_token",
                "no client could log in: add a [[client]]");
  std::set<std::string> names, digests;
  for (size_t i = 0; i < c.clients.size(); ++i) {
    const ClientConfig& client = c.clients[i];
    std::string prefix = std::string(kClientKey) + "[" + std::to_string(i) + "].";
    check.require(allOf(client.name, 1, 64,
                        [](char ch) {
                          return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' ||
                                 ch == '-' || ch == '.';
                        }),
                  prefix + "name", "must be 1 to 64 of A-Z, a-z, 0-9, '_', '-' and '.'");
    check.require(client.name.empty() || names.insert(client.name).second, prefix + "name",
                  "client " + quoted(client.name) + " is listed twice");
    check.require(allOf(client.tokenSha256, 64, 64, isHexDigit), prefix + "token_sha256",
                  "must be 64 hex digits: the SHA-256 of the client's token (sha256sum), never "
                  "the token");
    std::string digest = client.tokenSha256;
    for (char& ch : digest) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    check.require(digest.empty() || digests.insert(digest).second, prefix + "token_sha256",
                  "another [[client]] has the same token");
    checkAllow(client.allow, prefix + "allow", "client", check);
  }
}

void checkRuntimes(const std::vector<RuntimeConfig>& runtimes, Checker& check) {
  std::string listKey(kRuntimeKey);
  check.require(!runtimes.empty(), listKey, "must list at least one runtime");
  std::vector<std::string> known = knownRuntimeNames();
  std::string knownList;
  for (const auto& name : known) knownList += (knownList.empty() ? "" : ", ") + name;
  std::set<std::string> seen;
  for (size_t i = 0; i < runtimes.size(); ++i) {
    const RuntimeConfig& r = runtimes[i];
    std::string prefix = listKey + "[" + std::to_string(i) + "].";
    if (r.name.empty()) {
      check.require(false, prefix + "name", "missing: a runtime needs a name (" + knownList + ")");
    } else {
      bool isKnown = std::find(known.begin(), known.end(), r.name) != known.end();
      check.require(
          isKnown, prefix + "name",
          "unknown runtime " + quoted(r.name) + " (thatch-zygote knows " + knownList + ")");
      check.require(seen.insert(r.name).second, prefix + "name",
                    "runtime " + quoted(r.name) + " is listed twice");
    }
    check.require(r.zygotes >= 1 && r.zygotes <= kMaxZygotes, prefix + "zygotes",
                  "must be 1 to " + std::to_string(kMaxZygotes));
    for (const auto& module : r.imports)
      check.require(isModuleName(module), prefix + "imports",
                    quoted(module) + " is not a Python module name");
    for (const auto& dir : r.packageDirs) {
      std::string problem = pathProblem(dir);
      check.require(problem.empty(), prefix + "package_dirs", problem);
    }
  }
}

}  // namespace

std::vector<ConfigIssue> checkConfig(const Config& config, const KeyInfo& keys) {
  std::vector<ConfigIssue> issues;
  Checker checker(keys, issues);
  checkTopLevel(config, checker);
  checkLimits(config.limits, checker);
  checkPoolAndHost(config, checker);
  checkNetwork(config.network, checker);
  checkRegistry(config.registry, checker);
  checkRuntimes(config.runtimes, checker);
  checkLambda(config, checker);
  checkClients(config, checker);
  return issues;
}

std::vector<ConfigIssue> validateConfig(const Config& config) {
  return checkConfig(config, KeyInfo{});
}

}  // namespace supervisor
