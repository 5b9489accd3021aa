#include "sandbox/confine.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <exception>
#include <functional>
#include <stdexcept>

#include "base/sys_error.h"
#include "sandbox/capabilities.h"
#include "sandbox/idmap.h"
#include "sandbox/mounts.h"
#include "sandbox/namespaces.h"
#include "sandbox/rlimits.h"
#include "sandbox/seccomp.h"

namespace sandbox {

using base::check;
using base::SysError;
using base::throwSysError;
namespace {

void resetSignals() {
  // The parent may block or ignore signals (an event loop does); none of
  // that may leak into the sandbox.
  sigset_t none;
  sigemptyset(&none);
  check(sigprocmask(SIG_SETMASK, &none, nullptr), "sigprocmask");
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    signal(sig, SIG_DFL);  // fails harmlessly for the reserved real-time signals
  }
  check(prctl(PR_SET_PDEATHSIG, SIGKILL), "prctl PR_SET_PDEATHSIG");
}

void waitForParent(int syncFd) {
  char go = 0;
  ssize_t n;
  do n = read(syncFd, &go, 1);
  while (n < 0 && errno == EINTR);
  if (n < 0) throwSysError("read sync pipe");
  if (n == 0) throw SysError("parent went away before the sandbox was set up", ECHILD);
}

void dieWithParent(int syncFd) {
  // Credential changes cleared the parent-death signal: set it again, then
  // make sure the parent did not die before it took effect.
  check(prctl(PR_SET_PDEATHSIG, SIGKILL), "prctl PR_SET_PDEATHSIG");
  pollfd pfd{syncFd, POLLIN, 0};
  if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR)))
    throw SysError("parent went away during setup", ECHILD);
}

// A new network namespace starts with `lo` down. Two ioctls, with the
// capabilities the child holds in its own user namespace (which owns the
// network namespace), instead of the parent's netlink request.
void bringLoopbackUp(const NetSpec& net) {
  if (net.mode != NetMode::kNone || net.emptyNetns) return;  // the parent's (network.cc)
  base::Fd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) throwSysError("socket(AF_INET)");
  ifreq request{};
  std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
  check(ioctl(sock.get(), SIOCGIFFLAGS, &request), "ioctl SIOCGIFFLAGS lo");
  request.ifr_flags |= IFF_UP;
  check(ioctl(sock.get(), SIOCSIFFLAGS, &request), "ioctl SIOCSIFFLAGS lo");
}

void closeOtherFds(int keepA, int keepB) {
  // stdio and the kept fds stay; everything else the parent had open goes.
  int keep[2] = {std::min(keepA, keepB), std::max(keepA, keepB)};
  unsigned first = 3;
  for (int fd : keep) {
    if (fd < static_cast<int>(first)) continue;
    if (static_cast<unsigned>(fd) > first)
      check(syscall(SYS_close_range, first, fd - 1, 0), "close_range");
    first = fd + 1;
  }
  check(syscall(SYS_close_range, first, ~0U, 0), "close_range");
}

}  // namespace

uint64_t monotonicNs() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

void failStep(const ChildChannel& channel, const char* step, int error,
              const std::string& message) {
  StepFailure failure;
  std::memset(&failure, 0, sizeof failure);
  std::strncpy(failure.step, step, sizeof failure.step - 1);
  failure.error = error;
  std::strncpy(failure.message, message.c_str(), sizeof failure.message - 1);
  if (write(channel.reportFd, &failure, sizeof failure) < 0) {
    // Nobody to tell; the exit status still says it.
  }
  _exit(kConfinementFailedExit);
}

void confine(const Spec& spec, const ChildChannel& channel) {
  struct Step {
    const char* name;
    std::function<void()> apply;
  };
  const Step steps[] = {
      {"signals", [] { resetSignals(); }},
      {"sync", [&] { waitForParent(channel.syncFd); }},
      {"cgroupns", [] { enterCgroupNamespace(); }},
      {"loopback", [&] { bringLoopbackUp(spec.net); }},
      // Before the mounts: files can only be created by a uid mapped in the
      // namespace, and host root is not. The capabilities stay until step
      // "capabilities", because the namespace's root uid is not mapped either.
      {"user", [&] { becomeSandboxUser(spec.ids); }},
      {"mounts", [&] { buildRoot(spec.mounts); }},
      {"hostname", [&] { setHostname(spec.hostname); }},
      {"rlimits", [&] { applyRlimits(spec.rlimits); }},
      {"capabilities",
       [&] {
         dropCapabilities();
         dieWithParent(channel.syncFd);
       }},
      {"seccomp",
       [&] {
         if (!spec.seccomp) throw std::invalid_argument("the spec has no seccomp program");
         loadSeccomp(*spec.seccomp);
       }},
      {"fds", [&] { closeOtherFds(channel.reportFd, channel.keepFd); }},
      {"cwd", [&] { check(chdir(spec.cwd.c_str()), "chdir " + spec.cwd); }},
  };
  for (const Step& step : steps) {
    try {
      step.apply();
    } catch (const SysError& e) {
      failStep(channel, step.name, e.error(), e.what());
    } catch (const std::exception& e) {
      failStep(channel, step.name, 0, e.what());
    }
    if (StepClock* clock = channel.clock; clock && clock->count < StepClock::kMaxSteps) {
      clock->names[clock->count] = step.name;
      clock->endNs[clock->count++] = monotonicNs();
    }
  }
  if (write(channel.reportFd, &kConfinedMarker, 1) < 0) {
    // The parent is gone (it reads until the end): nothing to tell.
  }
}

namespace {

std::string lookupPath(const std::string& name, const std::vector<std::string>& env) {
  if (name.find('/') != std::string::npos) return name;
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& var : env)
    if (var.rfind("PATH=", 0) == 0) path = var.substr(5);
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = std::min(path.find(':', start), path.size());
    std::string candidate = path.substr(start, end - start) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return name;
}

}  // namespace

void execInSandbox(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                   const ChildChannel& channel) {
  if (argv.empty()) failStep(channel, "exec", EINVAL, "no command");
  std::vector<char*> args, envp;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  args.push_back(nullptr);
  envp.push_back(nullptr);
  std::string path = lookupPath(argv[0], env);
  execve(path.c_str(), args.data(), envp.data());
  int err = errno;
  failStep(channel, "exec", err, "execve " + path + ": " + std::strerror(err));
}

}  // namespace sandbox
