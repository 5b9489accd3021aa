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
#include "thatch/types.h"

namespace supervisor {

using thatch::FunctionConfig;
using thatch::Network;

struct FunctionVersion {
  std::string name;
  uint64_t version = 0;  // 1, 2, 3, ...; never reused for a name, even after remove
  FunctionConfig config;
  std::string codeDir;  // absolute path of the immutable code tree
  int64_t createdUnixMs = 0;
  uint64_t codeBytes = 0;  // of the regular files
  uint64_t fileCount = 0;  // regular files
  bool operator==(const FunctionVersion&) const = default;
};

// Bad name, handler, env or code: the message is for the user.
class DeployError : public std::runtime_error {
 public:
  using runtime_error::runtime_error;
};

// 1 to 64 of [a-z0-9_-], starting with [a-z0-9]. Lowercase only, so that no
// two names differ by case alone.
void validateFunctionName(std::string_view name);

// runtime: 1 to 64 of [A-Za-z0-9._-]. handler: `module.function`, each part
// an ASCII Python identifier and not a keyword. memoryBytes < 2^63, timeout
// >= 0. env: keys [A-Za-z_][A-Za-z0-9_]*, no duplicates, none reserved
// (prefixes AWS_, LAMBDA_, THATCH_, PYTHON; _HANDLER, _X_AMZN_TRACE_ID);
// values UTF-8 without NUL; all "KEY=VALUE" strings together at most 4 KiB.
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

// A new version's code, copied or unpacked into a staging directory of the
// registry and sealed, but not a version yet: Registry::commit() makes it
// one. Removes its directory when destroyed uncommitted.
class StagedCode {
 public:
  ~StagedCode();
  StagedCode(const StagedCode&) = delete;
  StagedCode& operator=(const StagedCode&) = delete;

 private:
  friend class Registry;
  friend struct StagingArea;
  StagedCode() = default;
  std::string dir_;  // holds code/; "" once committed
  TreeStats stats_;
};

// Where and how a registry stages code: a copy of its settings, so that
// staging (the slow part of a deploy: unpacking, copying, fsync) can run on
// another thread while the registry serves on its own. Throws DeployError
// (bad code) or std::system_error (the host failed).
struct StagingArea {
  std::string functionsDir;
  ArchiveLimits limits;

  std::unique_ptr<StagedCode> directory(const std::string& sourceDir) const;
  std::unique_ptr<StagedCode> archive(const std::string& archivePath) const;
  std::unique_ptr<StagedCode> archiveBytes(std::string_view archive) const;

 private:
  std::unique_ptr<StagedCode> stage(const std::function<void(const std::string& code)>& fill) const;
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

// Deletes a tree staged in, or taken out of, the registry (a `.tmp-`
// directory of its functions directory, see Registry::takeRemoved()); one
// that cannot be deleted is reported on stderr and left for the registry's
// next start, which deletes every `.tmp-` entry.
void removeStagedTree(const std::string& dir);

// What a version counts against Retention::maxStoredBytes: its files'
// bytes, and a block (4 KiB) for each file and for its directory and
// function.toml.
uint64_t storedBytesOf(const FunctionVersion& version);

// Owns STATE/functions. One Registry per state directory (two would hand out
// the same version numbers); single-threaded. Deploys and removes are
// crash-safe: after a crash a version is either all there or not at all.
class Registry {
 public:
  // Creates the directories, removes what crashed deploys and removes left
  // behind, and loads every version (a damaged one is reported on stderr
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
  // and DeployError when the new version would take the registry over its
  // Retention::maxStoredBytes. Then it removes the versions of `name` past
  // Retention::keepVersions but those in `inUse` (still run or about to be:
  // a later deploy removes them).
  StagingArea stagingArea() const { return {functionsDir_, limits_}; }
  FunctionVersion commit(const std::string& name, const FunctionConfig& config, StagedCode& staged,
                         const std::set<uint64_t>& inUse = {});

  // Removes every version of `name`, including any skipped at load as
  // damaged; false if there was nothing under that name. Live sandboxes of
  // the function should be gone first: its code trees go.
  bool remove(const std::string& name);

  // What remove() and commit() took out of the registry: directories (in
  // the functions directory, named .tmp-*) for the caller to delete off
  // its event loop (they may hold thousands of files). The next start
  // deletes what a crash left.
  std::vector<std::string> takeRemoved();

  // Code staged for a deploy that failed: its directory goes to
  // takeRemoved() too, rather than being deleted by ~StagedCode.
  void discard(StagedCode& staged);

  // What every loaded version counts (storedBytesOf()), together.
  uint64_t storedBytes() const { return storedBytes_; }

  std::vector<std::string> list() const;                                 // sorted
  std::vector<FunctionVersion> versions(const std::string& name) const;  // ascending
  std::optional<FunctionVersion> latest(const std::string& name) const;
  std::optional<FunctionVersion> get(const std::string& name, uint64_t version) const;

  const std::string& functionsDir() const { return functionsDir_; }

 private:
  struct Function {
    std::map<uint64_t, FunctionVersion> versions;  // loaded ones
    uint64_t lastVersion = 0;  // highest ever given out, removed and damaged ones included
  };

  void load();
  void loadFunction(const std::string& name);
  void loadRemovedMarkers();
  void writeRemovedMarker(const std::string& name, uint64_t lastVersion);

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
};

}  // namespace supervisor
