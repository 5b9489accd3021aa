// Each test forks a child that turns on no_new_privs, loads the Python policy
// and reports what its system calls returned; the parent asserts on that.
#include "sandbox/seccomp.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/ioprio.h>
#include <linux/netlink.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "base/sys_error.h"

namespace sandbox {
namespace {

using base::check;
using base::SysError;

using Observations = std::map<std::string, std::string>;
using Calls = std::vector<std::pair<std::string, std::function<long()>>>;

struct ChildOutcome {
  std::string output;  // what the child wrote to its report pipe
  int status = 0;      // from waitpid
};

// "ok" for success, else the errno's name ("EPERM"), which reads well in
// assertion failures.
std::string outcome(long rc) {
  if (rc >= 0) return "ok";
  const char* name = strerrorname_np(errno);
  return name ? name : "errno " + std::to_string(errno);
}

void writeAll(int fd, const std::string& data) {
  for (size_t done = 0; done < data.size();) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(120);
    done += n;
  }
}

// Reads `fd` to EOF; kills `pid` if that takes longer than `timeout`, so that
// a child stuck on a denied call fails the test instead of hanging it.
std::string readUntilEof(int fd, pid_t pid, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string data;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd pfd{fd, POLLIN, 0};
    int ready = poll(&pfd, 1, std::max<int>(0, left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      kill(pid, SIGKILL);
      return data + "\n<timed out>";
    }
    char buffer[4096];
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return data;
    data.append(buffer, n);
  }
}

// Forks a child that loads `program` and then runs `body(reportFd)`, which
// writes what it observed to reportFd (and may exec, or die).
ChildOutcome runConfined(const SeccompProgram& program, const std::function<void(int)>& body,
                         std::chrono::seconds timeout = std::chrono::seconds(30)) {
  int fds[2];
  check(pipe2(fds, O_CLOEXEC), "pipe2");
  pid_t pid = check(fork(), "fork");
  if (pid == 0) {
    close(fds[0]);
    try {
      check(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)");
      loadSeccomp(program);
      body(fds[1]);
    } catch (const std::exception& e) {
      writeAll(fds[1], std::string("exception: ") + e.what());
      _exit(121);
    }
    _exit(0);
  }
  close(fds[1]);
  ChildOutcome result;
  result.output = readUntilEof(fds[0], pid, timeout);
  close(fds[0]);
  check(waitpid(pid, &result.status, 0), "waitpid");
  return result;
}

// Runs each named call in one confined child; returns name -> outcome.
Observations observeConfined(const SeccompProgram& program, const Calls& calls) {
  ChildOutcome child = runConfined(program, [&](int report) {
    std::string lines;
    for (const auto& [name, call] : calls) lines += name + "=" + outcome(call()) + "\n";
    writeAll(report, lines);
  });
  EXPECT_TRUE(WIFEXITED(child.status) && WEXITSTATUS(child.status) == 0) << child.output;
  Observations observed;
  std::istringstream lines(child.output);
  for (std::string line; std::getline(lines, line);) {
    size_t equals = line.find('=');
    if (equals != std::string::npos) observed[line.substr(0, equals)] = line.substr(equals + 1);
  }
  return observed;
}

bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

class SeccompTest : public ::testing::Test {
 protected:
  const SeccompPolicy policy_ = SeccompPolicy::forPython();
  const SeccompProgram program_ = policy_.compile();
};

// Arguments are chosen so that, were the filter missing, the calls would fail
// with something other than EPERM (we run as root) or harm only the child.
TEST_F(SeccompTest, DangerousCallsFailWithEperm) {
  const char* nowhere = "/nonexistent/thatch-seccomp-test";
  Calls calls = {
      {"mount", [&] { return long{mount("none", nowhere, "tmpfs", 0, nullptr)}; }},
      {"umount2", [&] { return long{umount2(nowhere, 0)}; }},
      {"pivot_root", [&] { return syscall(SYS_pivot_root, nowhere, nowhere); }},
      {"chroot", [&] { return long{chroot(nowhere)}; }},
      {"fsopen", [] { return syscall(SYS_fsopen, "no-such-filesystem", 0); }},
      {"open_tree", [&] { return syscall(SYS_open_tree, -1, nowhere, 0); }},
      {"unshare", [] { return long{unshare(CLONE_NEWUSER)}; }},
      {"setns", [] { return long{setns(-1, 0)}; }},
      {"ptrace", [] { return ptrace(PTRACE_ATTACH, INT32_MAX, nullptr, nullptr); }},
      {"process_vm_readv",
       [] { return syscall(SYS_process_vm_readv, INT32_MAX, nullptr, 0, nullptr, 0, 0); }},
      {"bpf", [] { return syscall(SYS_bpf, 0, nullptr, 0); }},
      {"perf_event_open", [] { return syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0); }},
      {"keyctl", [] { return syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0); }},
      {"add_key", [] { return syscall(SYS_add_key, nullptr, nullptr, nullptr, 0, 0); }},
      {"io_uring_setup", [] { return syscall(SYS_io_uring_setup, 1, nullptr); }},
      {"userfaultfd", [] { return syscall(SYS_userfaultfd, O_CLOEXEC); }},
      {"finit_module", [] { return syscall(SYS_finit_module, -1, "", 0); }},
      {"syslog", [] { return syscall(SYS_syslog, 10 /* SYSLOG_ACTION_SIZE_BUFFER */, 0, 0); }},
      {"open_by_handle_at", [] { return syscall(SYS_open_by_handle_at, -1, nullptr, 0); }},
      {"pidfd_getfd", [] { return syscall(SYS_pidfd_getfd, -1, 0, 0); }},
      {"personality(ADDR_NO_RANDOMIZE)", [] { return long{personality(ADDR_NO_RANDOMIZE)}; }},
  };
  Observations observed = observeConfined(program_, calls);
  for (const auto& [name, call] : calls) EXPECT_EQ(observed[name], "EPERM") << name;
}

// clone(CLONE_NEW*) would make a child that returns 0 here: leave at once.
long cloneWithFlags(unsigned long flags) {
  long rc = syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, 0);
  if (rc == 0) _exit(0);
  if (rc > 0) waitpid(rc, nullptr, 0);
  return rc;
}

TEST_F(SeccompTest, CloneWithNamespaceFlagsFailsWithEperm) {
  Calls calls;
  for (auto [name, flag] : std::vector<std::pair<std::string, unsigned long>>{
           {"CLONE_NEWUSER", CLONE_NEWUSER},
           {"CLONE_NEWNS", CLONE_NEWNS},
           {"CLONE_NEWPID", CLONE_NEWPID},
           {"CLONE_NEWNET", CLONE_NEWNET},
           {"CLONE_NEWUTS", CLONE_NEWUTS},
           {"CLONE_NEWIPC", CLONE_NEWIPC},
           {"CLONE_NEWCGROUP", CLONE_NEWCGROUP},
           {"CLONE_NEWUSER|CLONE_NEWPID", CLONE_NEWUSER | CLONE_NEWPID}})
    calls.emplace_back(name, [flag] { return cloneWithFlags(flag); });
  Observations observed = observeConfined(program_, calls);
  for (const auto& [name, call] : calls) EXPECT_EQ(observed[name], "EPERM") << name;
}

// fork's child exits 7; 0 if the parent saw exactly that.
long forkAndReap() {
  pid_t pid = fork();
  if (pid == 0) _exit(7);
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) && WEXITSTATUS(status) == 7 ? 0 : -1;
}

void* doNothing(void*) {
  return nullptr;
}

long startAndJoinThread() {
  pthread_t thread;
  errno = pthread_create(&thread, nullptr, doNothing, nullptr);
  if (errno != 0) return -1;
  errno = pthread_join(thread, nullptr);
  return errno == 0 ? 0 : -1;
}

TEST_F(SeccompTest, ForkAndThreadsStillWork) {
  Observations observed = observeConfined(
      program_, {
                    {"fork", forkAndReap},
                    // glibc tries clone3 first, gets ENOSYS and falls back to clone.
                    {"pthread_create", startAndJoinThread},
                });
  EXPECT_EQ(observed["fork"], "ok");
  EXPECT_EQ(observed["pthread_create"], "ok");
}

// Just the fields clone3 needs: flags, pidfd, child_tid, parent_tid,
// exit_signal, stack, stack_size, tls (CLONE_ARGS_SIZE_VER0).
long clone3WithFlags(uint64_t flags) {
  uint64_t args[8] = {flags, 0, 0, 0, SIGCHLD, 0, 0, 0};
  long rc = syscall(SYS_clone3, args, sizeof args);
  if (rc == 0) _exit(0);
  if (rc > 0) waitpid(rc, nullptr, 0);
  return rc;
}

TEST_F(SeccompTest, Clone3FailsWithEnosys) {
  Observations observed = observeConfined(
      program_, {
                    {"clone3(CLONE_NEWUSER)", [] { return clone3WithFlags(CLONE_NEWUSER); }},
                    {"clone3()", [] { return clone3WithFlags(0); }},
                });
  EXPECT_EQ(observed["clone3(CLONE_NEWUSER)"], "ENOSYS");
  EXPECT_EQ(observed["clone3()"], "ENOSYS");
}

TEST_F(SeccompTest, UnlistedCallFailsWithEnosys) {
  auto ioprioGet = [] { return syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0); };
  ASSERT_FALSE(contains(policy_.allowed(), "ioprio_get"));
  ASSERT_EQ(outcome(ioprioGet()), "ok") << "without the filter the kernel must answer";
  Observations observed = observeConfined(program_, {{"ioprio_get", ioprioGet}});
  EXPECT_EQ(observed["ioprio_get"], "ENOSYS");
}

long openSocket(long family, int type = SOCK_STREAM, long protocol = 0) {
  long fd = syscall(SYS_socket, family, type | SOCK_CLOEXEC, protocol);
  if (fd >= 0) close(fd);
  return fd;
}

long openSocketPair() {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) return -1;
  close(pair[0]);
  close(pair[1]);
  return 0;
}

TEST_F(SeccompTest, OnlyListedSocketFamiliesWork) {
  const long kUpperGarbage = 1L << 32;  // the kernel reads the family as an int
  Observations observed = observeConfined(
      program_,
      {
          {"AF_UNIX", [] { return openSocket(AF_UNIX); }},
          {"AF_INET", [] { return openSocket(AF_INET); }},
          {"AF_INET6", [] { return openSocket(AF_INET6); }},
          {"AF_NETLINK", [] { return openSocket(AF_NETLINK, SOCK_RAW); }},
          {"socketpair(AF_UNIX)", openSocketPair},
          {"AF_PACKET", [] { return openSocket(AF_PACKET, SOCK_RAW); }},
          {"AF_VSOCK", [] { return openSocket(AF_VSOCK); }},
          {"AF_UNSPEC", [] { return openSocket(AF_UNSPEC); }},
          {"AF_ALG", [] { return openSocket(AF_ALG, SOCK_SEQPACKET); }},
          {"AF_PACKET|garbage", [=] { return openSocket(kUpperGarbage | AF_PACKET, SOCK_RAW); }},
          {"AF_UNIX|garbage", [=] { return openSocket(kUpperGarbage | AF_UNIX); }},
      });
  for (const char* name : {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "socketpair(AF_UNIX)"})
    EXPECT_EQ(observed[name], "ok") << name;
  for (const char* name :
       {"AF_PACKET", "AF_VSOCK", "AF_UNSPEC", "AF_ALG", "AF_PACKET|garbage", "AF_UNIX|garbage"})
    EXPECT_EQ(observed[name], "EAFNOSUPPORT") << name;
}

TEST_F(SeccompTest, NetlinkIsForRoutingOnly) {
  const long kUpperGarbage = 1L << 32;  // the kernel reads the protocol as an int
  Observations observed = observeConfined(
      program_,
      {
          {"route", [] { return openSocket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE); }},
          {"audit", [] { return openSocket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT); }},
          {"uevent", [] { return openSocket(AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT); }},
          {"netfilter", [] { return openSocket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER); }},
          {"crypto", [] { return openSocket(AF_NETLINK, SOCK_RAW, NETLINK_CRYPTO); }},
          {"route|garbage",
           [=] { return openSocket(AF_NETLINK, SOCK_RAW, kUpperGarbage | NETLINK_ROUTE); }},
      });
  EXPECT_EQ(observed["route"], "ok");
  for (const char* name : {"audit", "uevent", "netfilter", "crypto", "route|garbage"})
    EXPECT_EQ(observed[name], "EPROTONOSUPPORT") << name;
}

// A zeroed buffer is a valid argument for every command used here.
long ioctlWithBuffer(int fd, unsigned long command) {
  char buffer[64] = {};
  return syscall(SYS_ioctl, fd, command, buffer);
}

// On a pipe, so that without the filter these would fail with ENOTTY rather
// than type into the test's terminal.
TEST_F(SeccompTest, TerminalInjectionIoctlsFailWithEperm) {
  const unsigned long kUpperGarbage = 1UL << 32;  // the kernel reads the command as 32 bits
  int fds[2];
  check(pipe2(fds, O_CLOEXEC), "pipe2");
  int fd = fds[0];
  Observations observed = observeConfined(
      program_,
      {
          {"TIOCSTI", [=] { return ioctlWithBuffer(fd, TIOCSTI); }},
          {"TIOCLINUX", [=] { return ioctlWithBuffer(fd, TIOCLINUX); }},
          {"TIOCSTI|garbage", [=] { return ioctlWithBuffer(fd, kUpperGarbage | TIOCSTI); }},
          {"FIONREAD", [=] { return ioctlWithBuffer(fd, FIONREAD); }},
          {"FIONBIO", [=] { return ioctlWithBuffer(fd, FIONBIO); }},
          {"TCGETS", [=] { return ioctlWithBuffer(fd, TCGETS); }},
          {"TIOCGWINSZ", [=] { return ioctlWithBuffer(fd, TIOCGWINSZ); }},
          {"TIOCGPTN", [=] { return ioctlWithBuffer(fd, TIOCGPTN); }},
          {"FIONREAD|garbage", [=] { return ioctlWithBuffer(fd, kUpperGarbage | FIONREAD); }},
      });
  close(fds[0]);
  close(fds[1]);
  EXPECT_EQ(observed["TIOCSTI"], "EPERM");
  EXPECT_EQ(observed["TIOCLINUX"], "EPERM");
  EXPECT_EQ(observed["TIOCSTI|garbage"], "EPERM");
  // Commands below (TCGETS), between (FIONREAD, TIOCGWINSZ) and above
  // (FIONBIO, TIOCGPTN) the denied ones reach the kernel.
  EXPECT_EQ(observed["FIONREAD"], "ok");
  EXPECT_EQ(observed["FIONBIO"], "ok");
  EXPECT_EQ(observed["TCGETS"], "ENOTTY");
  EXPECT_EQ(observed["TIOCGWINSZ"], "ENOTTY");
  EXPECT_EQ(observed["TIOCGPTN"], "ENOTTY");
  // A harmless command with a dirty upper half gets the default, ENOSYS.
  EXPECT_EQ(observed["FIONREAD|garbage"], "ENOSYS");
}

TEST_F(SeccompTest, OnlyTheDefaultPersonalityIsAllowed) {
  Observations observed = observeConfined(
      program_, {
                    {"PER_LINUX", [] { return long{personality(PER_LINUX)}; }},
                    {"query", [] { return long{personality(0xffffffff)}; }},
                    {"READ_IMPLIES_EXEC", [] { return long{personality(READ_IMPLIES_EXEC)}; }},
                });
  EXPECT_EQ(observed["PER_LINUX"], "ok");
  EXPECT_EQ(observed["query"], "EPERM");
  EXPECT_EQ(observed["READ_IMPLIES_EXEC"], "EPERM");
}

TEST_F(SeccompTest, X32SystemCallsKillTheProcess) {
  const long kX32 = 0x40000000;  // __X32_SYSCALL_BIT
  ChildOutcome child = runConfined(program_, [=](int report) {
    syscall(kX32 | SYS_getpid);
    writeAll(report, "survived");
  });
  EXPECT_TRUE(WIFSIGNALED(child.status) && WTERMSIG(child.status) == SIGSYS)
      << "status " << child.status << ": " << child.output;
}

// The i386 ABI through int 0x80 (getpid is 20 there).
long i386Getpid() {
  long result;
  asm volatile("int $0x80" : "=a"(result) : "a"(20L) : "r8", "r9", "r10", "r11", "memory");
  return result;
}

// Probed in a child: without i386 emulation, int 0x80 is a fatal fault.
bool hasI386Emulation() {
  pid_t pid = check(fork(), "fork");
  if (pid == 0) _exit(i386Getpid() == getpid() ? 0 : 1);
  int status = 0;
  check(waitpid(pid, &status, 0), "waitpid");
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST_F(SeccompTest, I386SystemCallsKillTheProcess) {
  if (!hasI386Emulation()) GTEST_SKIP() << "this kernel has no i386 emulation";
  ChildOutcome child = runConfined(program_, [](int report) {
    i386Getpid();
    writeAll(report, "survived");
  });
  EXPECT_TRUE(WIFSIGNALED(child.status) && WTERMSIG(child.status) == SIGSYS)
      << "status " << child.status << ": " << child.output;
}

constexpr const char kPythonScript[] = R"PY(
import hashlib, json, multiprocessing, re, socket, subprocess, tempfile, threading

def square(x):
    return x * x

if __name__ == "__main__":
    out = [json.dumps({"b": [1, 2], "a": None}, sort_keys=True)]
    out.append(re.sub(r"\d+", "#", "a1b22c333"))
    seen = []
    thread = threading.Thread(target=lambda: seen.append("thread"))
    thread.start()
    thread.join()
    out += seen
    child = subprocess.run(["/usr/bin/python3", "-c", "print(6 * 7)"],
                           capture_output=True, text=True, check=True)
    out.append(child.stdout.strip())
    with tempfile.TemporaryDirectory() as d:
        with tempfile.NamedTemporaryFile("w+", dir=d) as f:
            f.write("temp")
            f.flush()
            f.seek(0)
            out.append(f.read())
    out.append(hashlib.sha256(b"abc").hexdigest()[:16])
    a, b = socket.socketpair()
    a.sendall(b"ping")
    out.append(b.recv(4).decode())
    with multiprocessing.Pool(2) as pool:
        out.append(str(pool.map(square, range(5))))
    print("|".join(out))
)PY";

TEST_F(SeccompTest, PythonProgramRunsUnderThePolicy) {
  struct stat shm;
  ASSERT_EQ(stat("/dev/shm", &shm), 0) << "multiprocessing's semaphores need /dev/shm";
  ASSERT_TRUE(S_ISDIR(shm.st_mode));
  ChildOutcome child = runConfined(
      program_,
      [](int report) {
        check(dup2(report, STDOUT_FILENO), "dup2");
        check(dup2(report, STDERR_FILENO), "dup2");
        const char* argv[] = {"python3", "-c", kPythonScript, nullptr};
        const char* envp[] = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8", nullptr};
        execve("/usr/bin/python3", const_cast<char**>(argv), const_cast<char**>(envp));
        writeAll(report, std::string("execve: ") + strerrorname_np(errno));
        _exit(127);
      },
      std::chrono::seconds(60));
  EXPECT_TRUE(WIFEXITED(child.status) && WEXITSTATUS(child.status) == 0)
      << "status " << child.status << ": " << child.output;
  EXPECT_EQ(
      child.output,
      R"({"a": null, "b": [1, 2]}|a#b#c#|thread|42|temp|ba7816bf8f01cfea|ping|[0, 1, 4, 9, 16])"
      "\n");
}

TEST_F(SeccompTest, CompileIsDeterministic) {
  SeccompProgram again = SeccompPolicy::forPython().compile();
  ASSERT_EQ(again.instructions.size(), program_.instructions.size());
  EXPECT_EQ(std::memcmp(again.instructions.data(), program_.instructions.data(),
                        program_.instructions.size() * sizeof(sock_filter)),
            0);
  EXPECT_LE(program_.instructions.size(), size_t{BPF_MAXINSNS});
}

TEST_F(SeccompTest, BuildTimeProgramMatchesTheCurrentPolicy) {
  // thatch-run loads the program compiled at build time; it must be the
  // policy this source describes, not a stale one.
  ASSERT_EQ(kPythonPolicyBpfLength, program_.instructions.size());
  EXPECT_EQ(std::memcmp(kPythonPolicyBpf, program_.instructions.data(),
                        kPythonPolicyBpfLength * sizeof(sock_filter)),
            0);
}

TEST_F(SeccompTest, DenialsNameEachDeniedFamily) {
  std::vector<std::string> denied;
  for (const SeccompPolicy::Denial& denial : policy_.denials()) {
    EXPECT_FALSE(denial.reason.empty()) << denial.syscall;
    EXPECT_EQ(denial.reason.find('\n'), std::string::npos) << denial.syscall;
    denied.push_back(denial.syscall);
  }
  for (const char* name : {"clone",
                           "clone3",
                           "unshare",
                           "setns",
                           "mount",
                           "umount2",
                           "pivot_root",
                           "chroot",
                           "move_mount",
                           "open_tree",
                           "fsopen",
                           "fsconfig",
                           "fsmount",
                           "fspick",
                           "mount_setattr",
                           "ptrace",
                           "process_vm_readv",
                           "process_vm_writev",
                           "bpf",
                           "perf_event_open",
                           "keyctl",
                           "add_key",
                           "request_key",
                           "io_uring_setup",
                           "io_uring_enter",
                           "io_uring_register",
                           "userfaultfd",
                           "init_module",
                           "finit_module",
                           "delete_module",
                           "kexec_load",
                           "kexec_file_load",
                           "reboot",
                           "swapon",
                           "swapoff",
                           "acct",
                           "settimeofday",
                           "clock_settime",
                           "clock_adjtime",
                           "adjtimex",
                           "syslog",
                           "quotactl",
                           "open_by_handle_at",
                           "name_to_handle_at",
                           "lookup_dcookie",
                           "fanotify_init",
                           "pidfd_getfd",
                           "personality",
                           "ioctl",
                           "socket"})
    EXPECT_TRUE(contains(denied, name)) << name;
  // Denied outright means never allowed, even with other arguments.
  for (const std::string& name : denied) {
    bool conditional =
        name == "clone" || name == "socket" || name == "ioctl" || name == "personality";
    EXPECT_EQ(contains(policy_.allowed(), name), conditional) << name;
  }
}

TEST(LoadSeccomp, RejectsAnEmptyProgram) {
  try {
    loadSeccomp(SeccompProgram{});
    FAIL() << "an empty program loaded";
  } catch (const SysError& e) {
    EXPECT_EQ(e.error(), EINVAL);
  }
}

}  // namespace
}  // namespace sandbox
