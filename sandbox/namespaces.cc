#include "sandbox/namespaces.h"

#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "base/sys_error.h"

namespace sandbox {

using base::check;
using base::throwSysError;

unsigned long namespaceFlags(const NetSpec& net) {
  unsigned long flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
  if (!net.emptyNetns) flags |= CLONE_NEWNET;
  return flags;
}

ClonedChild cloneWithNamespaces(unsigned long flags) {
  int pidfd = -1;
  clone_args args;
  std::memset(&args, 0, sizeof args);
  args.flags = flags | CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  long pid = syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0) throwSysError("clone3");
  ClonedChild child;
  child.pid = static_cast<pid_t>(pid);
  if (pid > 0) child.pidfd.reset(pidfd);
  return child;
}

void enterCgroupNamespace() {
  check(unshare(CLONE_NEWCGROUP), "unshare CLONE_NEWCGROUP");
}

void setHostname(const std::string& hostname) {
  check(sethostname(hostname.data(), hostname.size()), "sethostname");
  check(setdomainname("", 0), "setdomainname");
}

}  // namespace sandbox
