// thatchd's configuration: defaults, every key, round trips through
// renderConfig(), every issue reported at once with its key and line (the
// size and duration syntax itself: tests/unit/units_test.cc).
#include "supervisor/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <climits>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "supervisor/config_keys.h"
#include "supervisor/config_reload.h"
#include "tests/testing.h"

namespace supervisor {
namespace {

using namespace std::chrono_literals;
using testing_util::TempDir;
using testing_util::writeFile;

// Equal configs, and on failure the two as TOML (readable, unlike bytes).
void expectSameConfig(const Config& actual, const Config& expected) {
  EXPECT_TRUE(actual == expected) << "actual:\n"
                                  << renderConfig(actual) << "\nexpected:\n"
                                  << renderConfig(expected);
}

// The issues parseConfig() reports for `toml` (none if it parses).
std::vector<ConfigIssue> issuesOf(const std::string& toml) {
  try {
    parseConfig(toml, "test.toml");
  } catch (const ConfigError& error) {
    EXPECT_FALSE(error.issues().empty());
    return error.issues();
  }
  return {};
}

std::string describe(const std::vector<ConfigIssue>& issues) {
  std::string out;
  for (const auto& issue : issues)
    out += issue.key + " @" + std::to_string(issue.line) + ": " + issue.message + "\n";
  return out;
}

// `toml` has exactly one issue, on `key` at `line`, whose message contains
// `fragment`.
void expectOneIssue(const std::string& toml, const std::string& key, int line,
                    const std::string& fragment) {
  SCOPED_TRACE(toml);
  std::vector<ConfigIssue> issues = issuesOf(toml);
  ASSERT_EQ(issues.size(), 1u) << describe(issues);
  EXPECT_EQ(issues[0].key, key);
  EXPECT_EQ(issues[0].line, line);
  EXPECT_NE(issues[0].message.find(fragment), std::string::npos) << issues[0].message;
}

// scripts/thatchd.toml: tests run from the repository's root; the binary sits
// in build/tests/ when they do not.
std::string shippedConfigPath() {
  std::string fromHere = "scripts/thatchd.toml";
  if (testing_util::exists(fromHere)) return fromHere;
  return testing_util::testBinDir() + "/../../scripts/thatchd.toml";
}

// A config with every value away from its default.
Config everythingChanged() {
  Config c;
  c.stateDir = "/srv/thatch state/\"quoted\"\\back";
  c.socketPath = "/run/t.sock";
  c.socketGroup = "thatch-users";
  c.tcpListen = "[::1]:7070";
  c.tcpWithoutToken = true;
  c.tlsCert = "/etc/thatch/cert.pem";
  c.tlsKey = "/etc/thatch/key.pem";
  c.tlsHandshakeTimeout = 2500ms;
  c.socketRequiresToken = true;
  c.clients = {{"ci.deploy-1", std::string(64, 'f'), {"invoke:*", "deploy", "metrics"}}};
  c.zygotePath = "/opt/thatch/bin/thatch-zygote";
  c.cgroupSubdir = "thatch/sandboxes";
  c.runtimes = {{"python3.11-numpy", 3, {"yaml", "numpy.linalg"}, {"/opt/py", "/opt/é"}},
                {"python3.11", 0, {}, {}}};
  c.limits = {(3ull << 29) + 1, 1500ms, 7, 0.3, 1000, 1ull << 40, 0};
  c.pool = {90s, 1, 2, 3, 0, 250ms, 20us, false};
  c.host = {10, 5ull << 30, 11};
  c.network.firewall = false;
  c.network.allow = {"10.201.0.1:53", "192.0.2.0/24"};
  c.registry = {2, 3ull << 30};
  c.testing.answerPageAlways = true;
  c.testing.scheduleClockScale = 60;
  c.logFormat = "json";
  return c;
}

TEST(ConfigDefaults, HaveTheDocumentedValues) {
  Config c = defaultConfig();
  EXPECT_EQ(c.stateDir, "/var/lib/thatch");
  EXPECT_EQ(c.socketPath, "/run/thatch/thatchd.sock");
  EXPECT_EQ(c.socketGroup, "");
  EXPECT_EQ(c.tcpListen, "");
  EXPECT_FALSE(c.socketRequiresToken);
  EXPECT_FALSE(c.tcpWithoutToken);
  EXPECT_TRUE(c.clients.empty());
  EXPECT_EQ(c.zygotePath, "");
  EXPECT_EQ(c.cgroupSubdir, "thatchd");
  EXPECT_EQ(c.logFormat, "text");
  EXPECT_EQ(c.limits.memoryBytes, 128ull << 20);
  EXPECT_EQ(c.limits.timeout, 3s);
  EXPECT_EQ(c.limits.pids, 64u);
  EXPECT_EQ(c.limits.cpus, 1.0);
  EXPECT_EQ(c.limits.payloadBytes, 6ull << 20);
  EXPECT_EQ(c.limits.resultBytes, 6ull << 20);
  EXPECT_EQ(c.limits.logBytes, 64ull << 10);
  EXPECT_EQ(c.pool.idleTtl, 10min);
  EXPECT_EQ(c.pool.minWarm, 0u);
  EXPECT_EQ(c.pool.maxWarm, 8u);
  EXPECT_EQ(c.pool.concurrency, 8u);
  EXPECT_EQ(c.pool.queueLength, 64u);
  EXPECT_EQ(c.pool.queueTimeout, 10s);
  EXPECT_EQ(c.pool.sendAheadUnder, 1000us);
  EXPECT_FALSE(c.pool.freezeIdle);
  EXPECT_EQ(c.host.maxWarm, 256u);
  EXPECT_EQ(c.host.maxWarmMemoryBytes, 4ull << 30);
  EXPECT_EQ(c.host.maxSandboxes, 512u);
  EXPECT_EQ(c.host.busyPoll, 100us);
  EXPECT_EQ(c.host.spawnTimeout, 10s);
  EXPECT_TRUE(c.network.firewall);
  EXPECT_TRUE(c.network.allow.empty());
  EXPECT_EQ(c.registry.keepVersions, 5u);
  EXPECT_EQ(c.registry.maxStoredBytes, 10ull << 30);
  ASSERT_EQ(c.runtimes.size(), 2u);
  EXPECT_EQ(c.runtimes[0], (RuntimeConfig{"python3.11", 16, {}, {}}));
  EXPECT_EQ(c.runtimes[1], (RuntimeConfig{"python3.11-numpy", 0, {}, {}}));
  EXPECT_TRUE(validateConfig(c).empty()) << describe(validateConfig(c));
}

TEST(ConfigDefaults, AnEmptyFileIsTheDefault) {
  expectSameConfig(parseConfig("", "empty.toml"), defaultConfig());
  expectSameConfig(parseConfig("# nothing\n\n[limits]\n[pool]\n[host]\n", "tables.toml"),
                   defaultConfig());
}

TEST(ConfigDefaults, TheShippedFileIsExactlyTheDefault) {
  expectSameConfig(loadConfig(shippedConfigPath()), defaultConfig());
}

TEST(ConfigDefaults, TheShippedFileSetsEveryKey) {
  // It is documentation as much as defaults: each key the parser knows is in
  // it, so that an operator can find and change any of them.
  std::string shipped = testing_util::readFile(shippedConfigPath());
  std::string rendered = renderConfig(defaultConfig());
  size_t start = 0;
  while (start < rendered.size()) {
    size_t end = rendered.find('\n', start);
    std::string line = rendered.substr(start, end - start);
    start = end + 1;
    if (line.empty()) continue;
    std::string key = line.substr(0, line.find(' '));
    EXPECT_NE(shipped.find("\n" + key), std::string::npos) << key;
  }
}

TEST(ConfigRender, DefaultsRoundTrip) {
  expectSameConfig(parseConfig(renderConfig(defaultConfig()), "rendered"), defaultConfig());
}

TEST(ConfigRender, EveryValueRoundTrips) {
  Config c = everythingChanged();
  ASSERT_TRUE(validateConfig(c).empty()) << describe(validateConfig(c));
  std::string rendered = renderConfig(c);
  expectSameConfig(parseConfig(rendered, "rendered"), c);
  // Rendering is stable: the second generation is the same text.
  EXPECT_EQ(renderConfig(parseConfig(rendered, "rendered")), rendered);
}

TEST(ConfigRender, CpusRoundTripExactly) {
  for (double cpus : {0.01, 0.1, 0.3, 1.0 / 3, 2.0, 2.5, 4096.0, 1.0000000000000002}) {
    Config c = defaultConfig();
    c.limits.cpus = cpus;
    EXPECT_EQ(parseConfig(renderConfig(c), "rendered").limits.cpus, cpus) << renderConfig(c);
  }
}

TEST(ConfigRender, ShowsUnits) {
  std::string rendered = renderConfig(defaultConfig());
  EXPECT_NE(rendered.find("memory = \"128MiB\"\n"), std::string::npos) << rendered;
  EXPECT_NE(rendered.find("idle_ttl = \"10m\"\n"), std::string::npos) << rendered;
  EXPECT_NE(rendered.find("keep_alive = \"ttl\"\n"), std::string::npos) << rendered;
  EXPECT_NE(rendered.find("cpus = 1.0\n"), std::string::npos) << rendered;
  EXPECT_NE(rendered.find("[[runtime]]\nname = \"python3.11\"\n"), std::string::npos) << rendered;
}

TEST(ConfigParse, ReadsEveryKey) {
  Config c = parseConfig(R"(
state_dir = "/srv/thatch"
socket = "/run/t.sock"
socket_group = "thatch"
tcp_listen = "127.0.0.1:7070"
socket_requires_token = true
zygote = "/opt/thatch-zygote"
cgroup_subdir = "thatch/fn"
log_format = "json"

[limits]
memory = "256M"
timeout = "1.5s"
pids = 32
cpus = 0.5
payload = 1048576
result = "2MiB"
logs = "0"
archive = "8MiB"

[pool]
idle_ttl = "1h"
min_warm = 1
max_warm = 4
concurrency = 2
queue_length = 0
queue_timeout = "500ms"
send_ahead_under_us = 0
freeze_idle = false
keep_alive = "histogram"

[host]
max_warm = 100
max_warm_memory = "1.5G"
max_sandboxes = 200
busy_poll_us = 0
spawn_timeout = "2500ms"

[network]
firewall = false
allow = ["10.201.0.1:53", "192.0.2.0/24"]

[registry]
keep_versions = 1
max_stored = "2GiB"

[testing]
answer_page_always = true

[[runtime]]
name = "python3.11-numpy"
stem_cells = 1
imports = ["yaml", "email.mime.text"]
package_dirs = ["/opt/packages"]

[[client]]
name = "ci"
token_sha256 = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
allow = ["invoke:hello", "deploy"]
)",
                         "every.toml");
  EXPECT_TRUE(c.socketRequiresToken);
  ASSERT_EQ(c.clients.size(), 1u);
  EXPECT_EQ(c.clients[0].name, "ci");
  EXPECT_EQ(c.clients[0].tokenSha256,
            "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF");
  EXPECT_EQ(c.clients[0].allow, (std::vector<std::string>{"invoke:hello", "deploy"}));
  EXPECT_EQ(c.stateDir, "/srv/thatch");
  EXPECT_EQ(c.socketPath, "/run/t.sock");
  EXPECT_EQ(c.socketGroup, "thatch");
  EXPECT_EQ(c.tcpListen, "127.0.0.1:7070");
  EXPECT_EQ(c.zygotePath, "/opt/thatch-zygote");
  EXPECT_EQ(c.cgroupSubdir, "thatch/fn");
  EXPECT_EQ(c.logFormat, "json");
  EXPECT_EQ(c.limits.memoryBytes, 256ull << 20);
  EXPECT_EQ(c.limits.timeout, 1500ms);
  EXPECT_EQ(c.limits.pids, 32u);
  EXPECT_EQ(c.limits.cpus, 0.5);
  EXPECT_EQ(c.limits.payloadBytes, 1048576u);
  EXPECT_EQ(c.limits.resultBytes, 2ull << 20);
  EXPECT_EQ(c.limits.logBytes, 0u);
  EXPECT_EQ(c.limits.archiveBytes, 8ull << 20);
  EXPECT_EQ(c.pool.idleTtl, 1h);
  EXPECT_EQ(c.pool.minWarm, 1u);
  EXPECT_EQ(c.pool.maxWarm, 4u);
  EXPECT_EQ(c.pool.concurrency, 2u);
  EXPECT_EQ(c.pool.queueLength, 0u);
  EXPECT_EQ(c.pool.queueTimeout, 500ms);
  EXPECT_EQ(c.pool.keepAlive, "histogram");
  EXPECT_EQ(c.pool.sendAheadUnder, 0us);
  EXPECT_FALSE(c.pool.freezeIdle);
  EXPECT_EQ(c.host.maxWarm, 100u);
  EXPECT_EQ(c.host.maxWarmMemoryBytes, 3ull << 29);
  EXPECT_EQ(c.host.maxSandboxes, 200u);
  EXPECT_EQ(c.host.busyPoll, 0us);
  EXPECT_EQ(c.host.spawnTimeout, 2500ms);
  EXPECT_FALSE(c.network.firewall);
  EXPECT_EQ(c.network.allow, (std::vector<std::string>{"10.201.0.1:53", "192.0.2.0/24"}));
  EXPECT_EQ(c.registry.keepVersions, 1u);
  EXPECT_EQ(c.registry.maxStoredBytes, 2ull << 30);
  EXPECT_TRUE(c.testing.answerPageAlways);
  ASSERT_EQ(c.runtimes.size(), 1u);
  EXPECT_EQ(c.runtimes[0],
            (RuntimeConfig{"python3.11-numpy", 1, {"yaml", "email.mime.text"}, {"/opt/packages"}}));
}

TEST(ConfigParse, ReadsTheLambdaApiAndItsAccessKeys) {
  Config c = parseConfig(R"(http_listen = "127.0.0.1:9001"
[lambda]
region = "eu-west-3"
account_id = "123456789012"
anonymous = true
event_queue = 50
[[access_key]]
id = "AKIDREADER"
secret = "0123456789abcdef"
allow = ["read"]
[[access_key]]
id = "AKIDDEPLOYER"
secret = "fedcba9876543210fedcba"
allow = ["invoke", "read", "write"]
)",
                         "t.toml");
  EXPECT_EQ(c.httpListen, "127.0.0.1:9001");
  EXPECT_EQ(c.lambda.region, "eu-west-3");
  EXPECT_EQ(c.lambda.accountId, "123456789012");
  EXPECT_TRUE(c.lambda.anonymous);
  EXPECT_EQ(c.lambda.eventQueue, 50u);
  ASSERT_EQ(c.accessKeys.size(), 2u);
  EXPECT_EQ(c.accessKeys[0], (AccessKey{"AKIDREADER", "0123456789abcdef", {"read"}}));
  EXPECT_EQ(c.accessKeys[1].allow, (std::vector<std::string>{"invoke", "read", "write"}));
  EXPECT_EQ(parseConfig(renderConfig(c), "rendered"), c);
}

TEST(ConfigParse, KeysLeftOutKeepTheirDefaults) {
  Config c = parseConfig("[pool]\nmax_warm = 3\n", "one.toml");
  Config expected = defaultConfig();
  expected.pool.maxWarm = 3;
  expectSameConfig(c, expected);
}

TEST(ConfigParse, AnyRuntimeReplacesTheDefaultList) {
  Config c = parseConfig("[[runtime]]\nname = \"python3.11\"\n", "one-runtime.toml");
  ASSERT_EQ(c.runtimes.size(), 1u);
  // Its stem_cells is the field's default (0), not the default list's 16.
  EXPECT_EQ(c.runtimes[0], (RuntimeConfig{"python3.11", 0, {}, {}}));

  Config two = parseConfig(
      "[[runtime]]\nname = \"python3.11-numpy\"\n[[runtime]]\nname = \"python3.11\"\n"
      "stem_cells = 4\n",
      "two.toml");
  ASSERT_EQ(two.runtimes.size(), 2u);
  EXPECT_EQ(two.runtimes[0].name, "python3.11-numpy");  // in the file's order
  EXPECT_EQ(two.runtimes[1].name, "python3.11");
  EXPECT_EQ(two.runtimes[1].stemCells, 4u);
}

TEST(ConfigParse, InlineRuntimeTablesReadTheSame) {
  Config c = parseConfig("runtime = [{ name = \"python3.11\", stem_cells = 1 }]\n", "inline.toml");
  ASSERT_EQ(c.runtimes.size(), 1u);
  EXPECT_EQ(c.runtimes[0], (RuntimeConfig{"python3.11", 1, {}, {}}));
}

TEST(ConfigParse, DottedKeysReadTheSame) {
  Config c = parseConfig("limits.memory = \"1G\"\npool.min_warm = 3\n", "dotted.toml");
  EXPECT_EQ(c.limits.memoryBytes, 1ull << 30);
  EXPECT_EQ(c.pool.minWarm, 3u);
}

TEST(ConfigParse, FreezeIdleIsAcceptedAndRendered) {
  Config c = parseConfig("[pool]\nfreeze_idle = true\n", "freeze.toml");
  EXPECT_TRUE(c.pool.freezeIdle);
  EXPECT_TRUE(validateConfig(c).empty());
  EXPECT_EQ(parseConfig(renderConfig(c), "rendered.toml"), c);
}

TEST(ConfigParse, AcceptsBoundaryValues) {
  Config c = parseConfig(R"(
[limits]
memory = "8MiB"
cpus = 4096
timeout = "1ms"
pids = 1
[pool]
queue_length = 0
queue_timeout = "0s"
idle_ttl = "0s"
min_warm = 0
max_warm = 0
concurrency = 1
[host]
max_warm = 0
max_sandboxes = 1
max_warm_memory = 0
)",
                         "bounds.toml");
  EXPECT_EQ(c.limits.memoryBytes, 8ull << 20);
  EXPECT_EQ(c.limits.cpus, 4096.0);
  EXPECT_EQ(c.limits.timeout, 1ms);
  EXPECT_EQ(c.pool.queueLength, 0u);  // no queue: a queue timeout of 0 is then fine
  EXPECT_EQ(c.pool.idleTtl, 0s);
  EXPECT_EQ(c.host.maxWarm, 0u);
  EXPECT_EQ(c.host.maxWarmMemoryBytes, 0u);
}

TEST(ConfigErrors, UnknownTopLevelKeyNamesItsLine) {
  expectOneIssue("state_dir = \"/x\"\n\nstate_dri = \"/y\"\n", "state_dri", 3,
                 "unknown key (did you mean 'state_dir'?)");
  expectOneIssue("colour = \"blue\"\n", "colour", 1, "unknown key");
  expectOneIssue("# header\n[limit]\nmemory = \"1G\"\n", "limit", 2, "did you mean 'limits'?");
  // A quoted key can hold anything; the report stays one line per issue.
  try {
    parseConfig("\"bad\\nkey\\u0007\" = 1\n", "odd.toml");
    FAIL() << "parsed";
  } catch (const ConfigError& error) {
    ASSERT_EQ(error.issues().size(), 1u);
    EXPECT_EQ(error.issues()[0].key, "bad\\x0akey\\x07");
    EXPECT_EQ(std::string(error.what()), "odd.toml:1: bad\\x0akey\\x07: unknown key");
  }
}

TEST(ConfigErrors, UnknownKeyInATableNamesItsLine) {
  expectOneIssue("[limits]\nmemory = \"1G\"\nmemroy = \"2G\"\n", "limits.memroy", 3,
                 "did you mean 'memory'?");
  expectOneIssue("[pool]\n\n\nttl = \"1m\"\n", "pool.ttl", 4, "unknown key");
  expectOneIssue("[host]\nmax_warm = 1\n[host.extra]\n", "host.extra", 3, "unknown key");
}

TEST(ConfigErrors, UnknownKeyInARuntimeNamesItsLine) {
  expectOneIssue(
      "[[runtime]]\nname = \"python3.11\"\n[[runtime]]\nname = \"python3.11-numpy\"\n"
      "stem_cell = 1\n",
      "runtime[1].stem_cell", 5, "did you mean 'stem_cells'?");
}

TEST(ConfigErrors, ReportsEveryIssueAtOnce) {
  const std::string toml = R"(state_dir = "var/lib/thatch"
bogus = 1
[limits]
memory = "4M"
timeout = "0s"
cpus = "lots"
[pool]
concurrency = 0
min_warm = 9
[[runtime]]
name = "python2"
)";
  std::vector<ConfigIssue> issues = issuesOf(toml);
  std::vector<ConfigIssue> expectedKeys = {
      {"state_dir", 1, ""},     {"bogus", 2, ""},
      {"limits.memory", 4, ""}, {"limits.timeout", 5, ""},
      {"limits.cpus", 6, ""},   {"pool.concurrency", 8, ""},
      {"pool.min_warm", 9, ""}, {"runtime[0].name", 11, ""},
  };
  ASSERT_EQ(issues.size(), expectedKeys.size()) << describe(issues);
  for (size_t i = 0; i < issues.size(); ++i) {
    EXPECT_EQ(issues[i].key, expectedKeys[i].key) << describe(issues);
    EXPECT_EQ(issues[i].line, expectedKeys[i].line) << describe(issues);
  }
  try {
    parseConfig(toml, "/etc/thatch/thatchd.toml");
    FAIL() << "parsed";
  } catch (const ConfigError& error) {
    std::string what = error.what();
    EXPECT_EQ(error.source(), "/etc/thatch/thatchd.toml");
    EXPECT_EQ(std::count(what.begin(), what.end(), '\n'), 7) << what;
    EXPECT_EQ(what.substr(0, what.find('\n')),
              "/etc/thatch/thatchd.toml:1: state_dir: 'var/lib/thatch' is not an absolute path");
    EXPECT_NE(what.find("\n/etc/thatch/thatchd.toml:4: limits.memory: must be at least 8MiB, "
                        "not 4MiB\n"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("\n/etc/thatch/thatchd.toml:11: runtime[0].name: unknown runtime "
                        "'python2' (thatch-zygote knows python3.11, python3.11-numpy)"),
              std::string::npos)
        << what;
  }
}

TEST(ConfigErrors, WrongTypes) {
  struct Case {
    std::string toml, key, fragment;
  };
  const Case cases[] = {
      {"state_dir = 5", "state_dir", "must be a string, not an integer"},
      {"socket = true", "socket", "must be a string, not a boolean"},
      {"log_format = [\"text\"]", "log_format", "must be a string, not an array"},
      {"limits = 3", "limits", "must be a table ([limits]), not an integer"},
      {"pool = \"big\"", "pool", "must be a table ([pool])"},
      {"[limits]\nmemory = 1.5e9", "limits.memory", "must be a size"},
      {"[limits]\nmemory = true", "limits.memory", "must be a size"},
      {"[limits]\ntimeout = 3000", "limits.timeout", "a bare number could mean"},
      {"[limits]\ntimeout = 1979-05-27", "limits.timeout", "not a date"},
      {"[limits]\npids = \"64\"", "limits.pids", "must be an integer, not a string"},
      {"[limits]\npids = 6.4", "limits.pids", "must be an integer, not a float"},
      {"[limits]\ncpus = \"1\"", "limits.cpus", "must be a number, not a string"},
      {"[pool]\nfreeze_idle = \"yes\"", "pool.freeze_idle", "must be true or false"},
      {"[pool]\nfreeze_idle = 1", "pool.freeze_idle", "must be true or false"},
      {"[pool]\nkeep_alive = 1", "pool.keep_alive", "must be a string, not an integer"},
      {"[pool]\nidle_ttl = 600", "pool.idle_ttl", "must be a string with a unit"},
      {"[host]\nmax_warm = {}", "host.max_warm", "must be an integer, not a table"},
      {"runtime = \"python3.11\"", "runtime", "must be an array of tables"},
      {"[runtime]\nname = \"python3.11\"", "runtime", "must be an array of tables"},
      {"runtime = [3]", "runtime[0]", "must be a table"},
      {"[[runtime]]\nname = 3", "runtime[0].name", "must be a string"},
      {"[[runtime]]\nname = \"python3.11\"\nimports = \"yaml\"", "runtime[0].imports",
       "must be an array of strings, not a string"},
      {"[[runtime]]\nname = \"python3.11\"\nimports = [\"yaml\", 3]", "runtime[0].imports",
       "element 1 must be a string, not an integer"},
      {"[[runtime]]\nname = \"python3.11\"\nstem_cells = 1.0", "runtime[0].stem_cells",
       "must be an integer"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.toml);
    std::vector<ConfigIssue> issues = issuesOf(c.toml);
    ASSERT_EQ(issues.size(), 1u) << describe(issues);
    EXPECT_EQ(issues[0].key, c.key);
    EXPECT_GT(issues[0].line, 0);
    EXPECT_NE(issues[0].message.find(c.fragment), std::string::npos) << issues[0].message;
  }
}

TEST(ConfigErrors, OutOfRange) {
  struct Case {
    std::string toml, key, fragment;
  };
  const Case cases[] = {
      {"state_dir = \"var/thatch\"", "state_dir", "absolute"},
      {"state_dir = \"\"", "state_dir", "'' is not an absolute path"},
      {"state_dir = \"/a\\u0000b\"", "state_dir", "'/a\\x00b' contains a NUL byte"},
      {"socket = \"thatchd.sock\"", "socket", "absolute"},
      {"socket = \"/" + std::string(107, 's') + "\"", "socket", "at most 107"},
      {"socket_group = \"bad group\"", "socket_group", "group name"},
      {"tcp_listen = \"7070\"", "tcp_listen", "HOST:PORT"},
      {"tcp_listen = \"localhost:0\"", "tcp_listen", "HOST:PORT"},
      {"tcp_listen = \"localhost:65536\"", "tcp_listen", "HOST:PORT"},
      {"tcp_listen = \"::1:70\"", "tcp_listen", "HOST:PORT"},
      {"tcp_listen = \":70\"", "tcp_listen", "HOST:PORT"},
      {"zygote = \"bin/thatch-zygote\"", "zygote", "absolute"},
      {"cgroup_subdir = \"/thatch\"", "cgroup_subdir", "relative"},
      {"cgroup_subdir = \"../escape\"", "cgroup_subdir", "relative"},
      {"cgroup_subdir = \"a//b\"", "cgroup_subdir", "relative"},
      {"cgroup_subdir = \"\"", "cgroup_subdir", "relative"},
      {"log_format = \"xml\"", "log_format", "\"text\" or \"json\", not 'xml'"},
      {"[pool]\nkeep_alive = \"LRU\"", "pool.keep_alive",
       "one of \"ttl\", \"lru\", \"greedy-dual\", \"histogram\", not 'LRU'"},
      {"[pool]\nkeep_alive = \"\"", "pool.keep_alive", "one of \"ttl\""},
      {"[network]\nallow = [\"10.201.0.1:53\", \"resolver:53\"]", "network.allow",
       "'resolver:53': expected ADDRESS[/PREFIX][:PORT]"},
      {"[network]\nallow = [\"10.0.0.1/8\"]", "network.allow", "bits set past /8"},
      {"[registry]\nkeep_versions = 0", "registry.keep_versions", "at least 1"},
      {"http_listen = \"9001\"\n[lambda]\nanonymous = true", "http_listen", "HOST:PORT"},
      {"http_listen = \"127.0.0.1:9001\"", "http_listen", "no client could use it"},
      {"http_listen = \"0.0.0.0:9001\"\n[lambda]\nanonymous = true", "lambda.anonymous",
       "loopback http_listen only"},
      {"[lambda]\nregion = \"US East\"", "lambda.region", "region name"},
      {"[lambda]\naccount_id = \"12345\"", "lambda.account_id", "12 digits"},
      {"[lambda]\nevent_queue = 0", "lambda.event_queue", "at least 1"},
      {"[lambda]\nmax_connections = 0", "lambda.max_connections", "at least 1"},
      {"[[access_key]]\nid = \"AK\"\nsecret = \"short\"\nallow = [\"invoke\"]",
       "access_key[0].secret", "16 to 256"},
      {"[[access_key]]\nid = \"a key\"\nsecret = \"0123456789abcdef\"\nallow = [\"read\"]",
       "access_key[0].id", "1 to 128 of"},
      {"[[access_key]]\nid = \"AK\"\nsecret = \"0123456789abcdef\"\nallow = [\"root\"]",
       "access_key[0].allow", "has 'root': it must list what the key may do, in \"invoke:NAME\""},
      {"[[access_key]]\nid = \"AK\"\nsecret = \"0123456789abcdef\"\nallow = [\"invoke:Hello\"]",
       "access_key[0].allow", "has 'invoke:Hello'"},
      {"tcp_listen = \"127.0.0.1:7070\"", "tcp_listen", "no client could log in: add a [[client]]"},
      {"tcp_listen = \"0.0.0.0:7070\"\ntcp_without_token = true", "tcp_without_token",
       "loopback tcp_listen only"},
      {"socket_requires_token = true", "socket_requires_token", "no client could log in"},
      {"tcp_listen = \"127.0.0.1:7070\"\ntcp_without_token = true\ntls_cert = \"/c.pem\"",
       "tls_cert", "go together"},
      {"tcp_listen = \"127.0.0.1:7070\"\ntcp_without_token = true\ntls_cert = \"c.pem\"\n"
       "tls_key = \"/k.pem\"",
       "tls_cert", "absolute"},
      {"tls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"", "tls_cert", "tcp_listen, which is not set"},
      {"tls_handshake_timeout = \"50ms\"", "tls_handshake_timeout", "100ms to 5m"},
      {"tls_handshake_timeout = \"6m\"", "tls_handshake_timeout", "100ms to 5m"},
      {"[[client]]\nname = \"ci\"\ntoken_sha256 = "
       "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\nallow = "
       "[\"invoke:*\", \"delete\"]",
       "client[0].allow", "has 'delete': it must list what the client may do"},
      {"[[client]]\nname = \"ci\"\ntoken_sha256 = "
       "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\nallow = []",
       "client[0].allow", "is empty"},
      {"[[client]]\nname = \"ci\"\ntoken_sha256 = \"secret-token\"\nallow = [\"admin\"]",
       "client[0].token_sha256", "64 hex digits"},
      {"[[client]]\nname = \"ci\"\ntoken_sha256 = "
       "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg\"\nallow = [\"admin\"]",
       "client[0].token_sha256", "64 hex digits"},
      {"[[client]]\nname = \"c i\"\ntoken_sha256 = "
       "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\nallow = [\"admin\"]",
       "client[0].name", "1 to 64 of"},
      {"[[client]]\nname = \"ci\"\ntoken_sha256 = "
       "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\nallow = "
       "[\"admin\"]\n[[client]]\nname = \"ci\"\ntoken_sha256 = "
       "\"fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210\"\nallow = [\"admin\"]",
       "client[1].name", "listed twice"},
      {"[[client]]\nname = \"ci\"\ntoken_sha256 = "
       "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\nallow = "
       "[\"admin\"]\n[[client]]\nname = \"cd\"\ntoken_sha256 = "
       "\"0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF\"\nallow = [\"admin\"]",
       "client[1].token_sha256", "same token"},
      {"[[client]]\nname = \"ci\"\ntoken = \"x\"\ntoken_sha256 = "
       "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"\nallow = [\"admin\"]",
       "client[0].token", "unknown key"},
      {"[[access_key]]\nid = \"AK\"\nsecret = \"0123456789abcdef\"", "access_key[0].allow",
       "must list what the key may do"},
      {"[[access_key]]\nid = \"AK\"\nsecret = \"0123456789abcdef\"\nallow = [\"read\"]\n"
       "[[access_key]]\nid = \"AK\"\nsecret = \"0123456789abcdef\"\nallow = [\"read\"]",
       "access_key[1].id", "listed twice"},
      {"[host]\nspawn_timeout = \"999ms\"", "host.spawn_timeout", "at least 1s"},
      {"[registry]\nmax_stored = \"1023KiB\"", "registry.max_stored", "at least 1MiB"},
      {"[limits]\nmemory = \"8388607\"", "limits.memory", "at least 8MiB"},
      {"[limits]\nmemory = 0", "limits.memory", "at least 8MiB"},
      {"[limits]\nmemory = -1", "limits.memory", "must not be negative"},
      {"[limits]\ntimeout = \"0s\"", "limits.timeout", "above 0s"},
      {"[limits]\npids = 0", "limits.pids", "at least 1"},
      {"[limits]\npids = -5", "limits.pids", "must not be negative"},
      {"[limits]\ncpus = 0", "limits.cpus", "from 0.01 to 4096, not 0.0"},
      {"[limits]\ncpus = -1.5", "limits.cpus", "from 0.01 to 4096"},
      {"[limits]\ncpus = 0.001", "limits.cpus", "from 0.01 to 4096"},
      {"[limits]\ncpus = 5000", "limits.cpus", "from 0.01 to 4096"},
      {"[limits]\ncpus = inf", "limits.cpus", "not inf"},
      {"[limits]\ncpus = nan", "limits.cpus", "not nan"},
      {"[limits]\npayload = 0", "limits.payload", "at least 1 byte"},
      {"[limits]\npayload = \"2GiB\"", "limits.payload", "at most 1GiB"},
      {"[limits]\narchive = 0", "limits.archive", "from 1 byte to 1GiB"},
      {"[limits]\nresult = \"0K\"", "limits.result", "at least 1 byte"},
      {"[pool]\nconcurrency = 0", "pool.concurrency", "at least 1"},
      {"[pool]\nconcurrency = 4294967296", "pool.concurrency", "at most 4294967295"},
      {"[pool]\nqueue_timeout = \"0s\"", "pool.queue_timeout", "above 0s"},
      {"[pool]\nidle_ttl = \"1500ms\"", "pool.idle_ttl", "whole number of seconds, not 1500ms"},
      {"[pool]\nmin_warm = 2\nmax_warm = 1", "pool.max_warm",
       "pool.max_warm (1) is below "
       "pool.min_warm (2)"},
      {"[pool]\nmin_warm = 9", "pool.min_warm", "pool.max_warm (8) is below pool.min_warm (9)"},
      {"[pool]\nmin_warm = 300\nmax_warm = 300", "pool.min_warm", "above host.max_warm (256)"},
      {"[host]\nmax_warm = 600", "host.max_warm", "above host.max_sandboxes (512)"},
      {"[host]\nmax_sandboxes = 0", "host.max_sandboxes", "at least 1"},
      {"[host]\nbusy_poll_us = 1001", "host.busy_poll_us", "at most 1000 (1 ms), not 1001"},
      {"[pool]\nsend_ahead_under_us = 1000001", "pool.send_ahead_under_us",
       "at most 1000000 (1 s), not 1000001"},
      {"[pool]\nsend_ahead_under_us = -1", "pool.send_ahead_under_us", "must not be negative"},
      {"[host]\nbusy_poll_us = -1", "host.busy_poll_us", "must not be negative"},
      {"runtime = []", "runtime", "at least one runtime"},
      {"[[runtime]]\nstem_cells = 1", "runtime[0].name", "missing"},
      {"[[runtime]]\nname = \"\"", "runtime[0].name", "missing"},
      {"[[runtime]]\nname = \"python3.12\"", "runtime[0].name", "unknown runtime 'python3.12'"},
      {"[[runtime]]\nname = \"python3.11\"\n[[runtime]]\nname = \"python3.11\"", "runtime[1].name",
       "listed twice"},
      {"[[runtime]]\nname = \"python3.11\"\nimports = [\"--help\"]", "runtime[0].imports",
       "'--help' is not a Python module name"},
      {"[[runtime]]\nname = \"python3.11\"\nimports = [\"a..b\"]", "runtime[0].imports",
       "not a Python module name"},
      {"[[runtime]]\nname = \"python3.11\"\npackage_dirs = [\"site-packages\"]",
       "runtime[0].package_dirs", "'site-packages' is not an absolute path"},
      {"[[runtime]]\nname = \"python3.11\"\nstem_cells = -1", "runtime[0].stem_cells",
       "must not be negative"},
      {"[[runtime]]\nname = \"python3.11\"\nzygotes = 0", "runtime[0].zygotes", "must be 1 to 64"},
      {"[[runtime]]\nname = \"python3.11\"\nzygotes = 65", "runtime[0].zygotes", "must be 1 to 64"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.toml);
    std::vector<ConfigIssue> issues = issuesOf(c.toml);
    ASSERT_EQ(issues.size(), 1u) << describe(issues);
    EXPECT_EQ(issues[0].key, c.key);
    EXPECT_GT(issues[0].line, 0);
    EXPECT_NE(issues[0].message.find(c.fragment), std::string::npos) << issues[0].message;
  }
}

TEST(ConfigErrors, CrossChecksPointAtTheKeyTheFileSet) {
  // max_warm is left at 8; the issue is where min_warm was set.
  expectOneIssue("\n[pool]\n\nmin_warm = 10\n", "pool.min_warm", 4, "is below pool.min_warm");
  // Both set: the one compared against (max_warm), on its own line.
  expectOneIssue("[pool]\nmax_warm = 1\nmin_warm = 2\n", "pool.max_warm", 2, "is below");
}

TEST(ConfigErrors, AKeyThatCannotBeReadIsReportedOnce) {
  // max_warm unreadable: no second issue comparing min_warm with its default.
  std::vector<ConfigIssue> issues = issuesOf("[pool]\nmax_warm = \"many\"\nmin_warm = 10\n");
  ASSERT_EQ(issues.size(), 1u) << describe(issues);
  EXPECT_EQ(issues[0].key, "pool.max_warm");
  // A runtime that is not a table is not also "missing a name".
  issues = issuesOf("runtime = [\"python3.11\"]\n");
  ASSERT_EQ(issues.size(), 1u) << describe(issues);
  EXPECT_EQ(issues[0].key, "runtime[0]");
}

TEST(ConfigErrors, MissingRuntimeNamePointsAtItsTable) {
  expectOneIssue("[[runtime]]\nname = \"python3.11\"\n\n[[runtime]]\nstem_cells = 1\n",
                 "runtime[1].name", 4, "missing: a runtime needs a name");
}

TEST(ConfigErrors, BadUnits) {
  struct Case {
    std::string toml, key, fragment;
  };
  const Case cases[] = {
      {"[limits]\nmemory = \"12X\"", "limits.memory", "unit must be B, K, M, G or T"},
      {"[limits]\nmemory = \"128 MB s\"", "limits.memory", "unit must be"},
      {"[limits]\nmemory = \"lots\"", "limits.memory", "invalid size 'lots'"},
      {"[limits]\nmemory = \"-1G\"", "limits.memory", "is negative"},
      {"[limits]\nmemory = \"\"", "limits.memory", "empty size"},
      {"[limits]\nmemory = \"99999999999999999999\"", "limits.memory", "too large"},
      {"[limits]\ntimeout = \"3sec\"", "limits.timeout", "unit must be ms, s, m, h or d"},
      {"[limits]\ntimeout = \"3\"", "limits.timeout", "has no unit"},
      {"[limits]\ntimeout = \"3S\"", "limits.timeout", "unit must be"},
      {"[limits]\ntimeout = \"0.5ms\"", "limits.timeout", "whole number of milliseconds"},
      {"[pool]\nqueue_timeout = \"-1s\"", "pool.queue_timeout", "is negative"},
      {"[pool]\nidle_ttl = \"36501d\"", "pool.idle_ttl", "too long"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.toml);
    std::vector<ConfigIssue> issues = issuesOf(c.toml);
    ASSERT_EQ(issues.size(), 1u) << describe(issues);
    EXPECT_EQ(issues[0].key, c.key);
    EXPECT_EQ(issues[0].line, 2);
    EXPECT_NE(issues[0].message.find(c.fragment), std::string::npos) << issues[0].message;
  }
}

TEST(ConfigErrors, SyntaxErrorsNameTheirLine) {
  std::vector<ConfigIssue> issues = issuesOf("state_dir = \"/x\"\n\n[pool\nmax_warm = 1\n");
  ASSERT_EQ(issues.size(), 1u) << describe(issues);
  EXPECT_EQ(issues[0].key, "");
  EXPECT_EQ(issues[0].line, 3);
  EXPECT_FALSE(issues[0].message.empty());

  issues = issuesOf("[limits]\nmemory = \"1G\"\nmemory = \"2G\"\n");  // redefined
  ASSERT_EQ(issues.size(), 1u) << describe(issues);
  EXPECT_EQ(issues[0].line, 3);
  EXPECT_NE(issues[0].message.find("memory"), std::string::npos) << issues[0].message;

  issues = issuesOf("socket = \"/run/unterminated\n");
  ASSERT_EQ(issues.size(), 1u) << describe(issues);
  EXPECT_EQ(issues[0].line, 1);

  try {
    parseConfig("a = = 1\n", "bad.toml");
    FAIL() << "parsed";
  } catch (const ConfigError& error) {
    // No key: "FILE:LINE: MESSAGE".
    EXPECT_EQ(std::string(error.what()).rfind("bad.toml:1: ", 0), 0u) << error.what();
  }
}

TEST(ConfigErrors, NeverCrashOnDamagedInput) {
  // Mutations of a full file and plain noise: every outcome is a Config or a
  // ConfigError, never another exception or a crash.
  const std::string base = renderConfig(everythingChanged());
  std::mt19937 random(20240611);
  const std::string alphabet = "=[]{}\".,#\n \\0123456789abcdefmsKMGT-+_'\x01\xff";
  size_t errors = 0, parsed = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string text = base;
    int edits = 1 + random() % 4;
    for (int e = 0; e < edits && !text.empty(); ++e) {
      size_t at = random() % text.size();
      char c = alphabet[random() % alphabet.size()];
      switch (random() % 3) {
        case 0:
          text[at] = c;
          break;
        case 1:
          text.insert(text.begin() + at, c);
          break;
        default:
          text.erase(at, 1 + random() % 8);
      }
    }
    try {
      Config c = parseConfig(text, "mutated");
      EXPECT_TRUE(validateConfig(c).empty()) << text;
      ++parsed;
    } catch (const ConfigError& error) {
      EXPECT_FALSE(error.issues().empty());
      ++errors;
    }
  }
  EXPECT_GT(errors, 0u);
  EXPECT_GT(parsed, 0u);
  for (const std::string& noise :
       {std::string("\0\0\0", 3), std::string(2000, '['), std::string(2000, '{'),
        "a = " + std::string(5000, '[') + std::string(5000, ']'), std::string("\xef\xbb\xbf\xff"),
        std::string("x = \"\\u0000\"")}) {
    EXPECT_THROW(parseConfig(noise, "noise"), ConfigError);
  }
}

TEST(ConfigLoad, ReadsAFile) {
  TempDir dir;
  writeFile(dir.path() + "/thatchd.toml", "[pool]\nconcurrency = 3\n");
  EXPECT_EQ(loadConfig(dir.path() + "/thatchd.toml").pool.concurrency, 3u);
}

TEST(ConfigLoad, IssuesNameTheFile) {
  TempDir dir;
  std::string path = dir.path() + "/thatchd.toml";
  writeFile(path, "\n[pool]\nconcurrency = 0\n");
  try {
    loadConfig(path);
    FAIL() << "loaded";
  } catch (const ConfigError& error) {
    EXPECT_EQ(std::string(error.what()), path + ":3: pool.concurrency: must be at least 1");
  }
}

TEST(ConfigLoad, AnUnreadableFileIsAClearError) {
  TempDir dir;
  try {
    loadConfig(dir.path() + "/missing.toml");
    FAIL() << "loaded";
  } catch (const ConfigError& error) {
    ASSERT_EQ(error.issues().size(), 1u);
    EXPECT_EQ(error.issues()[0].line, 0);
    EXPECT_EQ(std::string(error.what()), dir.path() +
                                             "/missing.toml: cannot read the configuration: "
                                             "open: No such file or directory");
  }
  try {
    loadConfig(dir.path());  // a directory opens, then fails to read
    FAIL() << "loaded";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("read: Is a directory"), std::string::npos)
        << error.what();
  }
}

TEST(ConfigLoad, RefusesHugeFiles) {
  TempDir dir;
  writeFile(dir.path() + "/big.toml", std::string((1 << 20) + 1, '#'));
  EXPECT_THROW(loadConfig(dir.path() + "/big.toml"), ConfigError);
  try {
    loadConfig("/dev/zero");
    FAIL() << "loaded";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("larger than 1 MiB"), std::string::npos);
  }
}

TEST(ConfigValidate, ChecksBuiltConfigs) {
  Config c = defaultConfig();
  c.runtimes.clear();
  c.limits.cpus = 0;
  c.pool.minWarm = 9;
  std::vector<ConfigIssue> issues = validateConfig(c);
  ASSERT_EQ(issues.size(), 3u) << describe(issues);
  EXPECT_EQ(issues[0].key, "limits.cpus");
  EXPECT_EQ(issues[1].key, "pool.min_warm");
  EXPECT_EQ(issues[2].key, "runtime");
  for (const auto& issue : issues) EXPECT_EQ(issue.line, 0);
  // Such a config still renders, as TOML that parseConfig refuses.
  EXPECT_THROW(parseConfig(renderConfig(c), "rendered"), ConfigError);
}

TEST(ConfigErrorText, OneLinePerIssue) {
  ConfigError error(
      "f.toml",
      {{"pool.max_warm", 7, "too small"}, {"", 0, "no line, no key"}, {"socket", 0, "no line"}});
  EXPECT_EQ(std::string(error.what()),
            "f.toml:7: pool.max_warm: too small\nf.toml: no line, no key\nf.toml: socket: no line");
  EXPECT_EQ(error.issues().size(), 3u);
  EXPECT_EQ(error.source(), "f.toml");
}

// --- Reloading (config_reload.h) ----------------------------------------------

TEST(ConfigReload, TheSameConfigChangesNothing) {
  EXPECT_EQ(compareConfigs(defaultConfig(), defaultConfig()), ConfigChange{});
  Config c = everythingChanged();
  EXPECT_EQ(compareConfigs(c, c), ConfigChange{});
}

// Each key's decision, pinned: what its component does with a new value.
TEST(ConfigReload, EachKeyReloadsOrNeedsARestart) {
  const std::pair<const char*, bool> decisions[] = {
      {"state_dir", false},
      {"socket", false},
      {"socket_group", false},
      {"tcp_listen", false},
      {"http_listen", false},
      {"zygote", false},
      {"cgroup_subdir", false},
      {"log_format", false},
      {"limits.memory", true},
      {"limits.timeout", true},
      {"limits.pids", true},
      {"limits.cpus", true},
      {"limits.payload", true},
      {"limits.result", true},
      {"limits.logs", true},
      {"limits.archive", true},
      {"pool.idle_ttl", true},
      {"pool.min_warm", true},
      {"pool.max_warm", true},
      {"pool.concurrency", true},
      {"pool.queue_length", true},
      {"pool.queue_timeout", true},
      {"pool.send_ahead_under_us", true},
      {"pool.freeze_idle", false},
      {"pool.keep_alive", false},
      {"host.max_warm", true},
      {"host.max_warm_memory", true},
      {"host.max_sandboxes", false},
      {"host.max_running", false},
      {"host.busy_poll_us", false},
      {"host.spawn_timeout", true},
      {"network.firewall", false},
      {"network.allow", false},
      {"registry.keep_versions", true},
      {"registry.max_stored", true},
      {"lambda.region", true},
      {"lambda.account_id", true},
      {"lambda.anonymous", true},
      {"lambda.max_connections", true},
      {"lambda.event_queue", false},
      {"lambda.event_concurrency", false},
      {"testing.answer_page_always", false},
      {"testing.zygote_stops_after_fork", false},
      {"testing.schedule_clock_scale", false},
      {"runtime[0].name", false},
      {"runtime[0].stem_cells", false},
      {"runtime[1].zygotes", false},
      {"access_key[0].id", true},
      {"access_key[3].secret", true},
      {"access_key[0].allow", true},
      {"socket_requires_token", false},
      {"tcp_without_token", false},
      {"tls_cert", false},
      {"tls_key", false},
      {"tls_handshake_timeout", true},
      {"client[0].name", true},
      {"client[0].token_sha256", true},
      {"client[2].allow", true},
  };
  for (const auto& [key, reloads] : decisions) EXPECT_EQ(reloadable(key), reloads) << key;
  // Every key has a decision here: a new key is added to this list too.
  for (const auto& [key, value] : renderKeys(everythingChanged())) {
    bool decided = false;
    for (const auto& [pinned, reloads] : decisions) decided = decided || key == pinned;
    EXPECT_TRUE(decided || key.starts_with("runtime[") || key.starts_with("access_key[") ||
                key.starts_with("client["))
        << key << " has no decision in this test";
  }
}

TEST(ConfigReload, EveryChangedKeyIsNamedAndTheRestartOnesApart) {
  Config running = defaultConfig(), next = defaultConfig();
  next.limits.memoryBytes = 96ull << 20;
  next.pool.idleTtl = std::chrono::minutes(15);
  next.host.maxSandboxes = 100;
  next.runtimes.push_back({"python3.11", 0, {}, {}, 2});  // a third entry
  next.accessKeys.push_back({"AKID", "secret", {"invoke"}});
  ConfigChange change = compareConfigs(running, next);
  EXPECT_EQ(change.changed, (std::vector<std::string>{
                                "limits.memory", "pool.idle_ttl", "host.max_sandboxes",
                                "runtime[2].name", "runtime[2].stem_cells", "runtime[2].zygotes",
                                "runtime[2].imports", "runtime[2].package_dirs", "access_key[0].id",
                                "access_key[0].secret", "access_key[0].allow"}));
  EXPECT_EQ(change.needRestart,
            (std::vector<std::string>{"host.max_sandboxes", "runtime[2].name",
                                      "runtime[2].stem_cells", "runtime[2].zygotes",
                                      "runtime[2].imports", "runtime[2].package_dirs"}));
  // An entry removed is a change too.
  ConfigChange back = compareConfigs(next, running);
  EXPECT_EQ(back.changed.size(), change.changed.size());
  EXPECT_EQ(back.needRestart.size(), change.needRestart.size());
}

TEST(ConfigReload, OnlyReloadableChangesNeedNoRestart) {
  Config next = defaultConfig();
  next.limits.memoryBytes = 96ull << 20;
  next.lambda.region = "eu-west-1";
  next.registry.keepVersions = 2;
  ConfigChange change = compareConfigs(defaultConfig(), next);
  EXPECT_EQ(change.changed,
            (std::vector<std::string>{"limits.memory", "registry.keep_versions", "lambda.region"}));
  EXPECT_TRUE(change.needRestart.empty());
}

}  // namespace
}  // namespace supervisor
