// The parent's handle on one confined process: it creates the namespaces,
// does the privileged half of the setup while the child waits, supervises the
// limits, and on destruction leaves nothing behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/fd.h"
#include "sandbox/cgroup.h"
#include "sandbox/confine.h"
#include "sandbox/network.h"
#include "sandbox/spec.h"

namespace sandbox {

// A confinement step failed in the child.
class ConfinementError : public std::runtime_error {
 public:
  ConfinementError(std::string step, int error, const std::string& message)
      : std::runtime_error("sandbox setup failed at step '" + step + "': " + message),
        step_(std::move(step)),
        error_(error) {}
  const std::string& step() const { return step_; }
  int error() const { return error_; }

 private:
  std::string step_;
  int error_;
};

// How a sandbox ended. Limit breaches are results, not exceptions.
struct Outcome {
  enum class Kind {
    kExited,       // `code` is the exit status
    kSignaled,     // `code` is the signal
    kTimeout,      // killed at the deadline
    kOutOfMemory,  // the cgroup's OOM killer struck; the sandbox was killed
    kPidsLimit,    // a fork was refused by the pids limit; the sandbox was killed
    kInterrupted,  // the caller asked to stop (e.g. thatch-run got SIGINT)
  };
  Kind kind = Kind::kExited;
  int code = 0;
  std::chrono::nanoseconds elapsed{0};
};

struct SandboxOptions {
  std::string name;          // the cgroup's name; unique among live sandboxes
  std::string hostVethName;  // egress only: unique among live sandboxes, <= 15 chars
  int keepFd = -1;           // an fd of the parent's the child's body keeps (a channel)
};

class Sandbox {
 public:
  using Clock = std::chrono::steady_clock;

  // Creates the cgroup, clones the child into its namespaces, writes its id
  // maps, places it in the cgroup, configures its network, and lets it
  // confine itself. In the child, `body` then runs (it may exec); its return
  // value is the child's exit status. Returns once the child has either
  // exec'd or closed channel.reportFd; throws ConfinementError when a step
  // failed (nothing is left behind then).
  Sandbox(const Spec& spec, const SandboxOptions& options, CgroupManager& cgroups,
          const std::function<int(const ChildChannel&)>& body);
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  pid_t pid() const { return pid_; }
  const Cgroup& cgroup() const { return *cgroup_; }

  // Waits until the sandbox ends, its deadline passes (then it is killed), a
  // limit is breached (then it is killed), or `interruptFd` becomes readable
  // (then it is killed). Call once.
  Outcome wait(std::optional<Clock::time_point> deadline, int interruptFd = -1);

  // Kills every process of the sandbox (its pid namespace and cgroup) and
  // reaps its init. Idempotent.
  void kill();
  // SIGKILLs its init (so its whole pid namespace) without waiting: its
  // pidfd turns readable, and kill() or finish() then reap it.
  void signalKill();

  // For callers with their own event loop (wait() is built from these):
  // the pidfd (readable once the sandbox's init has exited), the cgroup's
  // event fds, the limit breached so far (the caller then kills), and, once
  // the pidfd is readable, the outcome.
  int pidfd() const { return pidfd_.get(); }
  std::vector<int> eventFds() const { return cgroup_->eventFds(); }
  std::optional<Outcome::Kind> breach() const;
  Outcome finish();

  // Replaces the cgroup limits (see Cgroup::setLimits).
  void setLimits(const CgroupLimits& limits) { cgroup_->setLimits(limits); }

 private:
  void superviseSetup(const Spec& spec, const SandboxOptions& options, base::Fd reportRead);
  int reap();  // returns the wait status

  Clock::time_point started_;
  std::unique_ptr<Cgroup> cgroup_;
  std::unique_ptr<NetworkAttachment> network_;
  base::Fd pidfd_;
  base::Fd syncWrite_;  // held open: the child sees POLLHUP if this process dies
  pid_t pid_ = 0;
  std::optional<int> waitStatus_;
};

}  // namespace sandbox
