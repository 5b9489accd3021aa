#include "supervisor/config_keys.h"

#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstdio>
#include <span>

#include "base/text.h"
#include "base/units.h"

namespace supervisor {

using base::printable;
namespace {

using std::chrono::milliseconds;

// ---------------------------------------------------------------------------
// TOML values

// A problem with one value; the reader turns it into a ConfigIssue carrying
// the value's key and line.
using Problem = std::invalid_argument;

std::string typeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    default:
      return "nothing";
  }
}

std::string readString(const toml::node& node) {
  if (auto* s = node.as_string()) return s->get();
  throw Problem("must be a string, not " + typeName(node));
}

bool readBool(const toml::node& node) {
  if (auto* b = node.as_boolean()) return b->get();
  throw Problem("must be true or false, not " + typeName(node));
}

uint64_t readCount(const toml::node& node) {
  auto* i = node.as_integer();
  if (!i) throw Problem("must be an integer, not " + typeName(node));
  if (i->get() < 0) throw Problem("must not be negative, not " + std::to_string(i->get()));
  return static_cast<uint64_t>(i->get());
}

unsigned readUnsigned(const toml::node& node) {
  uint64_t value = readCount(node);
  if (value > UINT_MAX)
    throw Problem("is too large: " + std::to_string(value) + " (at most " +
                  std::to_string(UINT_MAX) + ")");
  return static_cast<unsigned>(value);
}

double readNumber(const toml::node& node) {
  if (auto* f = node.as_floating_point()) return f->get();
  if (auto* i = node.as_integer()) return static_cast<double>(i->get());
  throw Problem("must be a number, not " + typeName(node));
}

uint64_t readBytes(const toml::node& node) {
  if (node.is_integer()) return readCount(node);
  if (auto* s = node.as_string()) return base::parseSize(s->get());
  throw Problem("must be a size, an integer (bytes) or a string such as \"128MiB\", not " +
                typeName(node));
}

milliseconds readDuration(const toml::node& node) {
  if (auto* s = node.as_string()) return base::parseDuration(s->get());
  if (node.is_integer())
    throw Problem(
        "must be a string with a unit, such as \"3s\" or \"500ms\" (a bare number could mean "
        "seconds or milliseconds)");
  throw Problem("must be a duration, a string such as \"3s\", not " + typeName(node));
}

std::chrono::seconds readSeconds(const toml::node& node) {
  milliseconds ms = readDuration(node);
  if (ms.count() % 1000 != 0)
    throw Problem("must be a whole number of seconds, not " + base::formatDuration(ms));
  return std::chrono::duration_cast<std::chrono::seconds>(ms);
}

std::vector<std::string> readStrings(const toml::node& node) {
  auto* array = node.as_array();
  if (!array) throw Problem("must be an array of strings, not " + typeName(node));
  std::vector<std::string> out;
  for (size_t i = 0; i < array->size(); ++i) {
    auto* s = (*array)[i].as_string();
    if (!s)
      throw Problem("element " + std::to_string(i) + " must be a string, not " +
                    typeName((*array)[i]));
    out.push_back(s->get());
  }
  return out;
}

// A TOML basic string: every control character escaped, the rest as is.
std::string tomlString(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char hex[8];
      snprintf(hex, sizeof hex, "\\u%04x", u);
      out += hex;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string tomlStrings(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + tomlString(items[i]);
  return out + "]";
}

// ---------------------------------------------------------------------------
// The keys: one row each, read and rendered from the same table so that the
// two cannot drift apart.

using Node = toml::node;

template <typename T>
struct Field {
  std::string_view key;
  void (*read)(const Node& value, T& into);  // throws Problem
  std::string (*render)(const T& from);      // a TOML value
};

using ConfigField = Field<Config>;

const ConfigField kTopFields[] = {
    {"state_dir", [](const Node& v, Config& c) { c.stateDir = readString(v); },
     [](const Config& c) { return tomlString(c.stateDir); }},
    {"socket", [](const Node& v, Config& c) { c.socketPath = readString(v); },
     [](const Config& c) { return tomlString(c.socketPath); }},
    {"socket_group", [](const Node& v, Config& c) { c.socketGroup = readString(v); },
     [](const Config& c) { return tomlString(c.socketGroup); }},
    {"tcp_listen", [](const Node& v, Config& c) { c.tcpListen = readString(v); },
     [](const Config& c) { return tomlString(c.tcpListen); }},
    {"http_listen", [](const Node& v, Config& c) { c.httpListen = readString(v); },
     [](const Config& c) { return tomlString(c.httpListen); }},
    {"socket_requires_token", [](const Node& v, Config& c) { c.socketRequiresToken = readBool(v); },
     [](const Config& c) { return std::string(c.socketRequiresToken ? "true" : "false"); }},
    {"tcp_without_token", [](const Node& v, Config& c) { c.tcpWithoutToken = readBool(v); },
     [](const Config& c) { return std::string(c.tcpWithoutToken ? "true" : "false"); }},
    {"tls_cert", [](const Node& v, Config& c) { c.tlsCert = readString(v); },
     [](const Config& c) { return tomlString(c.tlsCert); }},
    {"tls_key", [](const Node& v, Config& c) { c.tlsKey = readString(v); },
     [](const Config& c) { return tomlString(c.tlsKey); }},
    {"tls_handshake_timeout",
     [](const Node& v, Config& c) { c.tlsHandshakeTimeout = readDuration(v); },
     [](const Config& c) { return tomlString(base::formatDuration(c.tlsHandshakeTimeout)); }},
    {"zygote", [](const Node& v, Config& c) { c.zygotePath = readString(v); },
     [](const Config& c) { return tomlString(c.zygotePath); }},
    {"cgroup_subdir", [](const Node& v, Config& c) { c.cgroupSubdir = readString(v); },
     [](const Config& c) { return tomlString(c.cgroupSubdir); }},
    {"log_format", [](const Node& v, Config& c) { c.logFormat = readString(v); },
     [](const Config& c) { return tomlString(c.logFormat); }},
};

const ConfigField kLimitsFields[] = {
    {"memory", [](const Node& v, Config& c) { c.limits.memoryBytes = readBytes(v); },
     [](const Config& c) { return tomlString(base::formatSize(c.limits.memoryBytes)); }},
    {"timeout", [](const Node& v, Config& c) { c.limits.timeout = readDuration(v); },
     [](const Config& c) { return tomlString(base::formatDuration(c.limits.timeout)); }},
    {"pids", [](const Node& v, Config& c) { c.limits.pids = readCount(v); },
     [](const Config& c) { return std::to_string(c.limits.pids); }},
    {"cpus", [](const Node& v, Config& c) { c.limits.cpus = readNumber(v); },
     [](const Config& c) { return tomlFloat(c.limits.cpus); }},
    {"payload", [](const Node& v, Config& c) { c.limits.payloadBytes = readBytes(v); },
     [](const Config& c) { return tomlString(base::formatSize(c.limits.payloadBytes)); }},
    {"result", [](const Node& v, Config& c) { c.limits.resultBytes = readBytes(v); },
     [](const Config& c) { return tomlString(base::formatSize(c.limits.resultBytes)); }},
    {"logs", [](const Node& v, Config& c) { c.limits.logBytes = readBytes(v); },
     [](const Config& c) { return tomlString(base::formatSize(c.limits.logBytes)); }},
    {"archive", [](const Node& v, Config& c) { c.limits.archiveBytes = readBytes(v); },
     [](const Config& c) { return tomlString(base::formatSize(c.limits.archiveBytes)); }},
};

const ConfigField kPoolFields[] = {
    {"idle_ttl", [](const Node& v, Config& c) { c.pool.idleTtl = readSeconds(v); },
     [](const Config& c) { return tomlString(base::formatDuration(c.pool.idleTtl)); }},
    {"min_warm", [](const Node& v, Config& c) { c.pool.minWarm = readUnsigned(v); },
     [](const Config& c) { return std::to_string(c.pool.minWarm); }},
    {"max_warm", [](const Node& v, Config& c) { c.pool.maxWarm = readUnsigned(v); },
     [](const Config& c) { return std::to_string(c.pool.maxWarm); }},
    {"concurrency", [](const Node& v, Config& c) { c.pool.concurrency = readUnsigned(v); },
     [](const Config& c) { return std::to_string(c.pool.concurrency); }},
    {"queue_length", [](const Node& v, Config& c) { c.pool.queueLength = readUnsigned(v); },
     [](const Config& c) { return std::to_string(c.pool.queueLength); }},
    {"queue_timeout", [](const Node& v, Config& c) { c.pool.queueTimeout = readDuration(v); },
     [](const Config& c) { return tomlString(base::formatDuration(c.pool.queueTimeout)); }},
    {"send_ahead_under_us",
     [](const Node& v, Config& c) {
       c.pool.sendAheadUnder = std::chrono::microseconds(readUnsigned(v));
     },
     [](const Config& c) { return std::to_string(c.pool.sendAheadUnder.count()); }},
    {"freeze_idle", [](const Node& v, Config& c) { c.pool.freezeIdle = readBool(v); },
     [](const Config& c) { return std::string(c.pool.freezeIdle ? "true" : "false"); }},
    {"keep_alive", [](const Node& v, Config& c) { c.pool.keepAlive = readString(v); },
     [](const Config& c) { return tomlString(c.pool.keepAlive); }},
};

const ConfigField kHostFields[] = {
    {"max_warm", [](const Node& v, Config& c) { c.host.maxWarm = readUnsigned(v); },
     [](const Config& c) { return std::to_string(c.host.maxWarm); }},
    {"max_warm_memory", [](const Node& v, Config& c) { c.host.maxWarmMemoryBytes = readBytes(v); },
     [](const Config& c) { return tomlString(base::formatSize(c.host.maxWarmMemoryBytes)); }},
    {"max_sandboxes", [](const Node& v, Config& c) { c.host.maxSandboxes = readUnsigned(v); },
     [](const Config& c) { return std::to_string(c.host.maxSandboxes); }},
    {"max_running", [](const Node& v, Config& c) { c.host.maxRunning = readUnsigned(v); },
     [](const Config& c) { return std::to_string(c.host.maxRunning); }},
    {"busy_poll_us",
     [](const Node& v, Config& c) { c.host.busyPoll = std::chrono::microseconds(readUnsigned(v)); },
     [](const Config& c) { return std::to_string(c.host.busyPoll.count()); }},
    {"spawn_timeout", [](const Node& v, Config& c) { c.host.spawnTimeout = readDuration(v); },
     [](const Config& c) { return tomlString(base::formatDuration(c.host.spawnTimeout)); }},
};

const ConfigField kNetworkFields[] = {
    {"firewall", [](const Node& v, Config& c) { c.network.firewall = readBool(v); },
     [](const Config& c) { return std::string(c.network.firewall ? "true" : "false"); }},
    {"allow", [](const Node& v, Config& c) { c.network.allow = readStrings(v); },
     [](const Config& c) { return tomlStrings(c.network.allow); }},
};

const ConfigField kRegistryFields[] = {
    {"keep_versions", [](const Node& v, Config& c) { c.registry.keepVersions = readUnsigned(v); },
     [](const Config& c) { return std::to_string(c.registry.keepVersions); }},
    {"max_stored", [](const Node& v, Config& c) { c.registry.maxStoredBytes = readBytes(v); },
     [](const Config& c) { return tomlString(base::formatSize(c.registry.maxStoredBytes)); }},
};

const ConfigField kLambdaFields[] = {
    {"region", [](const Node& v, Config& c) { c.lambda.region = readString(v); },
     [](const Config& c) { return tomlString(c.lambda.region); }},
    {"account_id", [](const Node& v, Config& c) { c.lambda.accountId = readString(v); },
     [](const Config& c) { return tomlString(c.lambda.accountId); }},
    {"anonymous", [](const Node& v, Config& c) { c.lambda.anonymous = readBool(v); },
     [](const Config& c) { return std::string(c.lambda.anonymous ? "true" : "false"); }},
    {"max_connections", [](const Node& v, Config& c) { c.lambda.maxConnections = readUnsigned(v); },
     [](const Config& c) { return std::to_string(c.lambda.maxConnections); }},
    {"event_queue", [](const Node& v, Config& c) { c.lambda.eventQueue = readUnsigned(v); },
     [](const Config& c) { return std::to_string(c.lambda.eventQueue); }},
    {"event_concurrency",
     [](const Node& v, Config& c) { c.lambda.eventConcurrency = readUnsigned(v); },
     [](const Config& c) { return std::to_string(c.lambda.eventConcurrency); }},
};

const ConfigField kTestingFields[] = {
    {"answer_page_always",
     [](const Node& v, Config& c) { c.testing.answerPageAlways = readBool(v); },
     [](const Config& c) { return std::string(c.testing.answerPageAlways ? "true" : "false"); }},
    {"zygote_stops_after_fork",
     [](const Node& v, Config& c) { c.testing.zygoteStopsAfterFork = readBool(v); },
     [](const Config& c) {
       return std::string(c.testing.zygoteStopsAfterFork ? "true" : "false");
     }},
    {"schedule_clock_scale",
     [](const Node& v, Config& c) { c.testing.scheduleClockScale = readUnsigned(v); },
     [](const Config& c) { return std::to_string(c.testing.scheduleClockScale); }},
};

const Field<AccessKey> kAccessKeyFields[] = {
    {"id", [](const Node& v, AccessKey& k) { k.id = readString(v); },
     [](const AccessKey& k) { return tomlString(k.id); }},
    {"secret", [](const Node& v, AccessKey& k) { k.secret = readString(v); },
     [](const AccessKey& k) { return tomlString(k.secret); }},
    {"allow", [](const Node& v, AccessKey& k) { k.allow = readStrings(v); },
     [](const AccessKey& k) { return tomlStrings(k.allow); }},
};

const Field<ClientConfig> kClientFields[] = {
    {"name", [](const Node& v, ClientConfig& k) { k.name = readString(v); },
     [](const ClientConfig& k) { return tomlString(k.name); }},
    {"token_sha256", [](const Node& v, ClientConfig& k) { k.tokenSha256 = readString(v); },
     [](const ClientConfig& k) { return tomlString(k.tokenSha256); }},
    {"allow", [](const Node& v, ClientConfig& k) { k.allow = readStrings(v); },
     [](const ClientConfig& k) { return tomlStrings(k.allow); }},
};

const Field<RuntimeConfig> kRuntimeFields[] = {
    {"name", [](const Node& v, RuntimeConfig& r) { r.name = readString(v); },
     [](const RuntimeConfig& r) { return tomlString(r.name); }},
    {"stem_cells", [](const Node& v, RuntimeConfig& r) { r.stemCells = readUnsigned(v); },
     [](const RuntimeConfig& r) { return std::to_string(r.stemCells); }},
    {"zygotes", [](const Node& v, RuntimeConfig& r) { r.zygotes = readUnsigned(v); },
     [](const RuntimeConfig& r) { return std::to_string(r.zygotes); }},
    {"imports", [](const Node& v, RuntimeConfig& r) { r.imports = readStrings(v); },
     [](const RuntimeConfig& r) { return tomlStrings(r.imports); }},
    {"package_dirs", [](const Node& v, RuntimeConfig& r) { r.packageDirs = readStrings(v); },
     [](const RuntimeConfig& r) { return tomlStrings(r.packageDirs); }},
};

struct Section {
  std::string_view name;
  std::span<const ConfigField> fields;
};

const Section kSections[] = {
    {"limits", kLimitsFields},   {"pool", kPoolFields},         {"host", kHostFields},
    {"network", kNetworkFields}, {"registry", kRegistryFields}, {"lambda", kLambdaFields},
    {"testing", kTestingFields},
};

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// ---------------------------------------------------------------------------
// Reading a document

int lineOf(const toml::node& node) {
  return static_cast<int>(node.source().begin.line);
}

class Reader {
 public:
  Reader(std::vector<ConfigIssue>& issues, KeyInfo& keys) : issues_(issues), keys_(keys) {}

  void readDocument(const toml::table& root, Config& config) {
    std::vector<std::string_view> known;
    for (const auto& field : kTopFields) known.push_back(field.key);
    for (const auto& section : kSections) known.push_back(section.name);
    known.push_back(kRuntimeKey);
    known.push_back(kAccessKeyKey);
    known.push_back(kClientKey);

    for (auto&& [key, node] : root) {
      std::string name(key.str());
      int line = keyLine(key, node);
      keys_.lines[name] = line;
      if (const ConfigField* field = find(std::span<const ConfigField>(kTopFields), name)) {
        readField(*field, name, node, line, config);
      } else if (const Section* section = findSection(name)) {
        if (auto* table = node.as_table())
          readTable(*table, name, section->fields, config);
        else
          fail(name, line, "must be a table ([" + name + "]), not " + typeName(node));
      } else if (name == kRuntimeKey) {
        config.runtimes.clear();  // an empty list is refused by the range checks
        readTables(kRuntimeKey, node, line, std::span<const Field<RuntimeConfig>>(kRuntimeFields),
                   config.runtimes);
      } else if (name == kAccessKeyKey) {
        readTables(kAccessKeyKey, node, line, std::span<const Field<AccessKey>>(kAccessKeyFields),
                   config.accessKeys);
      } else if (name == kClientKey) {
        readTables(kClientKey, node, line, std::span<const Field<ClientConfig>>(kClientFields),
                   config.clients);
      } else {
        unknown(name, name, line, known);
      }
    }
  }

 private:
  template <typename T>
  static const Field<T>* find(std::span<const Field<T>> fields, std::string_view key) {
    for (const auto& field : fields)
      if (field.key == key) return &field;
    return nullptr;
  }

  static const Section* findSection(std::string_view name) {
    for (const auto& section : kSections)
      if (section.name == name) return &section;
    return nullptr;
  }

  static int keyLine(const toml::key& key, const toml::node& node) {
    int line = static_cast<int>(key.source().begin.line);
    return line > 0 ? line : lineOf(node);
  }

  template <typename T>
  void readTable(const toml::table& table, const std::string& prefix,
                 std::span<const Field<T>> fields, T& into) {
    std::vector<std::string_view> known;
    for (const auto& field : fields) known.push_back(field.key);
    for (auto&& [key, node] : table) {
      std::string fullKey = prefix + "." + std::string(key.str());
      int line = keyLine(key, node);
      keys_.lines[fullKey] = line;
      if (const Field<T>* field = find(fields, key.str()))
        readField(*field, fullKey, node, line, into);
      else
        unknown(fullKey, key.str(), line, known);
    }
  }

  template <typename T>
  void readField(const Field<T>& field, const std::string& fullKey, const toml::node& node,
                 int line, T& into) {
    try {
      field.read(node, into);
    } catch (const Problem& problem) {
      fail(fullKey, line, problem.what());
    }
  }

  // Inline tables (runtime = [{ name = "python3.11" }]) are the same TOML
  // and read the same.
  // An array of tables ([[runtime]], [[access_key]]); its entries' keys are
  // "KEY[N].FIELD".
  template <typename T>
  void readTables(std::string_view key, const toml::node& node, int line,
                  std::span<const Field<T>> fields, std::vector<T>& into) {
    auto* array = node.as_array();
    if (!array) {
      fail(std::string(key), line,
           "must be an array of tables ([[" + std::string(key) + "]]), not " + typeName(node));
      return;
    }
    for (size_t i = 0; i < array->size(); ++i) {
      std::string prefix = std::string(key) + "[" + std::to_string(i) + "]";
      const toml::node& element = (*array)[i];
      keys_.lines[prefix] = lineOf(element);
      T entry;
      if (auto* table = element.as_table()) {
        readTable(*table, prefix, fields, entry);
      } else {
        fail(prefix, lineOf(element),
             "must be a table ([[" + std::string(key) + "]]), not " + typeName(element));
        // So that its fields are not also "missing".
        for (const auto& field : fields)
          keys_.unreadable.insert(prefix + "." + std::string(field.key));
      }
      into.push_back(std::move(entry));  // keeps indices aligned with the file
    }
  }

  void unknown(const std::string& fullKey, std::string_view key, int line,
               const std::vector<std::string_view>& known) {
    std::string message = "unknown key";
    size_t best = std::max<size_t>(1, key.size() / 3) + 1;  // suggest only near misses
    for (std::string_view candidate : known) {
      size_t distance = editDistance(key, candidate);
      if (distance < best) {
        best = distance;
        message = "unknown key (did you mean '" + std::string(candidate) + "'?)";
      }
    }
    fail(fullKey, line, message);
  }

  void fail(const std::string& key, int line, std::string message) {
    issues_.push_back({printable(key, 200), line, std::move(message)});  // keys are arbitrary
    keys_.unreadable.insert(key);
  }

  std::vector<ConfigIssue>& issues_;
  KeyInfo& keys_;
};

}  // namespace

std::vector<ConfigIssue> readConfigToml(std::string_view toml, const std::string& sourceName,
                                        Config& config, KeyInfo& keys) {
  toml::table root;
  try {
    root = toml::parse(toml, sourceName);
  } catch (const toml::parse_error& error) {
    throw ConfigError(sourceName, {{"", static_cast<int>(error.source().begin.line),
                                    std::string(error.description())}});
  }
  std::vector<ConfigIssue> issues;
  Reader(issues, keys).readDocument(root, config);
  return issues;
}

std::string tomlFloat(double value) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  std::string out(buffer, ec == std::errc() ? end : buffer);
  if (out.find_first_of(".eni") == std::string::npos) out += ".0";  // "e", "inf", "nan"
  return out;
}

std::vector<std::pair<std::string, std::string>> renderKeys(const Config& config) {
  std::vector<std::pair<std::string, std::string>> out;
  auto renderFields = [&out](std::string_view prefix, auto fields, const auto& from) {
    for (const auto& field : fields)
      out.emplace_back(std::string(prefix) + std::string(field.key), field.render(from));
  };
  renderFields("", std::span<const ConfigField>(kTopFields), config);
  for (const Section& section : kSections)
    renderFields(std::string(section.name) + ".", section.fields, config);
  for (size_t i = 0; i < config.runtimes.size(); ++i)
    renderFields(std::string(kRuntimeKey) + "[" + std::to_string(i) + "].",
                 std::span<const Field<RuntimeConfig>>(kRuntimeFields), config.runtimes[i]);
  for (size_t i = 0; i < config.accessKeys.size(); ++i)
    renderFields(std::string(kAccessKeyKey) + "[" + std::to_string(i) + "].",
                 std::span<const Field<AccessKey>>(kAccessKeyFields), config.accessKeys[i]);
  for (size_t i = 0; i < config.clients.size(); ++i)
    renderFields(std::string(kClientKey) + "[" + std::to_string(i) + "].",
                 std::span<const Field<ClientConfig>>(kClientFields), config.clients[i]);
  return out;
}

std::string renderConfig(const Config& config) {
  std::string out;
  auto renderFields = [&out](auto fields, const auto& from) {
    for (const auto& field : fields)
      out += std::string(field.key) + " = " + field.render(from) + "\n";
  };
  renderFields(std::span<const ConfigField>(kTopFields), config);
  for (const Section& section : kSections) {
    out += "\n[" + std::string(section.name) + "]\n";
    renderFields(section.fields, config);
  }
  if (config.runtimes.empty()) out += "\n" + std::string(kRuntimeKey) + " = []\n";
  for (const RuntimeConfig& runtime : config.runtimes) {
    out += "\n[[" + std::string(kRuntimeKey) + "]]\n";
    renderFields(std::span<const Field<RuntimeConfig>>(kRuntimeFields), runtime);
  }
  for (const AccessKey& key : config.accessKeys) {
    out += "\n[[" + std::string(kAccessKeyKey) + "]]\n";
    renderFields(std::span<const Field<AccessKey>>(kAccessKeyFields), key);
  }
  for (const ClientConfig& client : config.clients) {
    out += "\n[[" + std::string(kClientKey) + "]]\n";
    renderFields(std::span<const Field<ClientConfig>>(kClientFields), client);
  }
  return out;
}

}  // namespace supervisor
