// thatch-run: run one command in a sandbox, like `nsjail -Mo`. The
// composition root of sandbox/ and rootfs/: it turns options into a Spec,
// runs it, and translates the outcome into one line and an exit status.

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/sys_error.h"
#include "base/units.h"
#include "run/run_options.h"
#include "sandbox/cgroup.h"
#include "sandbox/idmap.h"
#include "sandbox/sandbox.h"

namespace {

using namespace sandbox;
using namespace run;
using base::check;
using base::Fd;

constexpr int kExitUsage = 2;
constexpr int kExitOutOfMemory = 121;
constexpr int kExitPidsLimit = 122;
constexpr int kExitTimeout = 124;
constexpr int kExitSetup = 125;
constexpr int kExitNotExecutable = 126;
constexpr int kExitNotFound = 127;
constexpr int kExitInterrupted = 130;

constexpr const char* kIdSlotDir = "/run/thatch/ids";

// The kernel removes a dead sandbox's veth pair in the background, so a name
// derived from the id slot alone could still be taken by its predecessor.
std::string uniqueVethName() {
  char name[16];
  snprintf(name, sizeof name, "th%012llx",
           static_cast<unsigned long long>(std::random_device{}()) << 16 ^ getpid());
  return name;
}

// SIGINT/SIGTERM/SIGHUP become readable events, so that thatch-run can kill
// the sandbox and clean up instead of dying with it half set up.
int blockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, sig);
  check(sigprocmask(SIG_BLOCK, &set, nullptr), "sigprocmask");
  return static_cast<int>(check(signalfd(-1, &set, SFD_CLOEXEC), "signalfd"));
}

int report(const Outcome& outcome, const RunOptions& options) {
  using Kind = Outcome::Kind;
  switch (outcome.kind) {
    case Kind::kExited:
      return outcome.code;
    case Kind::kSignaled:
      return 128 + outcome.code;
    case Kind::kTimeout:
      fprintf(stderr, "thatch-run: killed: timeout after %.3f s\n",
              std::chrono::duration<double>(*options.timeout).count());
      return kExitTimeout;
    case Kind::kOutOfMemory:
      fprintf(stderr, "thatch-run: killed: out of memory (limit %s)\n",
              base::formatSize(options.memoryBytes).c_str());
      return kExitOutOfMemory;
    case Kind::kPidsLimit:
      fprintf(stderr, "thatch-run: killed: pids limit %llu reached\n",
              static_cast<unsigned long long>(options.pids));
      return kExitPidsLimit;
    case Kind::kInterrupted:
      fprintf(stderr, "thatch-run: interrupted; sandbox killed\n");
      return kExitInterrupted;
  }
  return kExitSetup;
}

int runConfined(const RunOptions& options) {
  IdAllocator ids(kIdSlotDir, IdRange{});
  IdLease lease = ids.acquire();
  Spec spec = buildRunSpec(options, lease);
  auto cgroups = detectCgroups();
  // The lease is exclusive, so a cgroup of this name is a crashed
  // predecessor's leftover.
  std::string name = "run-" + std::to_string(lease.hostId());
  cgroups->remove(name);
  Fd signals(blockTerminationSignals());
  SandboxOptions sandboxOptions{name, uniqueVethName()};
  std::vector<std::string> env = sandboxEnvironment(options.env);
  Sandbox box(spec, sandboxOptions, *cgroups, [&](const ChildChannel& channel) -> int {
    execInSandbox(options.command, env, channel);
  });
  std::optional<Sandbox::Clock::time_point> deadline;
  if (options.timeout) deadline = Sandbox::Clock::now() + *options.timeout;
  return report(box.wait(deadline, signals.get()), options);
}

}  // namespace

int main(int argc, char** argv) {
  RunOptions options;
  try {
    options = parseRunOptions(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const UsageError& e) {
    fprintf(stderr, "thatch-run: %s\nTry 'thatch-run --help'.\n", e.what());
    return kExitUsage;
  }
  if (options.help) {
    fputs(kRunUsage, stdout);
    return 0;
  }
  try {
    return runConfined(options);
  } catch (const ConfinementError& e) {
    fprintf(stderr, "thatch-run: %s\n", e.what());
    if (e.step() == "exec") return e.error() == ENOENT ? kExitNotFound : kExitNotExecutable;
    return kExitSetup;
  } catch (const std::exception& e) {
    fprintf(stderr, "thatch-run: %s\n", e.what());
    return kExitSetup;
  }
}
