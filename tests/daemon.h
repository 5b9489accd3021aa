// A real thatchd for end-to-end tests: its own state directory, socket and
// cgroup subdirectory, started from build/bin and stopped with SIGTERM.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "tests/testing.h"
#include "thatch/thatch.h"

namespace testing_util {

class TestDaemon {
 public:
  // `extraToml` is appended to the generated configuration (top-level keys
  // first, then tables); `runtimeToml` replaces its one python3.11 runtime
  // without stem cells; `socketPath` replaces the socket in its directory.
  // Waits until thatchd logs that it is ready; throws std::runtime_error,
  // with its log, if it does not within 20 s.
  explicit TestDaemon(const std::string& extraToml = "", const std::string& runtimeToml = "",
                      const std::string& socketPath = "");
  ~TestDaemon();  // stops it (SIGKILL if SIGTERM takes over 30 s), removes its cgroups and table
  TestDaemon(const TestDaemon&) = delete;
  TestDaemon& operator=(const TestDaemon&) = delete;

  const std::string& socketPath() const { return socket_; }
  const std::string& stateDir() const { return state_; }
  const std::string& dir() const { return dir_->path(); }
  pid_t pid() const { return pid_; }
  // Its cgroup_subdir: its zygotes' and sandboxes' cgroups are below it.
  std::string cgroupSubdir() const { return "thatch/" + cgroupName_; }
  std::string log() const;

  // SIGTERM, then waits: its exit status (128+signal when killed).
  int stop();
  // SIGKILL, then waits: what a crash leaves (its cgroups, its firewall
  // table) stays until restart() or the destructor.
  int kill9();
  // Starts it again, stopped or killed, on the same configuration, state
  // directory, socket and cgroup subdirectory; waits for it as the
  // constructor does.
  void restart() { start(); }

 private:
  void start();
  void removeCgroups();  // and its egress firewall's nftables table

  std::unique_ptr<TempDir> dir_;
  std::string socket_, state_, logPath_, cgroupName_;
  pid_t pid_ = -1;
};

// A function whose handler.py is `source`, deployed through `client`
// (inline: only the programs that link the client library use it).
inline thatch::FunctionInfo deploySource(thatch::Thatch& client, const std::string& name,
                                         const std::string& source,
                                         thatch::FunctionConfig config = {}) {
  TempDir code;
  writeFile(code.path() + "/handler.py", source);
  return client.deploy(name, code.path(), config);
}

}  // namespace testing_util
