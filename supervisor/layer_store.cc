#include "supervisor/layer_store.h"

#include <sys/stat.h>
#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <system_error>
#include <utility>

#include "base/sys_error.h"
#include "base/text.h"
#include "supervisor/store_files.h"
#include "supervisor/toml_fields.h"

namespace supervisor {

namespace {

namespace fs = std::filesystem;

constexpr const char* kRemovedDir = ".removed";  // NAME -> the last version it had
constexpr const char* kVersionFile = "layer.toml";
constexpr int64_t kFormat = 1;  // of layer.toml

std::string toToml(const LayerVersion& v) {
  toml::table root{
      {"format", kFormat},
      {"name", v.name},
      {"version", static_cast<int64_t>(v.version)},
      {"created_unix_ms", v.createdUnixMs},
      {"code_bytes", static_cast<int64_t>(v.codeBytes)},
      {"file_count", static_cast<int64_t>(v.fileCount)},
  };
  std::ostringstream out;
  out << root << "\n";
  return out.str();
}

LayerVersion readVersion(const std::string& name, uint64_t version, const std::string& dir) {
  toml::table root = toml::parse_file(dir + "/" + kVersionFile);
  int64_t format = required<int64_t>(root, "format");
  if (format != kFormat) throw std::runtime_error("unknown format " + std::to_string(format));
  LayerVersion v;
  v.name = required<std::string>(root, "name");
  v.version = requiredCount(root, "version");
  if (v.name != name || v.version != version)
    throw std::runtime_error("it describes " + v.name + " version " + std::to_string(v.version));
  v.createdUnixMs = required<int64_t>(root, "created_unix_ms");
  v.codeBytes = requiredCount(root, "code_bytes");
  v.fileCount = requiredCount(root, "file_count");
  v.codeDir = dir + "/code";
  struct stat st;
  if (lstat(v.codeDir.c_str(), &st) < 0 || !S_ISDIR(st.st_mode))
    throw std::runtime_error("no code directory");
  return v;
}

}  // namespace

void validateLayerName(std::string_view name) {
  if (name.empty()) throw DeployError("the layer name is empty");
  if (!isValidName(name))
    throw DeployError("layer name " + base::quoted(name, 100) +
                      ": 1 to 64 lowercase letters, digits, '_' and '-', starting with a letter "
                      "or digit");
}

uint64_t storedBytesOf(const LayerVersion& version) {
  constexpr uint64_t kBlock = 4096;
  return version.codeBytes + kBlock * (version.fileCount + 2);
}

LayerStore::LayerStore(std::string layersDir, ArchiveLimits limits)
    : layersDir_(std::move(layersDir)), limits_(limits) {
  // 0711 as the functions' directories: sandboxes open the trees as their
  // own unprivileged uid.
  if (makeDirectory(layersDir_, 0711)) fsyncPath(fs::path(layersDir_).parent_path().string());
  if (chmod(layersDir_.c_str(), 0711) < 0) base::throwSysError("chmod " + layersDir_);
  if (makeDirectory(layersDir_ + "/" + kRemovedDir, 0700)) fsyncPath(layersDir_);
  load();
}

LayerStore::~LayerStore() {
  for (const std::string& dir : removed_) removeStagedTree(dir);
}

std::vector<std::string> LayerStore::takeRemoved() {
  return std::exchange(removed_, {});
}

void LayerStore::load() {
  for (const std::string& entry : directoryNames(layersDir_)) {
    std::string path = layersDir_ + "/" + entry;
    try {
      if (entry.compare(0, kTmpPrefix.size(), kTmpPrefix) == 0) {
        removeTree(path);  // an interrupted publish or remove
      } else if (entry == kRemovedDir) {
        for (const auto& [name, last] : readRemovedMarkers(path))
          layers_[name].lastVersion = std::max(layers_[name].lastVersion, last);
      } else if (!isValidName(entry)) {
        registryWarning("ignoring " + path + ": not a layer name");
      } else {
        loadLayer(entry);
      }
    } catch (const std::exception& e) {
      registryWarning("skipping " + path + ": " + e.what());
    }
  }
}

void LayerStore::loadLayer(const std::string& name) {
  std::string dir = layersDir_ + "/" + name;
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(dir, ec))) return registryWarning("ignoring " + dir);
  Layer& layer = layers_[name];
  for (const std::string& entry : directoryNames(dir)) {
    std::string path = dir + "/" + entry;
    std::optional<uint64_t> version = parseVersion(entry);
    if (!version) {
      registryWarning("ignoring " + path + ": not a version number");
      continue;
    }
    // Counted even if it does not load: its number is never given out again.
    layer.lastVersion = std::max(layer.lastVersion, *version);
    try {
      auto [loaded, added] = layer.versions.emplace(*version, readVersion(name, *version, path));
      if (added) storedBytes_ += storedBytesOf(loaded->second);
    } catch (const std::exception& e) {
      registryWarning("skipping layer " + path + ": " + e.what());
    }
  }
}

LayerVersion LayerStore::commit(const std::string& name, StagedCode& staged) {
  validateLayerName(name);
  if (staged.dir_.empty()) throw std::logic_error("this code was committed already");
  auto known = layers_.find(name);
  uint64_t version = (known == layers_.end() ? 0 : known->second.lastVersion) + 1;
  std::string layerDir = layersDir_ + "/" + name;
  std::string versionDir = layerDir + "/" + std::to_string(version);
  LayerVersion result{
      name, version, versionDir + "/code", nowUnixMs(), staged.stats_.bytes, staged.stats_.files};
  writeNewFile(staged.dir_ + "/" + kVersionFile, toToml(result));
  if (chmod(staged.dir_.c_str(), 0711) < 0) base::throwSysError("chmod " + staged.dir_);
  fsyncPath(staged.dir_);
  if (makeDirectory(layerDir, 0711)) fsyncPath(layersDir_);
  renameNoReplace(staged.dir_, versionDir);
  staged.dir_.clear();
  Layer& layer = layers_[name];
  layer.lastVersion = version;
  layer.versions.emplace(version, result);
  storedBytes_ += storedBytesOf(result);
  fsyncPath(layerDir);
  fsyncPath(layersDir_);
  return result;
}

bool LayerStore::remove(const std::string& name) {
  if (!isValidName(name)) return false;
  std::string dir = layersDir_ + "/" + name;
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(dir, ec))) return false;
  bool hadAnything = !fs::is_empty(dir);
  Layer& layer = layers_[name];
  // First, so that the numbers stay taken even if we crash right after.
  if (layer.lastVersion > 0)
    writeRemovedMarker(layersDir_ + "/" + kRemovedDir, layersDir_, name, layer.lastVersion);
  removed_.push_back(moveOutOfStore(dir, layersDir_));
  fsyncPath(layersDir_);
  for (const auto& [number, version] : layer.versions) storedBytes_ -= storedBytesOf(version);
  layer.versions.clear();
  return hadAnything;
}

std::vector<std::string> LayerStore::list() const {
  return namesIn(layers_);
}

std::vector<LayerVersion> LayerStore::versions(const std::string& name) const {
  return versionsIn(layers_, name);
}

std::optional<LayerVersion> LayerStore::latest(const std::string& name) const {
  return versionIn(layers_, name);
}

std::optional<LayerVersion> LayerStore::get(const std::string& name, uint64_t version) const {
  if (version == 0) return std::nullopt;
  return versionIn(layers_, name, version);
}

}  // namespace supervisor
