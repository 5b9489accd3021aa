// Layers, as Lambda's: trees of files (libraries, packages, data) published
// once as immutable, numbered versions of a name, and shown read-only under
// /opt in the sandboxes of the functions that name them. Kept in
// STATE/layers, crash-safe as the functions are. Which functions use which
// layers is the Registry's business (it owns the LayerStore). Layout and
// rules: docs/registry.md.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "supervisor/archive.h"
#include "supervisor/staging.h"

namespace supervisor {

struct LayerVersion {
  std::string name;
  uint64_t version = 0;  // 1, 2, 3, ...; never reused for a name, even after remove
  std::string codeDir;   // absolute path of the immutable tree
  int64_t createdUnixMs = 0;
  uint64_t codeBytes = 0;  // of the regular files
  uint64_t fileCount = 0;  // regular files
  bool operator==(const LayerVersion&) const = default;
};

// Named as functions are: 1 to 64 of [a-z0-9_-], starting with [a-z0-9].
// Throws DeployError.
void validateLayerName(std::string_view name);

// What a layer version counts against Retention::maxStoredBytes, as a
// function version does (storedBytesOf(FunctionVersion)).
uint64_t storedBytesOf(const LayerVersion& version);

// Owns a layers directory (STATE/layers). Single-threaded; one per state
// directory.
class LayerStore {
 public:
  // Creates the directories, removes what crashed publishes and removes
  // left behind, and loads every version (a damaged one is reported on
  // stderr and skipped, its number still taken).
  LayerStore(std::string layersDir, ArchiveLimits limits);
  ~LayerStore();  // deletes the trees takeRemoved() did not hand out
  LayerStore(const LayerStore&) = delete;
  LayerStore& operator=(const LayerStore&) = delete;

  StagingArea stagingArea() const { return {layersDir_, limits_}; }

  // Gives the staged tree the next version of `name` (a small file,
  // renames, fsyncs). Throws DeployError for a bad name, std::system_error
  // when the host fails; either way nothing is stored.
  LayerVersion commit(const std::string& name, StagedCode& staged);

  // Removes every version of `name`; false if there was nothing under that
  // name. Whether a function still uses it is for the caller to check.
  bool remove(const std::string& name);

  // What remove() took out of the store (directories named .tmp-*), for
  // the caller to delete off its event loop.
  std::vector<std::string> takeRemoved();

  // What every loaded version counts (storedBytesOf()), together.
  uint64_t storedBytes() const { return storedBytes_; }

  std::vector<std::string> list() const;                              // sorted
  std::vector<LayerVersion> versions(const std::string& name) const;  // ascending
  std::optional<LayerVersion> latest(const std::string& name) const;
  std::optional<LayerVersion> get(const std::string& name, uint64_t version) const;

  const std::string& layersDir() const { return layersDir_; }

 private:
  struct Layer {
    std::map<uint64_t, LayerVersion> versions;  // loaded ones
    uint64_t lastVersion = 0;  // highest ever given out, removed and damaged ones included
  };

  void load();
  void loadLayer(const std::string& name);

  std::string layersDir_;
  ArchiveLimits limits_;
  uint64_t storedBytes_ = 0;
  std::vector<std::string> removed_;     // for takeRemoved()
  std::map<std::string, Layer> layers_;  // removed names too, for lastVersion
};

}  // namespace supervisor
