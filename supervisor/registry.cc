#include "supervisor/registry.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <filesystem>
#include <sstream>
#include <system_error>
#include <utility>

#include "base/fd.h"
#include "base/sys_error.h"
#include "base/text.h"
#include "base/units.h"
#include "supervisor/store_files.h"
#include "supervisor/toml_fields.h"

namespace supervisor {

using base::isUtf8;
using base::printable;
using base::quoted;
namespace {

namespace fs = std::filesystem;
using base::Fd;

constexpr const char* kRemovedDir = ".removed";  // NAME -> the last version it had
constexpr const char* kVersionFile = "function.toml";
constexpr int64_t kFormat = 1;  // of function.toml
constexpr size_t kMaxNameBytes = 64;
constexpr size_t kMaxRuntimeBytes = 64;
constexpr size_t kMaxHandlerBytes = 256;
constexpr size_t kMaxEnvBytes = 4096;  // like Lambda's 4 KiB

void warn(const std::string& message) {
  registryWarning(message);
}

// User input quoted for a message, control bytes escaped, shortened.
std::string printable(std::string_view text) {
  return quoted(text, 100);
}

bool isIdentifierStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

bool isIdentifierChar(char c) {
  return isIdentifierStart(c) || (c >= '0' && c <= '9');
}

bool isIdentifier(std::string_view s) {
  return !s.empty() && isIdentifierStart(s[0]) && std::all_of(s.begin(), s.end(), isIdentifierChar);
}

bool isPythonKeyword(std::string_view word) {
  static constexpr std::array<std::string_view, 35> kKeywords = {
      "False", "None",     "True",  "and",    "as",   "assert", "async",  "await",    "break",
      "class", "continue", "def",   "del",    "elif", "else",   "except", "finally",  "for",
      "from",  "global",   "if",    "import", "in",   "is",     "lambda", "nonlocal", "not",
      "or",    "pass",     "raise", "return", "try",  "while",  "with",   "yield"};
  return std::find(kKeywords.begin(), kKeywords.end(), word) != kKeywords.end();
}

// Variables the runtime sets for the handler (Lambda's and ours) or that
// steer the interpreter.
bool isReservedEnvKey(std::string_view key) {
  for (std::string_view prefix : {"AWS_", "LAMBDA_", "THATCH_", "PYTHON"})
    if (key.substr(0, prefix.size()) == prefix) return true;
  return key == "_HANDLER" || key == "_X_AMZN_TRACE_ID";
}

void validateHandler(const std::string& handler) {
  std::string what = "handler " + printable(handler);
  if (handler.size() > kMaxHandlerBytes)
    throw DeployError(what + " is longer than " + std::to_string(kMaxHandlerBytes) + " bytes");
  if (handler.find('.') == std::string::npos)
    throw DeployError(what + " must be module.function (for example 'handler.handler')");
  size_t start = 0;
  for (;;) {
    size_t dot = std::min(handler.find('.', start), handler.size());
    std::string_view part = std::string_view(handler).substr(start, dot - start);
    if (part.empty()) throw DeployError(what + " has an empty part (must be module.function)");
    if (!isIdentifier(part))
      throw DeployError(what + ": " + printable(part) + " is not a Python identifier");
    if (isPythonKeyword(part))
      throw DeployError(what + ": " + printable(part) + " is a Python keyword");
    if (dot == handler.size()) return;
    start = dot + 1;
  }
}

void validateEnv(const std::vector<std::pair<std::string, std::string>>& env) {
  size_t total = 0;
  for (size_t i = 0; i < env.size(); ++i) {
    const auto& [key, value] = env[i];
    if (!isIdentifier(key))
      throw DeployError("environment variable " + printable(key) +
                        ": names are letters, digits and '_', not starting with a digit");
    if (isReservedEnvKey(key))
      throw DeployError("environment variable " + printable(key) +
                        " is reserved (AWS_*, LAMBDA_*, THATCH_*, PYTHON*, _HANDLER, "
                        "_X_AMZN_TRACE_ID)");
    for (size_t j = 0; j < i; ++j)
      if (env[j].first == key)
        throw DeployError("environment variable " + printable(key) + " is set twice");
    // function.toml is UTF-8 by definition: anything else would not load back.
    if (value.find('\0') != std::string::npos || !isUtf8(value))
      throw DeployError("environment variable " + printable(key) +
                        ": the value must be UTF-8 text without NUL");
    total += key.size() + 1 + value.size();
  }
  if (total > kMaxEnvBytes)
    throw DeployError("the environment variables take " + std::to_string(total) +
                      " bytes as KEY=VALUE; at most " + std::to_string(kMaxEnvBytes) +
                      " are allowed");
}

void validateLayers(const std::vector<LayerRef>& layers) {
  if (layers.size() > thatch::kMaxLayers)
    throw DeployError(std::to_string(layers.size()) + " layers: a function may use at most " +
                      std::to_string(thatch::kMaxLayers));
  for (size_t i = 0; i < layers.size(); ++i) {
    validateLayerName(layers[i].name);
    if (layers[i].version == 0)
      throw DeployError("layer " + printable(layers[i].name) + ": versions count from 1");
    for (size_t j = 0; j < i; ++j)
      if (layers[j].name == layers[i].name)
        throw DeployError("layer " + printable(layers[i].name) +
                          " is named twice: a function uses one version of each layer");
  }
}

// ---------------------------------------------------------------------------
// function.toml

std::string toToml(const FunctionVersion& v) {
  const FunctionConfig& c = v.config;
  toml::array env;
  for (const auto& [key, value] : c.env)
    env.push_back(toml::table{{"name", key}, {"value", value}});
  toml::table config{
      {"runtime", c.runtime},
      {"handler", c.handler},
      {"memory_bytes", static_cast<int64_t>(c.memoryBytes)},
      {"timeout_ms", static_cast<int64_t>(c.timeout.count())},
      {"concurrency", static_cast<int64_t>(c.concurrency)},
      {"network", thatch::networkName(c.network)},
      {"raw", c.raw},
      {"tmp_noexec", c.tmpNoexec},
      {"env", std::move(env)},
  };
  if (!c.layers.empty()) {
    toml::array layers;
    for (const LayerRef& layer : c.layers) layers.push_back(thatch::layerRefText(layer));
    config.insert("layers", std::move(layers));
  }
  toml::table root{
      {"format", kFormat},
      {"name", v.name},
      {"version", static_cast<int64_t>(v.version)},
      {"created_unix_ms", v.createdUnixMs},
      {"code_bytes", static_cast<int64_t>(v.codeBytes)},
      {"file_count", static_cast<int64_t>(v.fileCount)},
      {"config", std::move(config)},
  };
  std::ostringstream out;
  out << root << "\n";
  return out.str();
}

FunctionConfig configFromToml(const toml::table& table) {
  FunctionConfig c;
  c.runtime = required<std::string>(table, "runtime");
  c.handler = required<std::string>(table, "handler");
  c.memoryBytes = requiredCount(table, "memory_bytes");
  c.timeout = std::chrono::milliseconds(requiredCount(table, "timeout_ms"));
  c.concurrency = static_cast<unsigned>(requiredCount(table, "concurrency", UINT_MAX));
  std::string network = required<std::string>(table, "network");
  std::optional<Network> access = thatch::networkNamed(network);
  if (!access) throw std::runtime_error("unknown network '" + network + "'");
  c.network = *access;
  c.raw = required<bool>(table, "raw");
  // Added later: a version stored before it has none.
  c.tmpNoexec = table["tmp_noexec"].value_exact<bool>().value_or(false);
  if (table.contains("tmp_noexec") && !table["tmp_noexec"].is_boolean())
    throw std::runtime_error("'tmp_noexec' is mistyped");
  const toml::array* env = table["env"].as_array();
  if (!env) throw std::runtime_error("'env' is missing or mistyped");
  for (const toml::node& node : *env) {
    const toml::table* var = node.as_table();
    if (!var) throw std::runtime_error("an 'env' entry is not a table");
    c.env.emplace_back(required<std::string>(*var, "name"), required<std::string>(*var, "value"));
  }
  // Optional: absent when there are none, as in versions stored before it.
  if (table.contains("layers")) {
    const toml::array* layers = table["layers"].as_array();
    if (!layers) throw std::runtime_error("'layers' is mistyped");
    for (const toml::node& node : *layers) {
      std::optional<std::string> text = node.value_exact<std::string>();
      std::optional<LayerRef> layer = text ? thatch::layerRefNamed(*text) : std::nullopt;
      if (!layer) throw std::runtime_error("a 'layers' entry is not NAME:VERSION");
      c.layers.push_back(std::move(*layer));
    }
  }
  validateFunctionConfig(c);
  return c;
}

FunctionVersion readVersion(const std::string& name, uint64_t version, const std::string& dir) {
  toml::table root = toml::parse_file(dir + "/" + kVersionFile);
  int64_t format = required<int64_t>(root, "format");
  if (format != kFormat) throw std::runtime_error("unknown format " + std::to_string(format));
  FunctionVersion v;
  v.name = required<std::string>(root, "name");
  v.version = requiredCount(root, "version");
  if (v.name != name || v.version != version)
    throw std::runtime_error("it describes " + v.name + " version " + std::to_string(v.version));
  v.createdUnixMs = required<int64_t>(root, "created_unix_ms");
  v.codeBytes = requiredCount(root, "code_bytes");
  v.fileCount = requiredCount(root, "file_count");
  const toml::table* config = root["config"].as_table();
  if (!config) throw std::runtime_error("'config' is missing or mistyped");
  v.config = configFromToml(*config);
  v.codeDir = dir + "/code";
  struct stat st;
  if (lstat(v.codeDir.c_str(), &st) < 0 || !S_ISDIR(st.st_mode))
    throw std::runtime_error("no code directory");
  return v;
}

}  // namespace

void validateFunctionName(std::string_view name) {
  if (name.empty()) throw DeployError("the function name is empty");
  if (name.size() > kMaxNameBytes)
    throw DeployError("function name " + printable(name) + " is longer than " +
                      std::to_string(kMaxNameBytes) + " characters");
  if (!isValidName(name))
    throw DeployError("function name " + printable(name) +
                      ": only lowercase letters, digits, '_' and '-' are allowed, starting with "
                      "a letter or digit");
}

void validateFunctionConfig(const FunctionConfig& config) {
  const std::string& runtime = config.runtime;
  if (runtime.empty()) throw DeployError("the runtime is empty");
  if (runtime.size() > kMaxRuntimeBytes || !std::all_of(runtime.begin(), runtime.end(), [](char c) {
        return isIdentifierChar(c) || c == '.' || c == '-';
      }))
    throw DeployError("runtime " + printable(runtime) +
                      ": at most 64 letters, digits, '.', '_' and '-'");
  validateHandler(config.handler);
  if (config.memoryBytes > static_cast<uint64_t>(INT64_MAX))
    throw DeployError("memory " + std::to_string(config.memoryBytes) + " bytes is too large");
  if (config.timeout.count() < 0) throw DeployError("the timeout is negative");
  validateEnv(config.env);
  validateLayers(config.layers);
}

// ---------------------------------------------------------------------------
// Registry

StateDirLock::StateDirLock(const std::string& stateDir) {
  if (mkdir(stateDir.c_str(), 0711) != 0 && errno != EEXIST)
    base::throwSysError("cannot create " + stateDir);
  std::string path = stateDir + "/thatchd.lock";
  fd_.reset(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd_) base::throwSysError("open " + path);
  if (flock(fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      throw std::runtime_error("another thatchd (or program embedding thatch) uses " + stateDir);
    base::throwSysError("flock " + path);
  }
}

uint64_t storedBytesOf(const FunctionVersion& version) {
  constexpr uint64_t kBlock = 4096;
  return version.codeBytes + kBlock * (version.fileCount + 2);
}

Registry::Registry(std::string stateDir, ArchiveLimits limits, Retention retention)
    : stateDir_(fs::absolute(stateDir).lexically_normal().string()),
      limits_(limits),
      retention_(retention) {
  while (stateDir_.size() > 1 && stateDir_.back() == '/') stateDir_.pop_back();
  functionsDir_ = stateDir_ + "/functions";
  // 0711, not 0700: sandboxes open their code as their own unprivileged
  // uid (docs/registry.md), which needs search permission on the path.
  if (makeDirectory(stateDir_, 0711)) fsyncPath(fs::path(stateDir_).parent_path().string());
  struct stat st;
  if (stat(stateDir_.c_str(), &st) == 0 && !(st.st_mode & S_IXOTH))
    warn(stateDir_ + " is not searchable by other uids: sandboxes will not reach their code");
  if (makeDirectory(functionsDir_, 0711)) fsyncPath(stateDir_);
  if (chmod(functionsDir_.c_str(), 0711) < 0) base::throwSysError("chmod " + functionsDir_);
  if (makeDirectory(functionsDir_ + "/" + kRemovedDir, 0700)) fsyncPath(functionsDir_);
  // First: a function version loads only with its layers.
  layers_.emplace(stateDir_ + "/layers", limits_);
  load();
}

Registry::~Registry() {
  for (const std::string& dir : removed_) removeStagedTree(dir);
}

std::vector<std::string> Registry::takeRemoved() {
  std::vector<std::string> removed = std::exchange(removed_, {});
  for (std::string& dir : layers_->takeRemoved()) removed.push_back(std::move(dir));
  return removed;
}

void Registry::discard(StagedCode& staged) {
  if (!staged.dir_.empty()) removed_.push_back(std::exchange(staged.dir_, {}));
}

void Registry::moveOut(const std::string& dir) {
  removed_.push_back(moveOutOfStore(dir, functionsDir_));
}

std::vector<uint64_t> Registry::pastRetention(const Function& function,
                                              const std::set<uint64_t>& inUse) const {
  std::vector<uint64_t> past;
  if (retention_.keepVersions == 0 || function.versions.size() < retention_.keepVersions)
    return past;
  // The new version is one of those kept: keepVersions - 1 of these stay.
  size_t older = function.versions.size() - (retention_.keepVersions - 1);
  for (auto it = function.versions.begin(); older > 0; ++it, --older)
    if (!inUse.count(it->first)) past.push_back(it->first);
  return past;
}

void Registry::load() {
  for (const std::string& entry : directoryNames(functionsDir_)) {
    std::string path = functionsDir_ + "/" + entry;
    try {
      if (entry.compare(0, kTmpPrefix.size(), kTmpPrefix) == 0) {
        removeTree(path);  // an interrupted deploy or remove
      } else if (entry == kRemovedDir) {
        for (const auto& [name, last] : readRemovedMarkers(path))
          functions_[name].lastVersion = std::max(functions_[name].lastVersion, last);
      } else if (!isValidName(entry)) {
        warn("ignoring " + path + ": not a function name");
      } else {
        loadFunction(entry);
      }
    } catch (const std::exception& e) {
      // One unreadable entry must not keep thatchd from starting.
      warn("skipping " + path + ": " + e.what());
    }
  }
}

void Registry::loadFunction(const std::string& name) {
  std::string dir = functionsDir_ + "/" + name;
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(dir, ec))) return warn("ignoring " + dir);
  Function& function = functions_[name];
  for (const std::string& entry : directoryNames(dir)) {
    std::string path = dir + "/" + entry;
    std::optional<uint64_t> version = parseVersion(entry);
    if (!version) {
      warn("ignoring " + path + ": not a version number");
      continue;
    }
    // Counted even if it does not load: its number is never given out again.
    function.lastVersion = std::max(function.lastVersion, *version);
    try {
      FunctionVersion read = readVersion(name, *version, path);
      read.layerDirs = layerDirsOf(read.config);
      auto [loaded, added] = function.versions.emplace(*version, std::move(read));
      if (added) storedBytes_ += storedBytesOf(loaded->second);
    } catch (const std::exception& e) {
      warn("skipping " + path + ": " + e.what());
    }
  }
}

void Registry::checkStoredBytes(uint64_t adding, uint64_t freeing) const {
  uint64_t after = storedBytes() - freeing + adding;
  if (retention_.maxStoredBytes && after > retention_.maxStoredBytes)
    throw DeployError("thatchd's registry is full: this version (" + base::formatSize(adding) +
                      ") would take it to " + base::formatSize(after) + ", over its " +
                      base::formatSize(retention_.maxStoredBytes) +
                      " ([registry] max_stored); remove functions or layers, or deploy less");
}

std::vector<std::string> Registry::layerDirsOf(const FunctionConfig& config) const {
  std::vector<std::string> dirs;
  for (const LayerRef& ref : config.layers) {
    if (std::optional<LayerVersion> layer = layers_->get(ref.name, ref.version)) {
      dirs.push_back(layer->codeDir);
      continue;
    }
    std::vector<LayerVersion> versions = layers_->versions(ref.name);
    if (versions.empty()) throw DeployError("there is no layer named " + printable(ref.name));
    std::string known;
    for (const LayerVersion& v : versions)
      known += (known.empty() ? "" : ", ") + std::to_string(v.version);
    throw DeployError("layer " + printable(ref.name) + " has no version " +
                      std::to_string(ref.version) + " (its versions: " + known + ")");
  }
  return dirs;
}

LayerVersion Registry::publishLayer(const std::string& name, StagedCode& staged) {
  validateLayerName(name);
  LayerVersion counted;
  counted.codeBytes = staged.stats_.bytes;
  counted.fileCount = staged.stats_.files;
  checkStoredBytes(storedBytesOf(counted), 0);
  return layers_->commit(name, staged);
}

LayerVersion Registry::publishLayerDirectory(const std::string& name,
                                             const std::string& sourceDir) {
  validateLayerName(name);
  return publishLayer(name, *layerStagingArea().directory(sourceDir));
}

bool Registry::removeLayer(const std::string& name) {
  // Each function using it, with the versions that do.
  std::map<std::string, std::vector<uint64_t>> users;
  for (const auto& [functionName, function] : functions_)
    for (const auto& [number, version] : function.versions)
      for (const LayerRef& layer : version.config.layers)
        if (layer.name == name) users[functionName].push_back(number);
  if (users.empty()) return layers_->remove(name);
  std::string named;
  size_t shown = 0;
  for (const auto& [functionName, numbers] : users) {
    if (shown++ == 3) {
      named += " and " + std::to_string(users.size() - 3) + " more";
      break;
    }
    std::string versions;
    for (uint64_t number : numbers)
      versions += (versions.empty() ? "" : ", ") + std::to_string(number);
    named += (named.empty() ? "" : "; ") + printable(functionName) +
             (numbers.size() == 1 ? " version " : " versions ") + versions;
  }
  throw DeployError("layer " + printable(name) + " is used by function " + named +
                    ": remove the function, or deploy it without the layer until the versions "
                    "that use it are past [registry] keep_versions");
}

FunctionVersion Registry::commit(const std::string& name, const FunctionConfig& config,
                                 StagedCode& staged, const std::set<uint64_t>& inUse) {
  validateFunctionName(name);
  validateFunctionConfig(config);
  if (staged.dir_.empty()) throw std::logic_error("this code was committed already");
  // The version is taken here, not when staging began: deploys of one name
  // may stage at once, and each gets its own number.
  auto known = functions_.find(name);
  uint64_t version = (known == functions_.end() ? 0 : known->second.lastVersion) + 1;
  std::string functionDir = functionsDir_ + "/" + name;
  std::string versionDir = functionDir + "/" + std::to_string(version);

  FunctionVersion result{name,
                         version,
                         config,
                         versionDir + "/code",
                         nowUnixMs(),
                         staged.stats_.bytes,
                         staged.stats_.files,
                         layerDirsOf(config)};
  std::vector<uint64_t> past;
  if (known != functions_.end()) past = pastRetention(known->second, inUse);
  if (retention_.maxStoredBytes) {
    uint64_t freed = 0;
    for (uint64_t old : past) freed += storedBytesOf(known->second.versions.at(old));
    checkStoredBytes(storedBytesOf(result), freed);
  }
  writeNewFile(staged.dir_ + "/" + kVersionFile, toToml(result));
  if (chmod(staged.dir_.c_str(), 0711) < 0) base::throwSysError("chmod " + staged.dir_);
  fsyncPath(staged.dir_);

  if (makeDirectory(functionDir, 0711)) fsyncPath(functionsDir_);
  renameNoReplace(staged.dir_, versionDir);
  staged.dir_.clear();
  Function& function = functions_[name];
  function.lastVersion = version;
  function.versions.emplace(version, result);
  storedBytes_ += storedBytesOf(result);
  // Past retention: out of the registry before the fsyncs that make the
  // new version durable make these renames durable too.
  for (uint64_t old : past) {
    try {
      moveOut(functionDir + "/" + std::to_string(old));
    } catch (const std::exception& e) {
      warn("cannot remove version " + std::to_string(old) + " of " + name + ": " + e.what());
      continue;  // kept: a later deploy tries again
    }
    storedBytes_ -= storedBytesOf(function.versions.at(old));
    function.versions.erase(old);
  }
  // The renames are durable once the directories they changed are.
  fsyncPath(functionDir);
  fsyncPath(functionsDir_);
  return result;
}

FunctionVersion Registry::deployDirectory(const std::string& name, const std::string& sourceDir,
                                          const FunctionConfig& config) {
  validateFunctionName(name);
  validateFunctionConfig(config);
  return commit(name, config, *stagingArea().directory(sourceDir));
}

FunctionVersion Registry::deployArchive(const std::string& name, const std::string& archivePath,
                                        const FunctionConfig& config) {
  validateFunctionName(name);
  validateFunctionConfig(config);
  return commit(name, config, *stagingArea().archive(archivePath));
}

FunctionVersion Registry::deployArchiveBytes(const std::string& name, std::string_view archive,
                                             const FunctionConfig& config) {
  validateFunctionName(name);
  validateFunctionConfig(config);
  return commit(name, config, *stagingArea().archiveBytes(archive));
}

bool Registry::remove(const std::string& name) {
  if (!isValidName(name)) return false;
  std::string dir = functionsDir_ + "/" + name;
  std::error_code ec;
  fs::file_status status = fs::symlink_status(dir, ec);
  if (!fs::is_directory(status)) return false;
  bool hadAnything = !fs::is_empty(dir);
  Function& function = functions_[name];
  // First, so that the numbers stay taken even if we crash right after.
  if (function.lastVersion > 0)
    writeRemovedMarker(functionsDir_ + "/" + kRemovedDir, functionsDir_, name,
                       function.lastVersion);
  moveOut(dir);
  fsyncPath(functionsDir_);
  for (const auto& [number, version] : function.versions) storedBytes_ -= storedBytesOf(version);
  function.versions.clear();
  return hadAnything;
}

std::vector<std::string> Registry::list() const {
  return namesIn(functions_);
}

std::vector<FunctionVersion> Registry::versions(const std::string& name) const {
  return versionsIn(functions_, name);
}

std::optional<FunctionVersion> Registry::latest(const std::string& name) const {
  return versionIn(functions_, name);
}

bool Registry::contains(const std::string& name) const {
  auto it = functions_.find(name);
  return it != functions_.end() && !it->second.versions.empty();
}

std::optional<FunctionVersion> Registry::get(const std::string& name, uint64_t version) const {
  if (version == 0) return std::nullopt;
  return versionIn(functions_, name, version);
}

}  // namespace supervisor
