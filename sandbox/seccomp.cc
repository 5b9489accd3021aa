#include "sandbox/seccomp.h"

#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bit>
#include <memory>
#include <stdexcept>
#include <string_view>

#include "base/fd.h"
#include "base/sys_error.h"

#if !defined(__x86_64__)
#error "the seccomp policy is written for x86_64 system call numbers and arguments"
#endif

namespace sandbox {

using base::check;
using base::Fd;
using base::throwSysError;
namespace {

// libc reads ENOSYS as "this kernel is too old" and falls back to an older
// call (glibc: clone3 -> clone, faccessat2 -> faccessat).
constexpr int kUnknownSyscallError = ENOSYS;

constexpr std::string_view kAllowed[] = {
    // Files and descriptors.
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
    "pwritev2", "open", "openat", "openat2", "creat", "close", "close_range", "lseek", "dup",
    "dup2", "dup3", "fcntl", "flock", "fsync", "fdatasync", "sync_file_range", "truncate",
    "ftruncate", "fallocate", "fadvise64", "readahead", "sendfile", "copy_file_range", "splice",
    "tee", "pipe", "pipe2",
    // Metadata and directories.
    "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs", "access", "faccessat",
    "faccessat2", "readlink", "readlinkat", "getdents", "getdents64", "getcwd", "chdir", "fchdir",
    "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2", "link",
    "linkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown",
    "lchown", "fchownat", "umask", "utime", "utimes", "utimensat", "futimesat", "mknod", "mknodat",
    "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr", "setxattr",
    "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr", "inotify_init",
    "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
    // Memory.
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "msync", "mlock", "mlock2", "munlock",
    "mlockall", "munlockall", "membarrier", "memfd_create",
    // Processes and threads (clone is allowed separately, without namespace flags).
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "kill", "tkill",
    "tgkill", "pidfd_open", "pidfd_send_signal", "getpid", "getppid", "gettid", "getpgid",
    "getpgrp", "setpgid", "getsid", "setsid", "getuid", "geteuid", "getgid", "getegid", "getresuid",
    "getresgid", "getgroups", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
    "setgroups", "setfsuid", "setfsgid", "capget", "prctl", "arch_prctl", "set_tid_address",
    "set_robust_list", "rseq", "futex", "futex_waitv", "getrlimit", "setrlimit", "prlimit64",
    "getrusage", "times", "getpriority", "setpriority", "sched_yield", "sched_getaffinity",
    "sched_setaffinity", "sched_getparam", "sched_setparam", "sched_getscheduler",
    "sched_setscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_getattr", "sched_setattr", "getcpu", "uname", "sysinfo",
    "getrandom",
    // Signals.
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait",
    "rt_sigsuspend", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack", "signalfd", "signalfd4",
    "pause", "alarm", "getitimer", "setitimer", "restart_syscall",
    // Time (reading it, sleeping, timers; never setting the clock).
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
    "timer_create", "timer_settime", "timer_gettime", "timer_getoverrun", "timer_delete",
    "timerfd_create", "timerfd_settime", "timerfd_gettime",
    // Waiting for events.
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2",
    // Sockets (socket itself is allowed separately, for some families).
    "socketpair", "bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername",
    "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown", "setsockopt",
    "getsockopt"};

struct DeniedCall {
  std::string_view syscall;
  std::string_view reason;
};

constexpr DeniedCall kDenied[] = {
    {"unshare", "creates namespaces: new kernel attack surface, and a way to undo the sandbox's"},
    {"setns", "joins another namespace"},
    {"mount", "changes the mount tree"},
    {"umount2", "changes the mount tree; could uncover what the sandbox's mounts hide"},
    {"pivot_root", "changes the root of the mount namespace"},
    {"chroot", "changes the root directory (and with a held fd, escapes it)"},
    {"move_mount", "new mount API: changes the mount tree"},
    {"open_tree", "new mount API: clones mounts"},
    {"fsopen", "new mount API: creates filesystems"},
    {"fsconfig", "new mount API: configures filesystems"},
    {"fsmount", "new mount API: creates mounts"},
    {"fspick", "new mount API: reconfigures existing filesystems"},
    {"mount_setattr", "new mount API: changes mount flags such as read-only and nosuid"},
    {"ptrace", "reads and controls other processes"},
    {"process_vm_readv", "reads another process's memory"},
    {"process_vm_writev", "writes another process's memory"},
    {"bpf", "loads programs into the kernel; a frequent source of kernel exploits"},
    {"perf_event_open", "exposes kernel internals; a frequent source of kernel exploits"},
    {"keyctl", "the kernel keyrings are not namespaced"},
    {"add_key", "the kernel keyrings are not namespaced"},
    {"request_key", "the kernel keyrings are not namespaced; can run host upcalls"},
    {"io_uring_setup", "io_uring does I/O that seccomp cannot see; many kernel exploits"},
    {"io_uring_enter", "io_uring does I/O that seccomp cannot see; many kernel exploits"},
    {"io_uring_register", "io_uring does I/O that seccomp cannot see; many kernel exploits"},
    {"userfaultfd", "stalls kernel accesses to user memory: a staple of kernel race exploits"},
    {"init_module", "loads kernel code"},
    {"finit_module", "loads kernel code"},
    {"delete_module", "unloads kernel code"},
    {"kexec_load", "replaces the running kernel"},
    {"kexec_file_load", "replaces the running kernel"},
    {"reboot", "reboots or halts the host"},
    {"swapon", "changes the host's swap"},
    {"swapoff", "changes the host's swap"},
    {"acct", "switches process accounting for the host"},
    {"settimeofday", "sets the host clock (not namespaced)"},
    {"clock_settime", "sets the host clock (not namespaced)"},
    {"clock_adjtime", "adjusts the host clock (not namespaced)"},
    {"adjtimex", "adjusts the host clock (not namespaced)"},
    {"syslog", "reads or clears the kernel log, which leaks kernel addresses"},
    {"quotactl", "manages filesystem quotas of the host"},
    {"quotactl_fd", "manages filesystem quotas of the host"},
    {"open_by_handle_at", "opens files by handle, bypassing the mount tree (the 'shocker' escape)"},
    {"name_to_handle_at", "produces handles for open_by_handle_at"},
    {"lookup_dcookie", "resolves kernel directory cookies (profiling interface)"},
    {"fanotify_init", "watches filesystem events beyond the sandbox"},
    {"pidfd_getfd", "copies another process's file descriptors"},
};

// Every namespace flag. clone() reads CLONE_NEWTIME's bit (0x80) as part of
// the exit signal, so there it only refuses exit signals above 127, which no
// real signal is; the time namespace itself is reachable only by clone3 and
// unshare, both denied.
constexpr uint64_t kNamespaceFlags[] = {CLONE_NEWUSER,   CLONE_NEWNS,  CLONE_NEWPID,
                                        CLONE_NEWNET,    CLONE_NEWUTS, CLONE_NEWIPC,
                                        CLONE_NEWCGROUP, CLONE_NEWTIME};

using Filter = std::unique_ptr<void, void (*)(scmp_filter_ctx)>;

// libseccomp returns -errno.
void checkLibseccomp(int rc, std::string_view what) {
  if (rc < 0) throwSysError(what, -rc);
}

scmp_arg_cmp toLibseccomp(const SeccompPolicy::ArgCheck& test) {
  using Op = SeccompPolicy::ArgCheck::Op;
  switch (test.op) {
    case Op::kMaskedEqual:
      return {test.index, SCMP_CMP_MASKED_EQ, test.mask, test.datum};
    case Op::kLessEqual:
      return {test.index, SCMP_CMP_LE, test.datum, 0};
    case Op::kGreaterEqual:
      return {test.index, SCMP_CMP_GE, test.datum, 0};
  }
  throw std::logic_error("unknown seccomp argument comparison");
}

void addToFilter(scmp_filter_ctx filter, const SeccompPolicy::Rule& rule) {
  int number = seccomp_syscall_resolve_name(rule.syscall.c_str());
  if (number == __NR_SCMP_ERROR)
    throw std::invalid_argument("libseccomp does not know the system call " + rule.syscall);
  uint32_t action = rule.error ? SCMP_ACT_ERRNO(*rule.error) : SCMP_ACT_ALLOW;
  std::vector<scmp_arg_cmp> compare;
  for (const auto& test : {rule.check, rule.also})
    if (test) compare.push_back(toLibseccomp(*test));
  // "exact": fail rather than let libseccomp rewrite the rule.
  checkLibseccomp(
      seccomp_rule_add_exact_array(filter, action, number, static_cast<unsigned>(compare.size()),
                                   compare.empty() ? nullptr : compare.data()),
      "seccomp_rule_add(" + rule.syscall + ")");
}

void setAttribute(scmp_filter_ctx filter, scmp_filter_attr attribute, uint32_t value,
                  std::string_view name) {
  checkLibseccomp(seccomp_attr_set(filter, attribute, value), name);
}

// libseccomp 2.5 exports only to a file descriptor.
SeccompProgram exportProgram(scmp_filter_ctx filter) {
  Fd memfd(static_cast<int>(check(memfd_create("thatch-seccomp", MFD_CLOEXEC), "memfd_create")));
  checkLibseccomp(seccomp_export_bpf(filter, memfd.get()), "seccomp_export_bpf");
  off_t bytes = check(lseek(memfd.get(), 0, SEEK_CUR), "lseek(seccomp program)");
  size_t count = bytes / sizeof(sock_filter);
  if (bytes % sizeof(sock_filter) != 0 || count == 0 || count > BPF_MAXINSNS)
    throw std::length_error("seccomp program of " + std::to_string(bytes) + " bytes");
  SeccompProgram program;
  program.instructions.resize(count);
  long got =
      check(pread(memfd.get(), program.instructions.data(), bytes, 0), "pread(seccomp program)");
  if (got != bytes) throwSysError("pread(seccomp program): short read", EIO);
  return program;
}

}  // namespace

SeccompPolicy SeccompPolicy::forPython() {
  SeccompPolicy policy;
  for (std::string_view name : kAllowed) policy.allow(std::string(name));
  for (const DeniedCall& call : kDenied)
    policy.deny(std::string(call.syscall), EPERM, std::string(call.reason));
  policy.deny("clone3", ENOSYS,
              "its flags sit behind a pointer seccomp cannot read; ENOSYS makes glibc fall back "
              "to clone, whose flags it can");
  policy.allowCloneWithoutNamespaces();
  policy.allowSocketFamilies();
  policy.allowIoctlExceptTerminalInjection();
  policy.allowDefaultPersonalityOnly();
  return policy;
}

SeccompProgram SeccompPolicy::compile() const {
  // The filter holds only the native ABI, x86_64; libseccomp's generated
  // prologue sends other architectures and x32 numbers to the bad-arch action.
  Filter filter(seccomp_init(SCMP_ACT_ERRNO(kUnknownSyscallError)), seccomp_release);
  if (!filter) throwSysError("seccomp_init", ENOMEM);
  // Killing only the calling thread would leave the rest of a threaded
  // interpreter running, with whatever locks that thread held.
  setAttribute(filter.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS,
               "seccomp_attr_set(SCMP_FLTATR_ACT_BADARCH)");
  // A binary search on the syscall number instead of a linear chain: fewer
  // comparisons per call, and cheaper to load (NOTES.md: 0.27 ms instead of
  // 0.4 ms), because the kernel runs the filter for every syscall number at
  // load time to build its cache of always-allowed calls.
  setAttribute(filter.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2,
               "seccomp_attr_set(SCMP_FLTATR_CTL_OPTIMIZE)");
  for (const Rule& rule : rules_) addToFilter(filter.get(), rule);
  return exportProgram(filter.get());
}

void SeccompPolicy::allow(std::string syscall) {
  addRule(syscall, std::nullopt);
  allowed_.push_back(std::move(syscall));
}

void SeccompPolicy::deny(std::string syscall, int error, std::string reason) {
  // libseccomp refuses a rule that repeats the default action; the default
  // already gives this answer.
  if (error != kUnknownSyscallError) addRule(syscall, error);
  denied_.push_back({std::move(syscall), std::move(reason), error});
}

void SeccompPolicy::addRule(std::string syscall, std::optional<int> error,
                            std::optional<ArgCheck> test, std::optional<ArgCheck> also) {
  rules_.push_back({std::move(syscall), error, test, also});
}

void SeccompPolicy::addRulesOutside(const std::string& syscall, std::optional<int> error,
                                    unsigned index, const std::vector<uint64_t>& except,
                                    uint64_t last) {
  uint64_t next = 0;  // the smallest value not yet covered
  for (uint64_t value : except) {
    if (value > next) addRangeRules(syscall, error, index, next, value - 1);
    next = value + 1;
  }
  if (next <= last) addRangeRules(syscall, error, index, next, last);
}

void SeccompPolicy::addRangeRules(const std::string& syscall, std::optional<int> error,
                                  unsigned index, uint64_t first, uint64_t last) {
  using Op = ArgCheck::Op;
  if (last == UINT64_MAX)
    return addRule(syscall, error,
                   ArgCheck{.index = index, .op = Op::kGreaterEqual, .datum = first});
  if (first == 0)
    return addRule(syscall, error, ArgCheck{.index = index, .op = Op::kLessEqual, .datum = last});
  // libseccomp compares an argument once per rule, so a bounded range becomes
  // aligned power-of-two blocks, each one masked comparison.
  for (uint64_t start = first;;) {
    uint64_t size = uint64_t{1} << std::countr_zero(start);
    while (size - 1 > last - start) size >>= 1;
    addRule(syscall, error, ArgCheck{.index = index, .datum = start, .mask = ~(size - 1)});
    if (last - start == size - 1) return;
    start += size;
  }
}

void SeccompPolicy::allowCloneWithoutNamespaces() {
  using Op = ArgCheck::Op;
  uint64_t all = 0;
  // libseccomp has no "masked not-equal": one rule per flag denies "any set".
  for (uint64_t flag : kNamespaceFlags) {
    all |= flag;
    addRule("clone", EPERM,
            ArgCheck{.index = 0, .op = Op::kMaskedEqual, .datum = flag, .mask = flag});
  }
  addRule("clone", std::nullopt,
          ArgCheck{.index = 0, .op = Op::kMaskedEqual, .datum = 0, .mask = all});
  allowed_.push_back("clone");
  denied_.push_back({"clone",
                     "with a namespace flag (CLONE_NEWUSER, NEWNS, NEWPID, NEWNET, NEWUTS, NEWIPC, "
                     "NEWCGROUP, NEWTIME): new kernel attack surface, and a way to undo the "
                     "sandbox's namespaces",
                     EPERM});
}

void SeccompPolicy::allowSocketFamilies() {
  // Sorted. glibc's getaddrinfo asks for local addresses over AF_NETLINK.
  const std::vector<uint64_t> families = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};
  for (uint64_t family : families)
    if (family != AF_NETLINK) addRule("socket", std::nullopt, ArgCheck{.datum = family});
  // Netlink for routing only (what getaddrinfo and if_nameindex use): audit,
  // uevents, netfilter, crypto and the rest are kernel code a handler has no
  // use for. The protocol is compared as 64 bits: garbage in the upper half
  // is refused, although the kernel would read NETLINK_ROUTE.
  const ArgCheck netlink{.datum = AF_NETLINK};
  addRule("socket", std::nullopt, netlink, ArgCheck{.index = 2, .datum = NETLINK_ROUTE});
  addRule("socket", EPROTONOSUPPORT, netlink,
          ArgCheck{.index = 2, .op = ArgCheck::Op::kGreaterEqual, .datum = NETLINK_ROUTE + 1});
  // Also catches a family with garbage in the upper half, which the kernel
  // would ignore when reading the int.
  addRulesOutside("socket", EAFNOSUPPORT, 0, families, UINT64_MAX);
  allowed_.push_back("socket");
  denied_.push_back({"socket",
                     "families other than AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK (AF_PACKET, "
                     "AF_VSOCK, ...): raw network access and rarely used protocol code",
                     EAFNOSUPPORT});
  denied_.push_back({"socket",
                     "AF_NETLINK with a protocol other than NETLINK_ROUTE (audit, uevents, "
                     "netfilter, crypto, ...): kernel interfaces a function has no use for",
                     EPROTONOSUPPORT});
}

void SeccompPolicy::allowIoctlExceptTerminalInjection() {
  // Sorted. The kernel reads the command as 32 bits, so only those are
  // compared: garbage in the upper half cannot slip TIOCSTI through.
  const std::vector<uint64_t> commands = {TIOCSTI, TIOCLINUX};
  for (uint64_t command : commands)
    addRule("ioctl", EPERM, ArgCheck{.index = 1, .datum = command, .mask = 0xffffffff});
  // Every other command, with a clean upper half; commands with garbage there
  // get the default ENOSYS, because allowing them would overlap the rules above.
  addRulesOutside("ioctl", std::nullopt, 1, commands, UINT32_MAX);
  allowed_.push_back("ioctl");
  denied_.push_back({"ioctl", "TIOCSTI: types into the terminal, whose owner then runs it", EPERM});
  denied_.push_back(
      {"ioctl", "TIOCLINUX: controls the virtual console (paste selection, read screen)", EPERM});
}

void SeccompPolicy::allowDefaultPersonalityOnly() {
  const std::vector<uint64_t> defaultPersona = {PER_LINUX};
  addRule("personality", std::nullopt, ArgCheck{.datum = PER_LINUX});
  addRulesOutside("personality", EPERM, 0, defaultPersona, UINT64_MAX);
  allowed_.push_back("personality");
  denied_.push_back({"personality",
                     "any persona but PER_LINUX (the 0xffffffff query too): flags such as "
                     "ADDR_NO_RANDOMIZE turn off ASLR for whatever runs next",
                     EPERM});
}

void loadSeccomp(const SeccompProgram& program) {
  const std::vector<sock_filter>& instructions = program.instructions;
  // sock_fprog's length is 16 bits: a longer program would load truncated.
  if (instructions.empty() || instructions.size() > BPF_MAXINSNS)
    throwSysError("seccomp(SECCOMP_SET_MODE_FILTER): program of " +
                      std::to_string(instructions.size()) + " instructions",
                  EINVAL);
  sock_fprog filter{};
  filter.len = static_cast<unsigned short>(instructions.size());
  // The kernel only reads the program; sock_fprog just lacks the const.
  filter.filter = const_cast<sock_filter*>(instructions.data());
  check(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &filter),
        "seccomp(SECCOMP_SET_MODE_FILTER)");
}

}  // namespace sandbox
