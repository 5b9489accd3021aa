// Untrusted code on its way into a store (the function registry, the
// layers): unpacked or copied into a staging directory of the store and
// sealed, off thatchd's loop, before the store commits it on the loop.
#pragma once

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "supervisor/archive.h"

namespace supervisor {

// Bad name, handler, env, layers or code: the message is for the user.
class DeployError : public std::runtime_error {
 public:
  using runtime_error::runtime_error;
};

// A new version's code, copied or unpacked into a staging directory of a
// store and sealed, but not a version yet: the store's commit makes it one.
// Removes its directory when destroyed uncommitted.
class StagedCode {
 public:
  ~StagedCode();
  StagedCode(const StagedCode&) = delete;
  StagedCode& operator=(const StagedCode&) = delete;

 private:
  friend class Registry;
  friend class LayerStore;
  friend struct StagingArea;
  StagedCode() = default;
  std::string dir_;  // holds code/; "" once committed
  TreeStats stats_;
};

// Where and how a store stages code: a copy of its settings, so that
// staging (the slow part of a deploy: unpacking, copying, fsync) can run on
// another thread while the store serves on its own. Throws DeployError
// (bad code) or std::system_error (the host failed).
struct StagingArea {
  std::string dir;  // the store's directory: staging directories are made in it
  ArchiveLimits limits;

  std::unique_ptr<StagedCode> directory(const std::string& sourceDir) const;
  std::unique_ptr<StagedCode> archive(const std::string& archivePath) const;
  std::unique_ptr<StagedCode> archiveBytes(std::string_view archive) const;

 private:
  std::unique_ptr<StagedCode> stage(const std::function<void(const std::string& code)>& fill) const;
};

}  // namespace supervisor
