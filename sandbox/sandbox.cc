#include "sandbox/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "base/sys_error.h"
#include "sandbox/idmap.h"
#include "sandbox/namespaces.h"

namespace sandbox {

using base::check;
using base::Fd;
using base::throwSysError;
namespace {

struct Pipe {
  Fd read, write;
};

Pipe makePipe() {
  int fds[2];
  check(pipe2(fds, O_CLOEXEC), "pipe2");
  return {Fd(fds[0]), Fd(fds[1])};
}

// What the child reported until the end of its report pipe (its exec, its
// closing it, or its death): whether it finished confining itself, and the
// step that failed, if one did (a failed exec comes after the marker).
struct Report {
  bool confined = false;
  std::optional<StepFailure> failure;
};

Report readReport(int fd) {
  char buffer[1 + sizeof(StepFailure)];
  size_t got = 0;
  while (got < sizeof buffer) {
    ssize_t n = read(fd, buffer + got, sizeof buffer - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throwSysError("read sandbox report");
    if (n == 0) break;
    got += n;
  }
  Report report;
  size_t offset = 0;
  if (got > 0 && buffer[0] == kConfinedMarker) {
    report.confined = true;
    offset = 1;
  }
  if (got == offset) return report;
  if (got - offset != sizeof(StepFailure))
    throw ConfinementError("report", EPROTO, "truncated report");
  StepFailure failure;
  std::memcpy(&failure, buffer + offset, sizeof failure);
  failure.step[sizeof failure.step - 1] = 0;
  failure.message[sizeof failure.message - 1] = 0;
  report.failure = failure;
  return report;
}

// The child's side, from the clone on: confinement, then `body`. Never
// returns into the parent's code.
[[noreturn]] void runChild(const Spec& spec, ChildChannel channel,
                           const std::function<int(const ChildChannel&)>& body) {
  StepClock clock;
  clock.names[0] = "clone";  // the cgroup and the clone itself, seen from the child
  clock.endNs[clock.count++] = monotonicNs();
  channel.clock = &clock;
  confine(spec, channel);
  try {
    _exit(body(channel));
  } catch (const std::exception& e) {
    failStep(channel, "body", 0, e.what());
  }
}

int pidfdSignal(int pidfd, int sig) {
  return syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
}

}  // namespace

Sandbox::Sandbox(const Spec& spec, const SandboxOptions& options, CgroupManager& cgroups,
                 const std::function<int(const ChildChannel&)>& body)
    : started_(Clock::now()) {
  if (!spec.seccomp) throw std::invalid_argument("the spec has no seccomp program");
  if (spec.net.mode == NetMode::kEgress && spec.net.emptyNetns)
    throw std::invalid_argument("a pooled network namespace is for mode none only");
  if (spec.net.mode == NetMode::kEgress && options.hostVethName.empty())
    throw std::invalid_argument("egress needs a unique host veth name");
  cgroup_ = cgroups.create(options.name, spec.limits);
  Pipe sync = makePipe();
  Pipe report = makePipe();
  ClonedChild child;
  {
    // The child is cloned into a pooled namespace from inside it, and never
    // leaves this block: only the parent goes back (the child could not).
    std::optional<NetnsGuard> pooledNet;
    if (spec.net.emptyNetns) pooledNet.emplace(spec.net.emptyNetns->get());
    child = cloneWithNamespaces(namespaceFlags(spec.net));
    if (child.pid == 0) runChild(spec, {sync.read.get(), report.write.get(), options.keepFd}, body);
  }
  pid_ = child.pid;
  pidfd_ = std::move(child.pidfd);
  syncWrite_ = std::move(sync.write);
  report.write.reset();
  try {
    superviseSetup(spec, options, std::move(report.read));
  } catch (...) {
    kill();
    throw;
  }
}

void Sandbox::superviseSetup(const Spec& spec, const SandboxOptions& options, Fd reportRead) {
  writeIdMaps(pid_, spec.ids);
  // Before the child reads "go", so before any untrusted code runs.
  cgroup_->attach(pid_);
  // Without egress, in a namespace of its own, the child brings its `lo` up
  // itself (confine()): a netlink round trip less here while it waits, and
  // none of libnl's allocations in a parent that forks (each page it writes
  // is a copy-on-write fault while its children share it: ~20 per sandbox).
  if (spec.net.mode != NetMode::kNone || spec.net.emptyNetns)
    network_ = configureNetwork(pid_, spec.net, options.hostVethName);
  const char go = 1;
  check(write(syncWrite_.get(), &go, 1), "write sync pipe");
  Report report = readReport(reportRead.get());
  if (report.failure)
    throw ConfinementError(report.failure->step, report.failure->error, report.failure->message);
  if (report.confined) return;  // what happens to it now is its body's doing
  // Its end of the pipe closed before it was confined: it died during
  // set-up (killed, or a crash), and its status says how.
  int status = reap();
  throw ConfinementError("setup", 0,
                         WIFSIGNALED(status)
                             ? std::string("killed by signal ") + strsignal(WTERMSIG(status))
                             : "exited with status " + std::to_string(WEXITSTATUS(status)));
}

int Sandbox::reap() {
  if (waitStatus_) return *waitStatus_;
  siginfo_t info;
  std::memset(&info, 0, sizeof info);
  while (waitid(static_cast<idtype_t>(P_PIDFD), pidfd_.get(), &info, WEXITED) < 0) {
    if (errno != EINTR) throwSysError("waitid");
  }
  int status = info.si_code == CLD_EXITED ? W_EXITCODE(info.si_status, 0) : info.si_status;
  waitStatus_ = status;
  return status;
}

void Sandbox::kill() {
  if (!pidfd_ || waitStatus_) return;
  // Killing a pid namespace's init kills every process in it; the cgroup
  // catches anything that might be on its way out. A frozen v1 task takes
  // SIGKILL only once thawed, and reap() waits for it.
  cgroup_->thaw();
  if (pidfdSignal(pidfd_.get(), SIGKILL) < 0 && errno != ESRCH) throwSysError("pidfd_send_signal");
  reap();
  cgroup_->killAll();
  if (network_) network_->release();
}

void Sandbox::signalKill() {
  if (!pidfd_ || waitStatus_) return;
  if (pidfdSignal(pidfd_.get(), SIGKILL) < 0 && errno != ESRCH) throwSysError("pidfd_send_signal");
}

std::optional<Outcome::Kind> Sandbox::breach() const {
  CgroupEvents now = cgroup_->events();
  if (now.oomKills > 0) return Outcome::Kind::kOutOfMemory;
  if (now.pidsMaxHits > 0) return Outcome::Kind::kPidsLimit;
  return std::nullopt;
}

Outcome Sandbox::finish() {
  Outcome outcome;
  int status = reap();
  outcome.elapsed = Clock::now() - started_;
  // The OOM killer may have hit the init itself: its death is the breach.
  if (auto kind = breach()) {
    kill();
    outcome.kind = *kind;
    return outcome;
  }
  cgroup_->killAll();  // orphans of a pid namespace die with its init already
  if (network_) network_->release();
  if (WIFSIGNALED(status)) {
    outcome.kind = Outcome::Kind::kSignaled;
    outcome.code = WTERMSIG(status);
  } else {
    outcome.code = WEXITSTATUS(status);
  }
  return outcome;
}

Outcome Sandbox::wait(std::optional<Clock::time_point> deadline, int interruptFd) {
  std::vector<int> events = eventFds();
  auto killedFor = [&](Outcome::Kind kind) {
    kill();
    return Outcome{kind, 0, Clock::now() - started_};
  };
  // Without event fds (v1's pids counter) the counters are re-read on a tick.
  constexpr auto kTick = std::chrono::milliseconds(50);
  for (;;) {
    std::vector<pollfd> fds{{pidfd_.get(), POLLIN, 0}};
    if (interruptFd >= 0) fds.push_back({interruptFd, POLLIN, 0});
    for (int fd : events) fds.push_back({fd, POLLIN | POLLPRI, 0});
    auto wake = Clock::now() + kTick;
    if (deadline && *deadline < wake) wake = *deadline;
    auto left = std::max(std::chrono::nanoseconds(0),
                         std::chrono::duration_cast<std::chrono::nanoseconds>(wake - Clock::now()));
    timespec timeout{static_cast<time_t>(left.count() / 1'000'000'000),
                     static_cast<long>(left.count() % 1'000'000'000)};
    if (ppoll(fds.data(), fds.size(), &timeout, nullptr) < 0 && errno != EINTR)
      throwSysError("ppoll");
    if (fds[0].revents & POLLIN) return finish();
    if (interruptFd >= 0 && (fds[1].revents & POLLIN))
      return killedFor(Outcome::Kind::kInterrupted);
    if (auto kind = breach()) return killedFor(*kind);
    if (deadline && Clock::now() >= *deadline) return killedFor(Outcome::Kind::kTimeout);
  }
}

Sandbox::~Sandbox() {
  try {
    kill();
  } catch (const std::exception& e) {
    fprintf(stderr, "sandbox %d: cleanup failed: %s\n", pid_, e.what());
  }
  // Members go in reverse order: network, then the cgroup (removed by its
  // destructor once empty).
}

}  // namespace sandbox
