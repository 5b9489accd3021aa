// Command-line options of thatch-run, the one-shot runner.
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

namespace sandbox {

// Bad command-line input: thatch-run prints the message and exits 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct RunOptions {
  uint64_t memoryBytes = 256ull << 20;
  uint64_t pids = 64;
  double cpus = 0;  // 0: no CPU quota
  std::optional<std::chrono::nanoseconds> timeout;
  NetMode net = NetMode::kNone;
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
// Checks that bind sources and --code exist, so a typo fails before anything
// is created.
RunOptions parseRunOptions(const std::vector<std::string>& args);

// "256M", "1G", "512k", "64MiB", "1048576" -> bytes (binary multiples).
uint64_t parseSize(const std::string& text);
// "5s", "250ms", "1.5s", "2m", "10" (seconds) -> nanoseconds.
std::chrono::nanoseconds parseDuration(const std::string& text);
// "256 MiB", "1.5 GiB", "1000 bytes"
std::string formatSize(uint64_t bytes);

// The environment the command gets: PATH, HOME, LANG, then options.env.
std::vector<std::string> sandboxEnvironment(const std::vector<std::string>& extra);

// The Spec thatch-run runs: the default rootfs plan, default rlimits, the
// options' limits, the host id of `lease`, and the build-time seccomp program.
Spec buildRunSpec(const RunOptions& options, const IdLease& lease);

extern const char* const kRunUsage;

// The sandbox's address on the egress bridge `bridgeCidr` (e.g.
// "10.201.0.1/16"), unique per id slot: "10.201.x.y/16".
std::string egressAddress(const std::string& bridgeCidr, unsigned slot);

}  // namespace sandbox
