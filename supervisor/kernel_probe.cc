// The syscall probes of thatchd --check-host on the real host: each makes
// the call thatch makes (or the smallest one that needs the same kernel
// feature) and returns the errno it got, 0 when it worked. Those that
// change the calling process (a seccomp filter, a user namespace) run in a
// child that exits with the errno.
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "base/fd.h"
#include "supervisor/host_check.h"

namespace supervisor {
namespace {

// The child's exit status, which is the errno it reports; ECHILD if it
// died of a signal instead.
int reap(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return errno;
  return WIFEXITED(status) ? WEXITSTATUS(status) : ECHILD;
}

int inChild(int (*body)()) {
  pid_t pid = fork();
  if (pid < 0) return errno;
  if (pid == 0) _exit(body());
  return reap(pid);
}

int clone3Child(uint64_t flags, int cgroupFd) {
  clone_args args{};
  args.flags = flags;
  args.exit_signal = SIGCHLD;
  if (cgroupFd >= 0) args.cgroup = static_cast<uint64_t>(cgroupFd);
  long pid = syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0) return errno;
  if (pid == 0) syscall(SYS_exit_group, 0);  // no libc in the child: it only leaves
  return reap(static_cast<pid_t>(pid));
}

int openOwnPidfd() {
  base::Fd pidfd(static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0)));
  return pidfd ? 0 : errno;
}

int cloneIntoCgroupDir(const std::string& dir) {
  base::Fd cgroup(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cgroup) return errno;
  return clone3Child(CLONE_INTO_CGROUP, cgroup.get());
}

int allowAllFilter() {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  sock_fprog program{1, &allow};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) != 0) return errno;
  return 0;
}

int newUserNamespace() {
  return unshare(CLONE_NEWUSER) == 0 ? 0 : errno;
}

}  // namespace

KernelProbe KernelProbe::thisHost() {
  KernelProbe probe;
  probe.pidfdOpen = openOwnPidfd;
  probe.clone3 = []() { return clone3Child(0, -1); };
  probe.cloneIntoCgroup = cloneIntoCgroupDir;
  probe.seccompFilter = []() { return inChild(allowAllFilter); };
  probe.userNamespace = []() { return inChild(newUserNamespace); };
  probe.privileged = []() { return geteuid() == 0; };
  return probe;
}

}  // namespace supervisor
