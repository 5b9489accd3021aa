// The function registry: deployed functions as immutable, numbered versions
// in thatchd's state directory, surviving restarts and crashes. Layout,
// rules and crash safety: docs/registry.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/fd.h"
#include "supervisor/archive.h"
#include "supervisor/layer_store.h"
#include "supervisor/staging.h"
#include "supervisor/store_files.h"
#include "thatch/types.h"

namespace supervisor {

using thatch::FunctionConfig;
using thatch::LayerRef;
using thatch::Network;

struct FunctionVersion {
  std::string name;
  uint64_t version = 0;  // 1, 2, 3, ...; never reused for a name, even after remove
  FunctionConfig config;
  std::string codeDir;  // absolute path of the immutable code tree
  int64_t createdUnixMs = 0;
  uint64_t codeBytes = 0;  // of the regular files
  uint64_t fileCount = 0;  // regular files
  // The trees of config.layers, in their order: what the sandbox merges
  // at /opt.
  std::vector<std::string> layerDirs;
  bool operator==(const FunctionVersion&) const = default;
};

// 1 to 64 of [a-z0-9_-], starting with [a-z0-9]. Lowercase only, so that no
// two names differ by case alone.
void validateFunctionName(std::string_view name);

// runtime: 1 to 64 of [A-Za-z0-9._-]. handler: `module.function`, each part
// an ASCII Python identifier and not a keyword. memoryBytes < 2^63, timeout
// >= 0. env: keys [A-Za-z_][A-Za-z0-9_]*, no duplicates, none reserved
// (prefixes AWS_, LAMBDA_, THATCH_, PYTHON; _HANDLER, _X_AMZN_TRACE_ID);
// values UTF-8 without NUL; all "KEY=VALUE" strings together at most 4 KiB.
// layers: at most 5, each a valid layer name and a version from 1, no name
// twice (whether they are stored is Registry::layerDirsOf()'s to say).
void validateFunctionConfig(const FunctionConfig& config);

// An exclusive lock on a state directory (STATE/thatchd.lock, created with
// the directory if need be), held while the object lives: two thatchds, or
// a thatchd and an in-process supervisor, on one state directory would hand
// out the same version numbers and remove each other's sandboxes. Throws
// std::runtime_error if another process holds it.
class StateDirLock {
 public:
  explicit StateDirLock(const std::string& stateDir);

 private:
  base::Fd fd_;  // the lock goes when it closes
};

// How much a registry keeps (config [registry]).
struct Retention {
  // Versions kept of each function, the newest; a deploy removes older
  // ones, except those still in use. 0: every version.
  unsigned keepVersions = 0;
  // What all versions together may take (storedBytesOf()); a deploy over it
  // is refused. 0: no bound.
  uint64_t maxStoredBytes = 0;
  bool operator==(const Retention&) const = default;
};

// What a version counts against Retention::maxStoredBytes: its files'
// bytes, and a block (4 KiB) for each file and for its directory and
// function.toml.
uint64_t storedBytesOf(const FunctionVersion& version);

// Owns STATE/functions, and STATE/layers through its LayerStore. One
// Registry per state directory (two would hand out the same version
// numbers); single-threaded. Deploys, publishes and removes are crash-safe:
// after a crash a version is either all there or not at all.
class Registry {
 public:
  // Creates the directories, removes what crashed deploys and removes left
  // behind, and loads every layer version, then every function version (a
  // damaged one, or one whose layers did not load, is reported on stderr
  // and skipped).
  explicit Registry(std::string stateDir, ArchiveLimits limits = {}, Retention retention = {});
  ~Registry();  // deletes the trees takeRemoved() did not hand out
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Each stores a new version of `name` from untrusted code, or throws
  // DeployError (bad input; nothing is stored) or std::system_error (the
  // host failed; nothing is stored).
  FunctionVersion deployDirectory(const std::string& name, const std::string& sourceDir,
                                  const FunctionConfig& config);
  FunctionVersion deployArchive(const std::string& name, const std::string& archivePath,
                                const FunctionConfig& config);
  FunctionVersion deployArchiveBytes(const std::string& name, std::string_view archive,
                                     const FunctionConfig& config);

  // The same in two steps: staging (on any thread, see StagingArea), then
  // commit, which gives the code the next version of `name` (fast: a small
  // file, renames, fsyncs of three directories). Throws as the deploys do,
  // and DeployError when a layer of `config` is not stored or the new
  // version would take the registry over its Retention::maxStoredBytes.
  // Then it removes the versions of `name` past
  // Retention::keepVersions but those in `inUse` (still run or about to be:
  // a later deploy removes them).
  // A new [registry]: it applies from the next commit.
  void setRetention(Retention retention) { retention_ = retention; }
  StagingArea stagingArea() const { return {functionsDir_, limits_}; }
  FunctionVersion commit(const std::string& name, const FunctionConfig& config, StagedCode& staged,
                         const std::set<uint64_t>& inUse = {});

  // Removes every version of `name`, including any skipped at load as
  // damaged; false if there was nothing under that name. Live sandboxes of
  // the function should be gone first: its code trees go.
  bool remove(const std::string& name);

  // What remove(), commit() and removeLayer() took out of the registry:
  // directories (in the functions or layers directory, named .tmp-*) for
  // the caller to delete off its event loop (they may hold thousands of
  // files). The next start deletes what a crash left.
  std::vector<std::string> takeRemoved();

  // Code staged for a deploy that failed: its directory goes to
  // takeRemoved() too, rather than being deleted by ~StagedCode.
  void discard(StagedCode& staged);

  // What every loaded version, of functions and layers, counts
  // (storedBytesOf()), together.
  uint64_t storedBytes() const { return storedBytes_ + layers_->storedBytes(); }

  // The trees of `config`'s layers, in its order; DeployError naming the
  // first layer version that is not stored.
  std::vector<std::string> layerDirsOf(const FunctionConfig& config) const;

  // A new version of layer `name` from code staged in layerStagingArea():
  // as commit(), without retention (a layer version stays until its layer
  // is removed). Throws DeployError (a bad name, or over
  // Retention::maxStoredBytes) or std::system_error.
  StagingArea layerStagingArea() const { return layers_->stagingArea(); }
  LayerVersion publishLayer(const std::string& name, StagedCode& staged);
  LayerVersion publishLayerDirectory(const std::string& name, const std::string& sourceDir);

  // Removes every version of layer `name`; false if there was no such
  // layer. Refused (DeployError, naming them) while versions of functions
  // stored here use one of its versions: a sandbox of theirs could start
  // at any time and needs it.
  bool removeLayer(const std::string& name);

  const LayerStore& layers() const { return *layers_; }

  std::vector<std::string> list() const;                                 // sorted
  std::vector<FunctionVersion> versions(const std::string& name) const;  // ascending
  std::optional<FunctionVersion> latest(const std::string& name) const;
  bool contains(const std::string& name) const;  // has a version stored
  std::optional<FunctionVersion> get(const std::string& name, uint64_t version) const;

  const std::string& functionsDir() const { return functionsDir_; }

 private:
  struct Function {
    std::map<uint64_t, FunctionVersion> versions;  // loaded ones
    uint64_t lastVersion = 0;  // highest ever given out, removed and damaged ones included
  };

  void load();
  void loadFunction(const std::string& name);
  // DeployError when `adding` more and `freeing` less would take the
  // registry over Retention::maxStoredBytes.
  void checkStoredBytes(uint64_t adding, uint64_t freeing) const;

  // Versions of `function` past keepVersions once a new one is added, the
  // oldest first, but those in `inUse`.
  std::vector<uint64_t> pastRetention(const Function& function,
                                      const std::set<uint64_t>& inUse) const;
  // Moves `dir` out of the registry (renamed to a .tmp- directory) for
  // takeRemoved().
  void moveOut(const std::string& dir);

  std::string stateDir_;
  std::string functionsDir_;
  ArchiveLimits limits_;
  Retention retention_;
  uint64_t storedBytes_ = 0;
  std::vector<std::string> removed_;           // for takeRemoved()
  std::map<std::string, Function> functions_;  // removed names too, for lastVersion
  std::optional<LayerStore> layers_;           // made once the state directory is there
};

}  // namespace supervisor
