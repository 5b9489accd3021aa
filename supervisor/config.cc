#include "supervisor/config.h"

#include <fcntl.h>
#include <sys/un.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <span>

#include "base/fd.h"
#include "base/text.h"
#include "base/units.h"
#include "supervisor/busy_poll.h"

namespace supervisor {

using base::printable;
using base::quoted;
namespace {

using std::chrono::milliseconds;

// Sending ahead makes an invocation wait for one sandbox's current one: a
// bound on that wait.
constexpr std::chrono::microseconds kMaxSendAheadUnder = std::chrono::seconds(1);

// A value quoted in a message.
std::string quoted(std::string_view text) {
  return base::quoted(text, 40);
}

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

// Shortest text that reads back to the same double, always a TOML float.
std::string tomlFloat(double value) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  std::string out(buffer, ec == std::errc() ? end : buffer);
  if (out.find_first_of(".eni") == std::string::npos) out += ".0";  // "e", "inf", "nan"
  return out;
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
};

const ConfigField kHostFields[] = {
    {"max_warm", [](const Node& v, Config& c) { c.host.maxWarm = readUnsigned(v); },
     [](const Config& c) { return std::to_string(c.host.maxWarm); }},
    {"max_warm_memory", [](const Node& v, Config& c) { c.host.maxWarmMemoryBytes = readBytes(v); },
     [](const Config& c) { return tomlString(base::formatSize(c.host.maxWarmMemoryBytes)); }},
    {"max_sandboxes", [](const Node& v, Config& c) { c.host.maxSandboxes = readUnsigned(v); },
     [](const Config& c) { return std::to_string(c.host.maxSandboxes); }},
    {"busy_poll_us",
     [](const Node& v, Config& c) { c.host.busyPoll = std::chrono::microseconds(readUnsigned(v)); },
     [](const Config& c) { return std::to_string(c.host.busyPoll.count()); }},
};

const Field<RuntimeConfig> kRuntimeFields[] = {
    {"name", [](const Node& v, RuntimeConfig& r) { r.name = readString(v); },
     [](const RuntimeConfig& r) { return tomlString(r.name); }},
    {"stem_cells", [](const Node& v, RuntimeConfig& r) { r.stemCells = readUnsigned(v); },
     [](const RuntimeConfig& r) { return std::to_string(r.stemCells); }},
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
    {"limits", kLimitsFields},
    {"pool", kPoolFields},
    {"host", kHostFields},
};

constexpr std::string_view kRuntimeKey = "runtime";

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

// Where each key was found, and which keys could not be read (range checks
// skip those: their value is still the default, which would mislead).
struct KeyInfo {
  std::map<std::string, int> lines;
  std::set<std::string> unreadable;

  int lineOf(std::string key) const {
    // A key not in the file (a runtime's missing name) points at the
    // nearest enclosing table that is.
    while (true) {
      if (auto it = lines.find(key); it != lines.end()) return it->second;
      size_t cut = key.find_last_of(".[");
      if (cut == std::string::npos || cut == 0) return 0;
      key.resize(cut);
    }
  }
};

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
        readRuntimes(node, line, config);
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
  void readRuntimes(const toml::node& node, int line, Config& config) {
    auto* array = node.as_array();
    if (!array) {
      fail(std::string(kRuntimeKey), line,
           "must be an array of tables ([[runtime]]), not " + typeName(node));
      return;
    }
    config.runtimes.clear();  // an empty list is refused by the range checks
    for (size_t i = 0; i < array->size(); ++i) {
      std::string prefix = std::string(kRuntimeKey) + "[" + std::to_string(i) + "]";
      const toml::node& element = (*array)[i];
      keys_.lines[prefix] = lineOf(element);
      RuntimeConfig runtime;
      if (auto* table = element.as_table()) {
        readTable(*table, prefix, std::span<const Field<RuntimeConfig>>(kRuntimeFields), runtime);
      } else {
        fail(prefix, lineOf(element), "must be a table ([[runtime]]), not " + typeName(element));
        keys_.unreadable.insert(prefix + ".name");  // so that it is not also "missing"
      }
      config.runtimes.push_back(std::move(runtime));  // keeps indices aligned with the file
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

// ---------------------------------------------------------------------------
// Range and consistency checks

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
bool isHostPort(const std::string& text) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  std::string host = text.substr(0, colon), port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5) return false;
  for (char c : port)
    if (c < '0' || c > '9') return false;
  int portNumber = std::stoi(port);
  if (portNumber < 1 || portNumber > 65535) return false;
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

void checkPoolAndHost(const Config& c, Checker& check) {
  const PoolConfig& p = c.pool;
  const HostConfig& h = c.host;
  check.require(p.concurrency >= 1, "pool.concurrency", "must be at least 1");
  // Refused rather than ignored: a setting that does nothing misleads.
  check.require(!p.freezeIdle, "pool.freeze_idle",
                "freezing idle sandboxes is not supported by this thatchd yet");
  check.require(p.queueLength == 0 || p.queueTimeout.count() > 0, "pool.queue_timeout",
                "must be above 0s while pool.queue_length is above 0 (queue_length = 0 turns the "
                "queue off)");
  check.require(p.sendAheadUnder <= kMaxSendAheadUnder, "pool.send_ahead_under_us",
                "must be at most 1000000 (1 s), not " + std::to_string(p.sendAheadUnder.count()));
  check.require(h.maxSandboxes >= 1, "host.max_sandboxes", "must be at least 1");
  static_assert(BusyPoll::kMaxWindow == std::chrono::milliseconds(1), "the message says 1 ms");
  check.require(h.busyPoll <= BusyPoll::kMaxWindow, "host.busy_poll_us",
                "must be at most " + std::to_string(BusyPoll::kMaxWindow.count()) +
                    " (1 ms), not " + std::to_string(h.busyPoll.count()));

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
    for (const auto& module : r.imports)
      check.require(isModuleName(module), prefix + "imports",
                    quoted(module) + " is not a Python module name");
    for (const auto& dir : r.packageDirs) {
      std::string problem = pathProblem(dir);
      check.require(problem.empty(), prefix + "package_dirs", problem);
    }
  }
}

std::vector<ConfigIssue> checkConfig(const Config& config, const KeyInfo& keys) {
  std::vector<ConfigIssue> issues;
  Checker checker(keys, issues);
  checkTopLevel(config, checker);
  checkLimits(config.limits, checker);
  checkPoolAndHost(config, checker);
  checkRuntimes(config.runtimes, checker);
  return issues;
}

std::string describe(const std::string& source, const std::vector<ConfigIssue>& issues) {
  std::string text;
  for (const ConfigIssue& issue : issues) {
    if (!text.empty()) text += '\n';
    // One line per issue whatever the text holds (toml++ quotes the input).
    text += printable(source, 4096);
    if (issue.line > 0) text += ":" + std::to_string(issue.line);
    text += ": ";
    if (!issue.key.empty()) text += printable(issue.key, 4096) + ": ";
    text += printable(issue.message, 4096);
  }
  return text;
}

}  // namespace

// ---------------------------------------------------------------------------

std::string zygoteBesideThisProgram() {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "thatch-zygote";
  std::string path(self, size_t(n));
  return path.substr(0, path.rfind('/') + 1) + "thatch-zygote";
}

Config defaultConfig() {
  Config config;
  config.runtimes = {{"python3.11", 2, {}, {}}, {"python3.11-numpy", 0, {}, {}}};
  return config;
}

std::vector<std::string> knownRuntimeNames() {
  return {"python3.11", "python3.11-numpy"};
}

ConfigError::ConfigError(std::string source, std::vector<ConfigIssue> issues)
    : std::runtime_error(describe(source, issues)),
      source_(std::move(source)),
      issues_(std::move(issues)) {}

Config parseConfig(std::string_view toml, const std::string& sourceName) {
  toml::table root;
  try {
    root = toml::parse(toml, sourceName);
  } catch (const toml::parse_error& error) {
    throw ConfigError(sourceName, {{"", static_cast<int>(error.source().begin.line),
                                    std::string(error.description())}});
  }
  Config config = defaultConfig();
  std::vector<ConfigIssue> issues;
  KeyInfo keys;
  Reader(issues, keys).readDocument(root, config);
  std::vector<ConfigIssue> rangeIssues = checkConfig(config, keys);
  issues.insert(issues.end(), rangeIssues.begin(), rangeIssues.end());
  if (!issues.empty()) {
    std::stable_sort(issues.begin(), issues.end(),
                     [](const ConfigIssue& a, const ConfigIssue& b) { return a.line < b.line; });
    throw ConfigError(sourceName, std::move(issues));
  }
  return config;
}

Config loadConfig(const std::string& path) {
  constexpr size_t kMaxBytes = 1 << 20;  // a config is a few KiB; this stops /dev/zero
  auto failed = [&](const std::string& call) {
    return ConfigError(
        path, {{"", 0, "cannot read the configuration: " + call + ": " + strerror(errno)}});
  };
  base::Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw failed("open");
  std::string text;
  char buffer[16384];
  while (true) {
    ssize_t n = read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw failed("read");
    if (n == 0) break;
    text.append(buffer, n);
    if (text.size() > kMaxBytes)
      throw ConfigError(path, {{"", 0, "larger than 1 MiB: not a configuration file"}});
  }
  return parseConfig(text, path);
}

std::vector<ConfigIssue> validateConfig(const Config& config) {
  return checkConfig(config, KeyInfo{});
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
  return out;
}

}  // namespace supervisor
