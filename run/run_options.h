// Command-line options of thatch-run, the one-shot runner, and the Spec
// they make.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "rootfs/plan.h"
#include "sandbox/idmap.h"
#include "sandbox/spec.h"

namespace run {

// Bad command-line input: thatch-run prints the message and exits 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct RunOptions {
  uint64_t memoryBytes = 256ull << 20;
  uint64_t pids = 64;
  double cpus = 0;  // 0: no CPU quota
  std::optional<std::chrono::milliseconds> timeout;
  sandbox::NetMode net = sandbox::NetMode::kNone;
  std::vector<rootfs::Bind> binds;
  uint64_t tmpfsBytes = 64ull << 20;
  std::vector<std::string> env;  // K=V, added to the defaults (or replacing them)
  std::string cwd = "/";
  std::string codeDir;  // --code DIR: shown read-only at /var/task
  std::string hostname = "sandbox";
  bool help = false;
  std::vector<std::string> command;
};

// Parses argv (without argv[0]). Throws UsageError with a one-line reason.
// Sizes and durations follow base/units.h. Checks that bind sources and
// --code exist, so a typo fails before anything is created.
RunOptions parseRunOptions(const std::vector<std::string>& args);

// The environment the command gets: PATH, HOME, LANG, then options.env.
std::vector<std::string> sandboxEnvironment(const std::vector<std::string>& extra);

// The Spec thatch-run runs: rootfs::sandboxSpec() of the options' limits,
// root and network with the host id of `lease`, and the build-time seccomp
// program.
sandbox::Spec buildRunSpec(const RunOptions& options, const sandbox::IdLease& lease);

extern const char* const kRunUsage;

}  // namespace run
