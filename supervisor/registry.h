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

// Owns STATE/functions. One Registry per state directory (two would hand out
// the same version numbers); single-threaded. Deploys and removes are
// crash-safe: after a crash a version is either all there or not at all.
class Registry {
 public:
  // Creates the directories, removes what crashed deploys and removes left
  // behind, and loads every version (a damaged one is reported on stderr
  // and skipped).
  explicit Registry(std::string stateDir, ArchiveLimits limits = {});
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
  // file, a rename, fsyncs of three directories). Throws as the deploys do.
  StagingArea stagingArea() const { return {functionsDir_, limits_}; }
  FunctionVersion commit(const std::string& name, const FunctionConfig& config, StagedCode& staged);

  // Removes every version of `name`, including any skipped at load as
  // damaged; false if there was nothing under that name. Live sandboxes of
  // the function should be gone first: its code trees are deleted.
  bool remove(const std::string& name);

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

  std::string stateDir_;
  std::string functionsDir_;
  ArchiveLimits limits_;
  std::map<std::string, Function> functions_;  // removed names too, for lastVersion
};

}  // namespace supervisor
