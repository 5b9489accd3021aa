// The escape and interference battery: each case is a function deployed
// through thatchd as users deploy theirs, whose handler attempts one thing
// and returns what it observed (an errno's name, a list, a string). The
// test asserts that observation, then that thatchd still serves and that a
// bystander function's warm sandbox is still the one it was (same token,
// one more call). docs/security.md lists the cases and what they show.

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "base/fd.h"
#include "tests/daemon.h"
#include "tests/suite_daemon.h"
#include "tests/testing.h"
#include "thatch/thatch.h"

namespace {

using testing_util::TestDaemon;
using thatch::Status;

// Put before every case's handler: `attempt(f, ...)` and `sysc(nr, ...)`
// give "ok" or the name of the errno a call failed with.
constexpr char kPrelude[] = R"PY(
import ctypes, errno, json, os, signal, socket, stat, subprocess, sys
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

def sysc(nr, *args):
    ctypes.set_errno(0)
    r = _libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a
                                           for a in args])
    return "ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))

def attempt(f, *args):
    try:
        f(*args)
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def buffer(size):
    return ctypes.addressof(ctypes.create_string_buffer(size))
)PY";

std::string handlerSource(const std::string& body) {
  return std::string(kPrelude) + "\ndef handler(event, context):\n" + body + "\n";
}

// A JSON string, for the expected payloads below.
std::string quoted(const std::string& text) {
  return "\"" + text + "\"";
}

// A JSON string's text (these contain no escapes).
std::string unquoted(const std::string& json) {
  return json.size() >= 2 && json.front() == '"' ? json.substr(1, json.size() - 2) : json;
}

// The pid of a direct child of `parent` whose name is `comm`, or -1.
pid_t childNamed(pid_t parent, const std::string& comm) {
  std::unique_ptr<DIR, int (*)(DIR*)> proc(opendir("/proc"), closedir);
  while (dirent* entry = readdir(proc.get())) {
    pid_t pid = atoi(entry->d_name);
    if (pid <= 0) continue;
    std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    size_t open = text.find('('), close = text.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::istringstream rest(text.substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent && text.substr(open + 1, close - open - 1) == comm) return pid;
  }
  return -1;
}

class Battery : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_.start("[limits]\npids = 32\ntimeout = \"5s\"\nmemory = \"128MiB\"\n");
    if (!daemon_) return;
    // A listener on the host's loopback, which no sandbox may reach.
    listener_ = new base::Fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    ASSERT_EQ(bind(listener_->get(), reinterpret_cast<sockaddr*>(&address), length), 0);
    ASSERT_EQ(listen(listener_->get(), 16), 0);
    ASSERT_EQ(getsockname(listener_->get(), reinterpret_cast<sockaddr*>(&address), &length), 0);
    port_ = ntohs(address.sin_port);
    auto client = thatch::Thatch::connect(daemon_->socketPath());
    testing_util::deploySource(*client, "bystander", R"PY(
import os
TOKEN = os.urandom(8).hex()
CALLS = 0
def handler(event, context):
    global CALLS
    CALLS += 1
    return f"{TOKEN}/{CALLS}"
)PY");
    bystander_ = unquoted(client->invoke("bystander", "{}").payload);
    zygote_ = childNamed(daemon_->pid(), "thatch-zygote");
  }

  static void TearDownTestSuite() {
    delete listener_;
    listener_ = nullptr;
    daemon_.stop();
  }

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    ASSERT_TRUE(daemon_);
    ASSERT_GT(zygote_, 0) << "no thatch-zygote below thatchd " << daemon_->pid();
    client_ = thatch::Thatch::connect(daemon_->socketPath());
  }

  // After every case: thatchd answers, and the bystander's sandbox is the
  // same warm one, one call further.
  void TearDown() override {
    if (!client_) return;
    thatch::Result result = client_->invoke("bystander", "{}");
    ASSERT_EQ(result.status, Status::kOk) << result.errorMessage;
    size_t slash = bystander_.find('/');
    ASSERT_NE(slash, std::string::npos) << bystander_;
    int calls = std::stoi(bystander_.substr(slash + 1));
    EXPECT_EQ(result.payload,
              quoted(bystander_.substr(0, slash) + "/" + std::to_string(calls + 1)));
    bystander_ = unquoted(result.payload);
  }

  // Deploys `body` as a function named `name` and invokes it once with an
  // event that names thatchd's pid, its zygote's and the loopback port.
  thatch::Result attack(const std::string& name, const std::string& body,
                        thatch::FunctionConfig config = {}) {
    testing_util::deploySource(*client_, name, handlerSource(body), config);
    std::string event = "{\"thatchd\": " + std::to_string(daemon_->pid()) +
                        ", \"zygote\": " + std::to_string(zygote_) +
                        ", \"port\": " + std::to_string(port_) + "}";
    return client_->invoke(name, event);
  }

  // The host paths a sandbox must not learn: where thatchd keeps its state
  // and socket, where its programs are, and its cgroup subtree.
  std::vector<std::string> hostPaths() const {
    return {daemon_->dir(),
            testing_util::testBinDir().substr(0, testing_util::testBinDir().rfind('/')),
            daemon_->cgroupSubdir()};
  }

  static testing_util::SuiteDaemon daemon_;
  static base::Fd* listener_;
  static int port_;
  static pid_t zygote_;
  static std::string bystander_;  // its last answer, unquoted: "TOKEN/CALLS"
  std::unique_ptr<thatch::Thatch> client_;
};

testing_util::SuiteDaemon Battery::daemon_;
base::Fd* Battery::listener_ = nullptr;
int Battery::port_ = 0;
pid_t Battery::zygote_ = -1;
std::string Battery::bystander_;

// One attempt, one observation.
struct Case {
  const char* name;                   // also the function's name
  const char* body;                   // the handler's body
  std::vector<std::string> expected;  // the payloads that mean "contained"
};

void PrintTo(const Case& c, std::ostream* out) {
  *out << c.name;
}

const std::string kEPERM = quoted("EPERM"), kENOENT = quoted("ENOENT"), kEROFS = quoted("EROFS"),
                  kESRCH = quoted("ESRCH"), kEACCES = quoted("EACCES"), kENOSYS = quoted("ENOSYS");

const Case kCases[] = {
    // Files outside the mount plan.
    {"read-shadow", "    return attempt(open, '/etc/shadow')", {kENOENT}},
    {"list-root", "    return attempt(os.listdir, '/root')", {kENOENT}},
    {"list-home", "    return attempt(os.listdir, '/home')", {kENOENT}},
    {"list-sys", "    return attempt(os.listdir, '/sys')", {kENOENT}},
    {"list-var-lib", "    return attempt(os.listdir, '/var/lib')", {kENOENT}},
    {"read-kcore", "    return attempt(open, '/proc/kcore', 'rb')", {kENOENT}},
    {"write-sysrq",
     "    return attempt(lambda: open('/proc/sysrq-trigger', 'w').write('h'))",
     {kENOENT}},
    {"open-dev-mem", "    return attempt(open, '/dev/mem', 'rb')", {kENOENT}},
    {"write-usr", "    return attempt(open, '/usr/lib/thatch-battery', 'w')", {kEROFS}},
    {"write-own-code", "    return attempt(open, '/var/task/handler.py', 'a')", {kEROFS, kEACCES}},
    {"create-in-own-code", "    return attempt(open, '/var/task/new.py', 'w')", {kEROFS, kEACCES}},
    {"write-root", "    return attempt(open, '/thatch-battery', 'w')", {kEROFS}},
    {"write-proc-sys",
     "    return attempt(lambda: open('/proc/sys/kernel/hostname', 'w').write('x'))",
     {kEROFS}},
    {"mknod-device",
     "    return attempt(os.mknod, '/tmp/mem', 0o600 | stat.S_IFCHR, os.makedev(1, 1))",
     {kEPERM}},
    {"exec-from-dev-shm",
     "    open('/dev/shm/run', 'w').write('#!/bin/sh\\necho ran\\n')\n"
     "    os.chmod('/dev/shm/run', 0o755)\n"
     "    return attempt(subprocess.run, ['/dev/shm/run'])",
     {kEACCES}},
    // A setuid binary runs without its privilege: su cannot become root.
    {"setuid-su",
     "    done = subprocess.run(['/usr/bin/su', '-c', 'id -u', 'root'], stdin=subprocess.DEVNULL,\n"
     "                          capture_output=True, text=True)\n"
     "    return [done.returncode != 0, done.stdout.strip() != '0',\n"
     "            bool(os.statvfs('/usr').f_flag & os.ST_NOSUID)]",
     {"[true,true,true]"}},
    // Processes outside its pid namespace.
    {"list-processes",
     "    return sorted(int(p) for p in os.listdir('/proc') if p.isdigit())",
     {"[1]"}},
    {"signal-thatchd", "    return attempt(os.kill, event['thatchd'], signal.SIGKILL)", {kESRCH}},
    {"signal-zygote", "    return attempt(os.kill, event['zygote'], signal.SIGKILL)", {kESRCH}},
    {"signal-everything",
     "    # kill(-1) reaches every process it may signal: in its namespace, none but itself\n"
     "    return attempt(os.kill, -1, signal.SIGCONT)",
     {kESRCH, quoted("ok")}},
    {"pidfd-thatchd", "    return sysc(434, event['thatchd'], 0)", {kESRCH}},
    {"ptrace-attach-init", "    return sysc(101, 16, 1, 0, 0)", {kEPERM}},
    {"ptrace-traceme", "    return sysc(101, 0, 0, 0, 0)", {kEPERM}},
    {"read-zygote-memory",
     "    return sysc(310, event['zygote'], buffer(16), 1, buffer(16), 1, 0)",
     {kEPERM}},
    // Namespaces and mounts.
    {"unshare-user", "    return sysc(272, 0x10000000)", {kEPERM}},
    {"unshare-net", "    return sysc(272, 0x40000000)", {kEPERM}},
    {"unshare-mount", "    return sysc(272, 0x00020000)", {kEPERM}},
    {"setns-own-net",
     "    return sysc(308, os.open('/proc/self/ns/net', os.O_RDONLY), 0)",
     {kEPERM}},
    {"clone-new-pid", "    return sysc(56, 0x20000000 | signal.SIGCHLD, 0, 0, 0, 0)", {kEPERM}},
    {"mount-tmpfs", "    return sysc(165, b'none', b'/tmp', b'tmpfs', 0, 0)", {kEPERM}},
    {"umount-proc", "    return sysc(166, b'/proc', 2)", {kEPERM}},
    {"chroot", "    return attempt(os.chroot, '/tmp')", {kEPERM}},
    {"pivot-root", "    return sysc(155, b'/tmp', b'/tmp')", {kEPERM}},
    {"open-by-handle", "    return sysc(304, -100, buffer(128), 0)", {kEPERM}},
    // Kernel attack surface.
    {"bpf", "    return sysc(321, 5, buffer(128), 128)", {kEPERM}},
    {"io-uring", "    return sysc(425, 1, buffer(120))", {kEPERM}},
    {"add-key", "    return sysc(248, b'user', b'k', b'v', 1, -2)", {kEPERM}},
    {"keyctl", "    return sysc(250, 0, -2, 0, 0, 0)", {kEPERM}},
    {"perf-event-open", "    return sysc(298, buffer(128), 0, -1, -1, 0)", {kEPERM}},
    {"userfaultfd", "    return sysc(323, 0)", {kEPERM}},
    {"load-module", "    return sysc(313, 0, b'', 0)", {kEPERM}},
    {"kexec", "    return sysc(246, 0, 0, 0, 0)", {kEPERM}},
    {"reboot", "    return sysc(169, 0xfee1dead, 672274793, 0x4321fedc, 0)", {kEPERM}},
    {"swapon", "    return sysc(167, b'/tmp/swap', 0)", {kEPERM}},
    {"set-clock", "    return sysc(164, buffer(16), 0)", {kEPERM}},
    {"terminal-injection", "    return sysc(16, 0, 0x5412, buffer(1))", {kEPERM}},
    {"sysv-ipc",
     "    return [sysc(29, 0x7468, 4096, 0o1666), sysc(68, 0x7468, 0o1666)]",
     {"[" + kENOSYS + "," + kENOSYS + "]"}},
    // Sockets: raw, packet, netlink beyond routing.
    {"raw-socket",
     "    return attempt(socket.socket, socket.AF_INET, socket.SOCK_RAW, 1)",
     {kEPERM}},
    {"packet-socket",
     "    return attempt(socket.socket, socket.AF_PACKET, socket.SOCK_RAW, 0)",
     {quoted("EAFNOSUPPORT")}},
    {"netlink-audit",
     "    return attempt(socket.socket, socket.AF_NETLINK, socket.SOCK_RAW, 9)",
     {quoted("EPROTONOSUPPORT")}},
    {"netlink-uevent",
     "    return attempt(socket.socket, socket.AF_NETLINK, socket.SOCK_DGRAM, 15)",
     {quoted("EPROTONOSUPPORT")}},
    {"netlink-netfilter",
     "    return attempt(socket.socket, socket.AF_NETLINK, socket.SOCK_RAW, 12)",
     {quoted("EPROTONOSUPPORT")}},
    // The network: a sandbox without network access has its own loopback only.
    {"interfaces", "    return sorted(name for _, name in socket.if_nameindex())", {"[\"lo\"]"}},
    {"host-loopback",
     "    return attempt(socket.create_connection, ('127.0.0.1', event['port']), 5)",
     {quoted("ECONNREFUSED")}},
    {"metadata-address",
     "    return attempt(socket.create_connection, ('169.254.169.254', 80), 5)",
     {quoted("ENETUNREACH")}},
    {"link-local-v6",
     "    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n"
     "    return attempt(s.connect, ('fe80::1', 80, 0, 1))",
     {quoted("ENETUNREACH"), quoted("EINVAL"), quoted("EADDRNOTAVAIL")}},
    // Who it is.
    {"identity",
     "    status = dict(line.split(':\\t') for line in "
     "open('/proc/self/status').read().splitlines()\n"
     "                  if ':\\t' in line)\n"
     "    inside, _, count = open('/proc/self/uid_map').read().split()\n"
     "    return [status['Uid'], status['CapEff'], status['CapPrm'], status['CapBnd'],\n"
     "            status['NoNewPrivs'], status['Seccomp'], inside, count, socket.gethostname()]",
     {"[\"1000\\t1000\\t1000\\t1000\",\"0000000000000000\",\"0000000000000000\","
      "\"0000000000000000\",\"1\",\"2\",\"1000\",\"1\",\"sandbox\"]"}},
    {"set-hostname", "    return sysc(170, b'x', 1)", {kEPERM, kENOSYS}},
    // Exhaustion that stays its own.
    {"fill-tmp",
     "    return attempt(lambda: [open(f'/tmp/fill{i}', 'wb').write(b'x' * (1 << 20))\n"
     "                            for i in range(96)])",
     {quoted("ENOSPC")}},
    {"fill-dev-shm",
     "    return attempt(lambda: [open(f'/dev/shm/fill{i}', 'wb').write(b'x' * (1 << 20))\n"
     "                            for i in range(64)])",
     {quoted("ENOSPC")}},
    {"exhaust-fds",
     "    opened = []\n"
     "    result = attempt(lambda: [opened.append(os.open('/dev/null', os.O_RDONLY))\n"
     "                              for _ in range(1 << 20)])\n"
     "    for fd in opened:\n"
     "        os.close(fd)\n"
     "    return result",
     {quoted("EMFILE")}},
};

class Contained : public Battery, public ::testing::WithParamInterface<Case> {};

TEST_P(Contained, TheAttemptFailsAndEverythingElseKeepsServing) {
  const Case& c = GetParam();
  thatch::Result result = attack(c.name, c.body);
  ASSERT_EQ(result.status, Status::kOk) << result.errorType << ": " << result.errorMessage << "\n"
                                        << result.traceback;
  EXPECT_TRUE(std::find(c.expected.begin(), c.expected.end(), result.payload) != c.expected.end())
      << c.name << " observed " << result.payload;
  EXPECT_TRUE(client_->remove(c.name));
}

INSTANTIATE_TEST_SUITE_P(Battery, Contained, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::regex_replace(info.param.name, std::regex("-"), "_");
                         });

// The host's loopback, where thatchd's host serves: the connection is
// refused by the sandbox's own loopback, and the host's listener never
// sees it.
TEST_F(Battery, TheHostsLoopbackListenerIsNeverReached) {
  thatch::Result result = attack("loopback-listener", R"PY(
    return [attempt(socket.create_connection, (host, event['port']), 5)
            for host in ('127.0.0.1', 'localhost', '::1')])PY");
  ASSERT_EQ(result.status, Status::kOk) << result.errorMessage;
  EXPECT_EQ(result.payload, "[\"ECONNREFUSED\",\"ECONNREFUSED\",\"ECONNREFUSED\"]");
  EXPECT_LT(accept(listener_->get(), nullptr, nullptr), 0);
  EXPECT_EQ(errno, EAGAIN);
  client_->remove("loopback-listener");
}

// /tmp runs what a function writes there, as Lambda's does, but no
// privilege comes with it (nosuid); a function deployed with tmpNoexec
// cannot run anything from it.
TEST_F(Battery, TmpIsExecutableUnlessTheFunctionSaysNoexec) {
  const std::string body = R"PY(
    open('/tmp/run', 'w').write('#!/bin/sh\necho ran as $(id -u)\n')
    os.chmod('/tmp/run', 0o4755)
    try:
        return subprocess.run(['/tmp/run'], capture_output=True, text=True).stdout
    except OSError as e:
        return errno.errorcode[e.errno])PY";
  thatch::Result runs = attack("exec-from-tmp", body);
  ASSERT_EQ(runs.status, Status::kOk) << runs.errorMessage << runs.traceback;
  EXPECT_EQ(runs.payload, quoted("ran as 1000\\n"));
  thatch::FunctionConfig noexec;
  noexec.tmpNoexec = true;
  thatch::Result refused = attack("exec-from-tmp-noexec", body, noexec);
  ASSERT_EQ(refused.status, Status::kOk) << refused.errorMessage << refused.traceback;
  EXPECT_EQ(refused.payload, kEACCES);
  client_->remove("exec-from-tmp");
  client_->remove("exec-from-tmp-noexec");
}

// What pid 1 says about itself, which is the zygote's: its command line,
// environment, executable and mapped files name nothing of the host.
TEST_F(Battery, PidOneNamesNothingOfTheHost) {
  thatch::Result result = attack("whoami", R"PY(
    maps = sorted({line.split()[-1] for line in open('/proc/self/maps').read().splitlines()
                   if '/' in line and not line.split()[-1].startswith('/usr/')})
    return {'cmdline': open('/proc/1/cmdline', 'rb').read().rstrip(b'\0').decode(),
            'exe': os.readlink('/proc/1/exe'), 'maps': maps, 'environ': dict(os.environ),
            'argv': sys.argv, 'executable': sys.executable, 'cgroup': open('/proc/self/cgroup').read(),
            'cwd': os.getcwd()})PY");
  ASSERT_EQ(result.status, Status::kOk) << result.errorMessage << result.traceback;
  EXPECT_NE(result.payload.find(R"("cmdline":"thatch-zygote)"), std::string::npos)
      << result.payload;
  EXPECT_NE(result.payload.find(R"x("exe":"/memfd:thatch-zygote (deleted)")x"), std::string::npos)
      << result.payload;
  // The arguments' bytes are zeroed, not removed: nothing but NULs follows the name.
  EXPECT_EQ(result.payload.find("--"), std::string::npos) << result.payload;
  for (const std::string& path : hostPaths())
    EXPECT_EQ(result.payload.find(path), std::string::npos) << path << " in " << result.payload;
  client_->remove("whoami");
}

// An abstract unix socket lives in its network namespace: another
// sandbox's connect is refused, and the listener never sees it.
TEST_F(Battery, AbstractUnixSocketsAreTheirSandboxesOwn) {
  testing_util::deploySource(*client_, "abstract-listener", handlerSource(R"PY(
    global listener
    if event.get('accept'):
        listener.setblocking(False)
        return attempt(listener.accept)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind('\0thatch-battery')
    listener.listen(8)
    return 'listening')PY"));
  ASSERT_EQ(client_->invoke("abstract-listener", "{}").payload, quoted("listening"));
  thatch::Result other = attack("abstract-client", R"PY(
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    return attempt(s.connect, '\0thatch-battery'))PY");
  EXPECT_EQ(other.payload, quoted("ECONNREFUSED"));
  EXPECT_EQ(client_->invoke("abstract-listener", R"({"accept": true})").payload, quoted("EAGAIN"));
  client_->remove("abstract-listener");
  client_->remove("abstract-client");
}

// What one function leaves in /tmp, /dev/shm (POSIX shared memory) and its
// environment, the next sandbox of a different function does not find.
TEST_F(Battery, NothingIsLeftForADifferentFunction) {
  thatch::Result left = attack("leaves-state", R"PY(
    open('/tmp/secret', 'w').write('s3cret')
    open('/dev/shm/sem.secret', 'w').write('s3cret')
    os.environ['SECRET'] = 's3cret'
    return sorted(os.listdir('/tmp') + os.listdir('/dev/shm')))PY");
  EXPECT_EQ(left.payload, "[\"secret\",\"sem.secret\"]");
  thatch::Result found = attack("finds-state", R"PY(
    return [os.listdir('/tmp'), os.listdir('/dev/shm'), 'SECRET' in os.environ])PY");
  EXPECT_EQ(found.payload, "[[],[],false]");
  client_->remove("leaves-state");
  client_->remove("finds-state");
}

// Exhausting processes, memory and CPU ends the invocation with its limit's
// status; the bystander keeps serving (TearDown).
TEST_F(Battery, AForkBombEndsAtItsPidsLimit) {
  testing_util::deploySource(*client_, "fork-bomb", testing_util::kForkBombHandler);
  EXPECT_EQ(client_->invoke("fork-bomb", "{}").status, Status::kTooManyProcesses);
  client_->remove("fork-bomb");
}

TEST_F(Battery, AMemoryHogEndsAtItsMemoryLimit) {
  thatch::Result result = attack("memory-hog", R"PY(
    hog = []
    while True:
        hog.append(bytearray(1 << 20)))PY");
  EXPECT_EQ(result.status, Status::kOutOfMemory) << result.errorMessage;
  client_->remove("memory-hog");
}

TEST_F(Battery, ASpinnerEndsAtItsTimeout) {
  thatch::FunctionConfig config;
  config.timeout = std::chrono::milliseconds(500);
  thatch::Result result = attack("spinner", R"PY(
    while True:
        pass)PY",
                                 config);
  EXPECT_EQ(result.status, Status::kTimeout) << result.errorMessage;
  client_->remove("spinner");
}

// A daemonised grandchild outlives the invocation that started it (the
// sandbox stays warm, and with it whatever runs in it) but not its
// sandbox: removing the function kills it.
TEST_F(Battery, ADaemonisedGrandchildDiesWithItsSandbox) {
  thatch::Result result = attack("daemoniser", R"PY(
    child = subprocess.Popen(['/usr/bin/sleep', '3600'], start_new_session=True,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    return child.pid)PY");
  ASSERT_EQ(result.status, Status::kOk) << result.errorMessage;
  // Found on the host by its command line and a sandbox's uid.
  pid_t sleeper = -1;
  std::unique_ptr<DIR, int (*)(DIR*)> proc(opendir("/proc"), closedir);
  while (dirent* entry = readdir(proc.get())) {
    std::string pid = entry->d_name;
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (testing_util::readFile("/proc/" + pid + "/cmdline") != std::string("/usr/bin/sleep\0"
                                                                           "3600\0",
                                                                           20))
      continue;
    struct stat info;
    if (stat(("/proc/" + pid).c_str(), &info) == 0 && info.st_uid >= 1'000'000'000)
      sleeper = std::stoi(pid);
  }
  ASSERT_GT(sleeper, 0) << "the grandchild is not running";
  base::Fd pidfd(static_cast<int>(syscall(SYS_pidfd_open, sleeper, 0)));
  ASSERT_TRUE(pidfd) << strerror(errno);
  EXPECT_TRUE(client_->remove("daemoniser"));
  pollfd gone{pidfd.get(), POLLIN, 0};
  EXPECT_EQ(poll(&gone, 1, 60'000), 1) << "the grandchild outlived its sandbox";
}

// With `[pool] freeze_idle`, a daemonised grandchild that spins is frozen
// with its sandbox once the sandbox is idle: no CPU while other work runs,
// thawed by the next call, and killed when its function is removed.
TEST(FrozenWhileIdle, ADaemonisedSpinnerSpendsNothingWhileItsSandboxIsIdle) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  if (testing_util::freezerDirOf(getpid()).empty()) GTEST_SKIP() << "no cgroup v1 freezer";
  testing_util::HostState before = testing_util::snapshot();
  {
    TestDaemon daemon("[pool]\nfreeze_idle = true\n");
    auto client = thatch::Thatch::connect(daemon.socketPath());
    testing_util::deploySource(*client, "spawner", R"PY(
import subprocess
spinner = None
def handler(event, context):
    global spinner
    if spinner is None:
        spinner = subprocess.Popen(['/usr/bin/sh', '-c', 'while :; do :; done', 'thatch-spinner'],
                                   start_new_session=True, stdin=subprocess.DEVNULL)
        return 'spawned'
    return 'served'
)PY");
    ASSERT_EQ(client->invoke("spawner", "{}").payload, "\"spawned\"");
    pid_t spinner = -1;
    for (const std::string& pid : testing_util::snapshot().sandboxProcesses)
      if (testing_util::readFile("/proc/" + pid + "/cmdline").find("thatch-spinner") !=
          std::string::npos)
        spinner = std::stoi(pid);
    ASSERT_GT(spinner, 0) << "the spinner is not running";
    std::string freezer = testing_util::freezerDirOf(spinner);
    ASSERT_FALSE(freezer.empty());
    EXPECT_TRUE(testing_util::eventually([&] {
      return testing_util::freezerState(freezer) == "FROZEN";
    })) << "the idle sandbox was never frozen";
    // Across a cold start of another function, not a nanosecond of CPU.
    uint64_t frozen = testing_util::cpuNs(spinner);
    testing_util::deploySource(*client, "other", "def handler(event, context):\n    return 1\n");
    EXPECT_EQ(client->invoke("other", "{}").status, Status::kOk);
    EXPECT_EQ(testing_util::cpuNs(spinner), frozen) << "a frozen grandchild ran";
    EXPECT_EQ(client->invoke("spawner", "{}").payload, "\"served\"");
    base::Fd pidfd(static_cast<int>(syscall(SYS_pidfd_open, spinner, 0)));
    ASSERT_TRUE(pidfd) << strerror(errno);
    EXPECT_TRUE(client->remove("spawner"));
    pollfd gone{pidfd.get(), POLLIN, 0};
    EXPECT_EQ(poll(&gone, 1, 60'000), 1) << "the spinner outlived its sandbox";
    client.reset();
    EXPECT_EQ(daemon.stop(), 0) << daemon.log();
  }
  EXPECT_EQ(testing_util::leftBehind(before, testing_util::snapshot()), "");
}

}  // namespace
