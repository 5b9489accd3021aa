// thatchd's configuration: plain values read from a TOML file
// (docs/configuration.md lists every key). Parsing checks everything up
// front and reports every problem at once, so that an operator fixes a file
// in one pass instead of one restart per typo. config_keys.cc reads and
// renders the keys, config_check.cc checks the values.
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace supervisor {

// Per-invocation defaults for functions that do not set them.
struct LimitsConfig {
  uint64_t memoryBytes = 128ull << 20;
  std::chrono::milliseconds timeout{3000};
  uint64_t pids = 64;
  double cpus = 1.0;  // cores, CPU quota
  uint64_t payloadBytes = 6ull << 20;
  uint64_t resultBytes = 6ull << 20;
  uint64_t logBytes = 64ull << 10;
  uint64_t archiveBytes = 64ull << 20;  // a deploy's archive, as sent over the API
  bool operator==(const LimitsConfig&) const = default;
};

// Per function version, unless the function overrides.
struct PoolConfig {
  std::chrono::seconds idleTtl{600};  // 10 minutes, as AWS and Azure use
  unsigned minWarm = 0;
  unsigned maxWarm = 8;
  unsigned concurrency = 8;
  unsigned queueLength = 64;  // 0: no queue, over `concurrency` fails at once
  std::chrono::milliseconds queueTimeout{10000};
  // A queued invocation goes ahead into a busy sandbox's channel when that
  // sandbox's invocation, and the one before it, ran for less than this
  // (docs/thatching.md, "Sending ahead"); 0: never.
  std::chrono::microseconds sendAheadUnder{1000};
  bool freezeIdle = false;
  std::string keepAlive = "ttl";  // a name of supervisor/keep_alive_choice.h
  bool operator==(const PoolConfig&) const = default;
};

// Host-wide caps.
struct HostConfig {
  unsigned maxWarm = 256;
  uint64_t maxWarmMemoryBytes = 4ull << 30;
  unsigned maxSandboxes = 512;  // live sandboxes, warm or busy
  unsigned maxRunning = 0;      // short calls running at once (Admission); 0: one per core
  std::chrono::microseconds busyPoll{100};  // supervisor/busy_poll.h; 0: off
  // A zygote that answers none of its spawn requests for this long is hung:
  // killed and replaced (supervisor/zygote_slots.h).
  std::chrono::milliseconds spawnTimeout{10000};
  bool operator==(const HostConfig&) const = default;
};

// host.max_running, or (0) the cores this process may run on.
unsigned hostConcurrency(const HostConfig& host);

// The egress firewall thatchd installs (sandbox/egress_rules.h,
// docs/network.md).
struct NetworkConfig {
  bool firewall = true;            // false: the host's own rules decide
  std::vector<std::string> allow;  // "ADDRESS[/PREFIX][:PORT]": let through
  bool operator==(const NetworkConfig&) const = default;
};

// Knobs for thatch's own tests, which force a path rather than hope for a
// race; a host that serves leaves them off.
struct TestingConfig {
  // Every answer that fits comes through its sandbox's shared page, and the
  // loop polls for it as long as its invocation waits (BusyPoll).
  bool answerPageAlways = false;
  // Each zygote stops itself (SIGSTOP) after forking a sandbox and before
  // saying so: a test kills it there, mid-spawn.
  bool zygoteStopsAfterFork = false;
  // Schedules' wall clock runs this many times as fast from thatchd's start
  // (60: a minute a second), so that tests and benches of rate(1 minute)
  // do not wait minutes. 1 on a host that serves.
  unsigned scheduleClockScale = 1;
  bool operator==(const TestingConfig&) const = default;
};

// [registry]: what the state directory keeps of deployed functions.
struct RegistryConfig {
  unsigned keepVersions = 5;              // of each function, the newest
  uint64_t maxStoredBytes = 10ull << 30;  // all versions together (Registry::storedBytes)
  bool operator==(const RegistryConfig&) const = default;
};

// [lambda]: thatchd's Lambda-compatible HTTP API (daemon/lambda_api.h,
// docs/lambda.md), served when http_listen is set.
struct LambdaConfig {
  std::string region = "us-east-1";        // in ARNs, and AWS_REGION in every sandbox
  std::string accountId = "000000000000";  // 12 digits, in ARNs
  // Requests without a signature may do everything: only on a loopback
  // http_listen, for development on one machine.
  bool anonymous = false;
  unsigned maxConnections = 1024;  // open at once; past that new ones are closed
  // Event (asynchronous) invocations accepted and not yet done, kept in the
  // state directory; past that an Event invoke is TooManyRequests.
  unsigned eventQueue = 10000;
  unsigned eventConcurrency = 16;  // Event invocations running at once
  bool operator==(const LambdaConfig&) const = default;
};

// An [[access_key]]: a client of the HTTP API signs its requests (AWS
// Signature Version 4) with the secret of a key, and may do what `allow`
// says: "invoke" (Invoke), "read" (Get*, List*), "write" (Create*, Update*,
// Delete*, Publish*).
struct AccessKey {
  std::string id;
  std::string secret;
  std::vector<std::string> allow;
  bool operator==(const AccessKey&) const = default;
};

// A [[client]] of the Cap'n Proto API (daemon/access.h): it logs in with a
// token whose SHA-256 is token_sha256 (the token itself is never stored)
// and may do what `allow` says, in the vocabulary of supervisor/grants.h.
struct ClientConfig {
  std::string name;
  std::string tokenSha256;  // 64 hex digits
  std::vector<std::string> allow;
  bool operator==(const ClientConfig&) const = default;
};

struct RuntimeConfig {
  std::string name;        // "python3.11" or "python3.11-numpy" (what thatch-zygote knows)
  unsigned stemCells = 0;  // at most this many pre-forked sandboxes kept ready (in all)
  std::vector<std::string> imports;      // extra modules to pre-import
  std::vector<std::string> packageDirs;  // read-only dirs added to sys.path
  unsigned zygotes = 1;                  // zygotes forking its sandboxes side by side
  bool operator==(const RuntimeConfig&) const = default;
};

struct Config {
  std::string stateDir = "/var/lib/thatch";
  std::string socketPath = "/run/thatch/thatchd.sock";
  std::string socketGroup;  // empty: the socket keeps root's group; mode is 0660
  std::string tcpListen;    // "" = off (default); else "HOST:PORT"
  std::string httpListen;   // the Lambda HTTP API: "" = off (default); "HOST:PORT"
  // Clients of the Unix socket log in with a token as those of tcp_listen
  // do; off, its file mode is its only guard.
  bool socketRequiresToken = false;
  // tcp_listen serves everything without a token: a loopback address only.
  bool tcpWithoutToken = false;
  // PEM files: with both, tcp_listen speaks TLS (kj-tls) with this
  // certificate chain and private key; empty: plain TCP.
  std::string tlsCert;
  std::string tlsKey;
  // A TLS client that has not finished its handshake by then is dropped:
  // each one holds a descriptor and some memory until it does.
  std::chrono::milliseconds tlsHandshakeTimeout{10000};
  std::string zygotePath;                // "" = thatch-zygote next to the thatchd binary
  std::string cgroupSubdir = "thatchd";  // its own: it removes whatever it finds there at start
  std::vector<RuntimeConfig> runtimes;   // default: python3.11 (stemCells 16) and
                                         // python3.11-numpy (stemCells 0)
  LimitsConfig limits;
  PoolConfig pool;
  HostConfig host;
  NetworkConfig network;
  RegistryConfig registry;
  LambdaConfig lambda;
  std::vector<AccessKey> accessKeys;
  std::vector<ClientConfig> clients;
  TestingConfig testing;
  std::string logFormat = "text";  // "text" or "json"
  bool operator==(const Config&) const = default;
};

// The built-in configuration; scripts/thatchd.toml spells out the same.
Config defaultConfig();

// thatch-zygote in the running program's directory: what `zygote = ""` means.
std::string zygoteBesideThisProgram();

// The runtimes thatch-zygote knows. A copy of runtime::builtinRuntimeNames(),
// which sits behind Python.h and is linked only into the zygote.
std::vector<std::string> knownRuntimeNames();

struct ConfigIssue {
  std::string key;  // dotted, e.g. "pool.max_warm" or "runtime[1].name"; "" for syntax
  int line = 0;     // 1-based; 0 if unknown
  std::string message;
  bool operator==(const ConfigIssue&) const = default;
};

// A configuration that cannot be used. what() lists every issue, one per line,
// as "FILE:LINE: KEY: MESSAGE" (": LINE" left out when 0, "KEY: " when empty).
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string source, std::vector<ConfigIssue> issues);
  const std::string& source() const { return source_; }
  const std::vector<ConfigIssue>& issues() const { return issues_; }

 private:
  std::string source_;
  std::vector<ConfigIssue> issues_;
};

// Parses a TOML document (`sourceName` only names it in messages). Keys left
// out keep their defaults; any [[runtime]] replaces the default runtime list.
// Throws ConfigError with every issue found (syntax errors stop the parse, so
// a syntax error comes alone).
Config parseConfig(std::string_view toml, const std::string& sourceName);

// Reads `path` (at most 1 MiB) then parseConfig(). An unreadable file is a
// ConfigError too, naming the failed call and errno.
Config loadConfig(const std::string& path);

// Range and consistency checks, whatever built the config (parseConfig runs
// them too); every issue has line 0. Empty when the config is usable.
std::vector<ConfigIssue> validateConfig(const Config& config);

// The config as TOML, with every key. For a config that validates,
// parseConfig(renderConfig(c)) == c.
std::string renderConfig(const Config& config);

}  // namespace supervisor
