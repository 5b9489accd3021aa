// The zygote end to end: real sandboxes forked from a real thatch-zygote,
// running the handlers in examples/, observed through their channels.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <optional>
#include <set>

#include "rootfs/sandbox_spec.h"
#include "runtime/blocking_channel.h"
#include "runtime/zygote_control.h"
#include "sandbox/confine.h"
#include "sandbox/idmap.h"
#include "tests/testing.h"

namespace runtime {
namespace {

using Status = AnswerStatus;
using namespace std::chrono_literals;

using testing_util::repoRoot;

// A live sandbox of the test: its id lease, its channel.
struct TestSandbox {
  uint64_t id = 0;
  pid_t pid = 0;
  std::unique_ptr<sandbox::IdLease> lease;
  std::unique_ptr<BlockingChannel> channel;
};

// `source` as handler.py in `code`, which the sandbox's uid may search.
void writeHandler(const testing_util::TempDir& code, const std::string& source) {
  chmod(code.path().c_str(), 0755);
  testing_util::writeFile(code.path() + "/handler.py", source);
}

// A handler that returns its event's name and the memfds among its open
// fds: the shared answer page is mapped, its fd never open in the sandbox.
void writePageHandler(const testing_util::TempDir& code) {
  writeHandler(code, R"PY(
import os
def handler(event, context):
    links = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            links.append(os.readlink("/proc/self/fd/" + fd))
        except OSError:
            pass  # listdir's own, closed by now
    return {"name": event["name"], "memfds": [l for l in links if "memfd" in l]}
)PY");
}

class ZygoteTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) return;
    zygote_ = new Zygote(zygoteOptions("python3.11"));
  }
  static void TearDownTestSuite() {
    delete zygote_;
    zygote_ = nullptr;
  }
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    ASSERT_NE(zygote_, nullptr);
  }

  static ZygoteOptions zygoteOptions(const std::string& runtime) {
    ZygoteOptions options;
    options.binary = testing_util::testBinDir() + "/../bin/thatch-zygote";
    options.runtime = runtime;
    return options;
  }

  static SpawnParams params(const std::string& codeDir, const sandbox::IdLease& lease) {
    SpawnParams p;
    rootfs::SandboxShape function;
    function.codeDir = codeDir;
    function.hostId = lease.hostId();
    p.spec = rootfs::sandboxSpec(function);
    p.names.cgroupName = "zt-" + std::to_string(lease.hostId());
    p.handler = "handler.handler";
    p.env = {"PATH=/usr/bin:/bin", "GREETING=hi"};
    p.function.name = "test-fn";
    p.function.logLimitBytes = 4096;
    return p;
  }

  // Spawns a sandbox for `codeDir` in `zygote` (default: the suite's).
  TestSandbox spawn(const std::string& codeDir, Zygote* zygote = nullptr,
                    std::function<void(SpawnParams&)> adjust = {}, bool withPage = false) {
    TestSandbox box;
    box.id = ++nextId_;
    box.lease = std::make_unique<sandbox::IdLease>(ids_.acquire());
    SpawnParams p = params(codeDir, *box.lease);
    if (adjust) adjust(p);
    SandboxChannel::SandboxEnds ends;
    box.channel = std::make_unique<BlockingChannel>(ends, withPage);
    box.pid = (zygote ? zygote : zygote_)->spawn(box.id, p, std::move(ends));
    if (!zygote) running_.insert(box.id);
    return box;
  }

  TestSandbox spawnExample(const std::string& name, Zygote* zygote = nullptr) {
    return spawn(repoRoot() + "/examples/" + name, zygote);
  }

  // Waits for the exit event of `id` (others only end their sandbox's
  // place in running_). The bound is for failing, not for waiting.
  ExitEvent exitOf(uint64_t id, Zygote* zygote = nullptr) {
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto event = (zygote ? zygote : zygote_)->nextExit(100ms);
      if (!event) continue;
      if (!zygote) running_.erase(event->id);
      if (event->id == id) return *event;
    }
    ADD_FAILURE() << "no exit event for sandbox " << id;
    return {};
  }

  // Until every sandbox the suite's zygote spawned has ended (each ends
  // when its channel closes, at the latest with its test).
  void waitForEveryExit() {
    while (!running_.empty()) {
      uint64_t id = *running_.begin();
      if (exitOf(id).id != id) return;  // failed, and said so
    }
  }

  static Zygote* zygote_;
  static uint64_t nextId_;
  static std::set<uint64_t> running_;  // spawned by zygote_, no exit event read yet
  sandbox::IdAllocator ids_{"/run/thatch/ids", {}};
};

Zygote* ZygoteTest::zygote_ = nullptr;
uint64_t ZygoteTest::nextId_ = 0;
std::set<uint64_t> ZygoteTest::running_;

TEST_F(ZygoteTest, HelloAnswersFromAColdSandbox) {
  TestSandbox box = spawnExample("hello");
  ReadyInfo ready = box.channel->waitReady();
  EXPECT_GT(ready.timings.size(), 5u);
  InvocationOutcome out = box.channel->invoke("req-1", R"({"name": "zygote"})");
  EXPECT_EQ(out.status, Status::kOk) << out.errorType << ": " << out.errorMessage;
  EXPECT_EQ(out.payload, R"({"greeting":"hello, zygote"})");
}

// The shared answer page (runtime/shared_answer.h), passed with the spawn
// request and mapped by the zygote before the fork.
TEST_F(ZygoteTest, TheZygoteRunsFromASealedCopyOfItsBinary) {
  std::string exe = "/proc/" + std::to_string(zygote_->pid()) + "/exe";
  char target[256] = {};
  ASSERT_GT(readlink(exe.c_str(), target, sizeof target - 1), 0);
  EXPECT_STREQ(target, "/memfd:thatch-zygote (deleted)");
  base::Fd image(open(exe.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(image) << strerror(errno);
  int seals = fcntl(image.get(), F_GET_SEALS);
  ASSERT_GE(seals, 0) << strerror(errno);
  int wanted = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL;
  EXPECT_EQ(seals & wanted, wanted) << "seals " << seals;
  // Even for the host's root, the copy takes no more writes.
  base::Fd writable(open(("/proc/self/fd/" + std::to_string(image.get())).c_str(), O_WRONLY));
  if (!writable) {
    EXPECT_EQ(errno, ETXTBSY);  // it is being executed
  } else {
    EXPECT_LT(pwrite(writable.get(), "x", 1, 0), 0);
    EXPECT_EQ(errno, EPERM);  // the seal
  }
}

TEST_F(ZygoteTest, ASandboxAnswersInItsSharedPageOnlyWhileItIsWatched) {
  testing_util::TempDir code;
  writePageHandler(code);
  TestSandbox box = spawn(code.path(), nullptr, {}, /*withPage=*/true);
  SharedAnswer& page = *box.channel->page();
  box.channel->waitReady();
  bool inPage = false;
  page.watch();
  InvocationOutcome out = box.channel->invokeInPage("req-1", R"({"name": "page"})", 10s, &inPage);
  EXPECT_TRUE(inPage);
  EXPECT_EQ(out.payload, R"({"name":"page","memfds":[]})");
  // Not watched: the request asks for the page all the same, and the
  // sandbox answers through its channel.
  out = box.channel->invokeInPage("req-2", R"({"name": "channel"})", 0us, &inPage);
  EXPECT_FALSE(inPage);
  EXPECT_EQ(out.payload, R"({"name":"channel","memfds":[]})");
  page.watch();
  out = box.channel->invokeInPage("req-3", R"({"name": "again"})", 10s, &inPage);
  EXPECT_TRUE(inPage);
  EXPECT_EQ(out.payload, R"({"name":"again","memfds":[]})");
  // A request that does not ask for the page is answered in the channel
  // even while the page is watched.
  page.watch();
  out = box.channel->invoke("req-4", R"({"name": "unasked"})");
  EXPECT_EQ(out.payload, R"({"name":"unasked","memfds":[]})");
  EXPECT_FALSE(page.ready());
}

TEST_F(ZygoteTest, EchoRoundTripsALargePayload) {
  TestSandbox box = spawnExample("echo");
  box.channel->waitReady();
  std::string big = "\"" + std::string(1 << 20, 'x') + "\"";
  InvocationOutcome out = box.channel->invoke("req-big", big);
  EXPECT_EQ(out.status, Status::kOk);
  EXPECT_EQ(out.payload.size(), big.size());
  EXPECT_TRUE(out.payload == big) << "payload differs";
}

TEST_F(ZygoteTest, AnExceptionBecomesAStructuredError) {
  TestSandbox box = spawnExample("raises");
  box.channel->waitReady();
  InvocationOutcome out = box.channel->invoke("req-2", "{}");
  EXPECT_EQ(out.status, Status::kHandlerError);
  EXPECT_EQ(out.errorType, "ValueError");
  EXPECT_FALSE(out.errorMessage.empty());
  EXPECT_NE(out.traceback.find("handler.py"), std::string::npos) << out.traceback;
  EXPECT_EQ(out.traceback.find("thatch_runtime"), std::string::npos) << out.traceback;
}

TEST_F(ZygoteTest, TenMegabytesOfOutputAreCappedAndReported) {
  TestSandbox box = spawnExample("prints10mb");
  box.channel->waitReady();
  InvocationOutcome out = box.channel->invoke("req-3", "{}");
  EXPECT_EQ(out.status, Status::kOk);
  EXPECT_EQ(out.payload, "\"done\"");
  EXPECT_EQ(out.logs.size(), 4096u) << "the configured log limit";
  EXPECT_TRUE(out.logsTruncated);
}

TEST_F(ZygoteTest, ANonJsonResultIsAClearError) {
  TestSandbox box = spawnExample("nonjson");
  box.channel->waitReady();
  InvocationOutcome out = box.channel->invoke("req-4", "{}");
  EXPECT_EQ(out.status, Status::kNotSerializable);
  EXPECT_EQ(out.errorType, "ResultNotSerializable");
  EXPECT_NE(out.errorMessage.find("set"), std::string::npos) << out.errorMessage;
}

TEST_F(ZygoteTest, AnInvalidPayloadIsABadPayload) {
  TestSandbox box = spawnExample("echo");
  box.channel->waitReady();
  InvocationOutcome out = box.channel->invoke("req-5", "{not json");
  EXPECT_EQ(out.status, Status::kBadPayload);
}

TEST_F(ZygoteTest, ModuleStatePersistsAcrossInvocations) {
  TestSandbox box = spawnExample("stateful");
  box.channel->waitReady();
  for (int i = 1; i <= 3; ++i)
    EXPECT_EQ(box.channel->invoke("req-" + std::to_string(i), "{}").payload, std::to_string(i));
}

TEST_F(ZygoteTest, ContextReportsTheRemainingTimeAndRequestId) {
  TestSandbox box = spawnExample("remaining");
  box.channel->waitReady();
  uint64_t deadline = sandbox::monotonicNs() + 5'000'000'000ull;
  InvocationOutcome out = box.channel->invoke("req-ctx", "{}", deadline);
  ASSERT_EQ(out.status, Status::kOk) << out.errorMessage;
  EXPECT_NE(out.payload.find("\"req-ctx\""), std::string::npos) << out.payload;
  size_t colon = out.payload.find("remaining");
  ASSERT_NE(colon, std::string::npos) << out.payload;
  long remaining = std::stol(out.payload.substr(out.payload.find(':', colon) + 1));
  EXPECT_GT(remaining, 0);
  EXPECT_LE(remaining, 5000);
}

TEST_F(ZygoteTest, SurvivesASandboxThatSegfaults) {
  TestSandbox box = spawnExample("segfault");
  box.channel->waitReady();
  EXPECT_THROW(box.channel->invoke("req-crash", "{}"), ChannelClosed);
  ExitEvent exit = exitOf(box.id);
  EXPECT_EQ(exit.kind, ExitKind::kSignaled);
  EXPECT_EQ(exit.code, SIGSEGV);
  EXPECT_TRUE(zygote_->alive());
  TestSandbox next = spawnExample("hello");
  next.channel->waitReady();
  EXPECT_EQ(next.channel->invoke("req-after", "{}").status, Status::kOk);
}

TEST_F(ZygoteTest, SurvivesASandboxThatExitsEarly) {
  TestSandbox box = spawnExample("exits");
  box.channel->waitReady();
  EXPECT_THROW(box.channel->invoke("req-exit", "{}"), ChannelClosed);
  ExitEvent exit = exitOf(box.id);
  EXPECT_EQ(exit.kind, ExitKind::kExited);
  EXPECT_EQ(exit.code, 3);
  EXPECT_TRUE(zygote_->alive());
}

TEST_F(ZygoteTest, ASpinningSandboxIsKilledOnRequest) {
  TestSandbox box = spawnExample("spins");
  box.channel->waitReady();
  EXPECT_THROW(box.channel->invoke("req-spin", "{}", 0, 300ms), ChannelClosed);
  zygote_->kill(box.id);
  ExitEvent exit = exitOf(box.id);
  EXPECT_EQ(exit.kind, ExitKind::kKilled);
  TestSandbox next = spawnExample("hello");
  next.channel->waitReady();
  EXPECT_EQ(next.channel->invoke("req-after-spin", "{}").status, Status::kOk);
}

TEST_F(ZygoteTest, AnImportErrorIsReportedWithItsTraceback) {
  testing_util::TempDir code;
  writeHandler(code, "import no_such_module_here\n");
  TestSandbox box = spawn(code.path());
  try {
    box.channel->waitReady();
    ADD_FAILURE() << "expected a load error";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.type(), "ModuleNotFoundError");
    EXPECT_NE(e.message().find("no_such_module_here"), std::string::npos);
    EXPECT_NE(e.traceback().find("handler.py"), std::string::npos) << e.traceback();
  }
  EXPECT_EQ(exitOf(box.id).kind, ExitKind::kExited);
}

TEST_F(ZygoteTest, AMissingHandlerIsReported) {
  TestSandbox box = spawn(repoRoot() + "/examples/hello", nullptr,
                          [](SpawnParams& p) { p.handler = "handler.nope"; });
  try {
    box.channel->waitReady();
    ADD_FAILURE() << "expected a load error";
  } catch (const LoadError& e) {
    EXPECT_EQ(e.type(), "HandlerNotFound");
    EXPECT_NE(e.message().find("nope"), std::string::npos) << e.message();
  }
}

TEST_F(ZygoteTest, AFailedConfinementStepIsNamed) {
  try {
    spawn(repoRoot() + "/examples/hello", nullptr,
          [](SpawnParams& p) { p.spec.cwd = "/no/such/dir"; });
    ADD_FAILURE() << "expected a spawn error";
  } catch (const SpawnError& e) {
    EXPECT_EQ(e.step(), "cwd");
    EXPECT_EQ(e.error(), ENOENT);
  }
  EXPECT_TRUE(zygote_->alive());
}

TEST_F(ZygoteTest, TheHandlerSeesItsOwnEnvironmentAndIsConfined) {
  testing_util::TempDir code;
  writeHandler(code, R"PY(
import ctypes, os, socket
getenv = ctypes.CDLL(None).getenv
getenv.restype = ctypes.c_char_p
def loopback():
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname()):
            return [name for _, name in socket.if_nameindex()]
def handler(event, context):
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    return {"greeting": os.environ.get("GREETING"), "home": os.environ.get("HOME"),
            "names": sorted(os.environ), "bytes": os.environb.get(b"GREETING").decode(),
            "c": [getenv(b"GREETING").decode(), getenv(b"OPENBLAS_NUM_THREADS")],
            "links": loopback(),
            "pid": os.getpid(), "uid": os.getuid(), "seccomp": status["Seccomp"].strip(),
            "capeff": status["CapEff"].strip(), "cwd": os.getcwd(),
            "shadow": os.path.exists("/etc/shadow"),
            "batch": os.sched_getscheduler(0) == os.SCHED_BATCH}
)PY");
  TestSandbox box = spawn(code.path());
  box.channel->waitReady();
  InvocationOutcome out = box.channel->invoke("req-env", "{}");
  ASSERT_EQ(out.status, Status::kOk) << out.errorMessage << out.traceback;
  EXPECT_EQ(out.payload,
            R"({"greeting":"hi","home":null,"names":["GREETING","PATH"],"bytes":"hi",)"
            R"("c":["hi",null],"links":["lo"],"pid":1,"uid":1000,"seccomp":"2",)"
            R"("capeff":"0000000000000000","cwd":"/var/task","shadow":false,"batch":true})");
}

// What Lambda's /etc gives functions, observed from a handler: the CA
// certificates (as Python's ssl finds them by default), service and
// protocol names, media types, UTC as the local time zone; and none of it
// writable.
TEST_F(ZygoteTest, TheSandboxHasLambdasEtc) {
  testing_util::TempDir code;
  writeHandler(code, R"PY(
import mimetypes, os, socket, ssl, time
def handler(event, context):
    certs = ssl.create_default_context().cert_store_stats()["x509_ca"]
    try:
        open("/etc/ssl/certs/ca-certificates.crt", "a")
        writable = True
    except OSError:
        writable = False
    return {"cas": certs > 100, "https": socket.getservbyname("https"),
            "tcp": socket.getprotobyname("tcp"), "deb": mimetypes.guess_type("a.deb")[0],
            "zone": time.tzname[0], "offset": time.timezone,
            "localtime": os.path.realpath("/etc/localtime"), "writable": writable}
)PY");
  TestSandbox box = spawn(code.path());
  box.channel->waitReady();
  InvocationOutcome out = box.channel->invoke("req-etc", "{}");
  ASSERT_EQ(out.status, Status::kOk) << out.errorMessage << out.traceback;
  EXPECT_EQ(out.payload,
            R"({"cas":true,"https":443,"tcp":6,"deb":"application/vnd.debian.binary-package",)"
            R"("zone":"UTC",)"
            R"("offset":0,"localtime":"/usr/share/zoneinfo/Etc/UTC","writable":false})");
}

// A pty, as Lambda gives one: from a devpts instance of the sandbox's own,
// in which the host's ptys (and the last sandbox's) are not, and which
// holds 16 at most (the kernel's pool of ptys is every sandbox's).
TEST_F(ZygoteTest, ASandboxHasPtysOfItsOwn) {
  testing_util::TempDir code;
  writeHandler(code, R"PY(
import os, pty
def handler(event, context):
    master, slave = pty.openpty()
    os.write(slave, b"hi\n")
    echoed = os.read(master, 16).decode()
    tty, pts = os.ttyname(slave), sorted(os.listdir("/dev/pts"))
    more = []
    try:
        while len(more) < 100:
            more.append(os.openpty())
    except OSError as e:
        refused = e.errno
    return {"tty": tty, "echoed": echoed, "pts": pts, "more": len(more), "refused": refused}
)PY");
  for (int i = 0; i < 2; ++i) {
    TestSandbox box = spawn(code.path());
    box.channel->waitReady();
    InvocationOutcome out = box.channel->invoke("req-pty", "{}");
    ASSERT_EQ(out.status, Status::kOk) << out.errorMessage << out.traceback;
    // 16 at most in all (devpts max=16): ENOSPC past them.
    EXPECT_EQ(out.payload, R"({"tty":"/dev/pts/0","echoed":"hi\r\n","pts":["0","ptmx"],)"
                           R"("more":15,"refused":28})");
  }
}

TEST_F(ZygoteTest, AnInvocationThatEndsPastItsDeadlineIsTheSandboxsLast) {
  testing_util::TempDir code;
  writeHandler(code, R"PY(
import time
def handler(event, context):
    time.sleep(event["sleep"])
    return "done"
)PY");
  TestSandbox box = spawn(code.path());
  box.channel->waitReady();
  // In time: it serves on.
  InvocationOutcome inTime = box.channel->invoke("req-in-time", R"({"sleep": 0})",
                                                 sandbox::monotonicNs() + 5'000'000'000ull);
  EXPECT_EQ(inTime.status, Status::kOk);
  EXPECT_FALSE(inTime.overran);
  // 200 ms past a 50 ms deadline (the supervisor kills it about then): it
  // answers, says so, and exits rather than start whatever came next.
  InvocationOutcome late =
      box.channel->invoke("req-late", R"({"sleep": 0.25})", sandbox::monotonicNs() + 50'000'000ull);
  EXPECT_EQ(late.status, Status::kOk);
  EXPECT_TRUE(late.overran);
  EXPECT_THROW(box.channel->invoke("req-after", R"({"sleep": 0})"), ChannelClosed);
  ExitEvent exit = exitOf(box.id);
  EXPECT_EQ(exit.kind, ExitKind::kExited);
  EXPECT_EQ(exit.code, 0);
}

TEST_F(ZygoteTest, AMalformedFrameIsReportedAndTheSandboxCloses) {
  TestSandbox box = spawnExample("hello");
  box.channel->waitReady();
  // A segment table claiming 2^31 segments.
  const char garbage[] = "\xff\xff\xff\x7f\x00\x00\x00\x00garbage!";
  ASSERT_EQ(write(box.channel->fd(), garbage, sizeof garbage - 1),
            static_cast<ssize_t>(sizeof garbage - 1));
  ExitEvent exit = exitOf(box.id);
  EXPECT_EQ(exit.kind, ExitKind::kExited);
  EXPECT_EQ(exit.code, 2);
  EXPECT_TRUE(zygote_->alive());
}

TEST_F(ZygoteTest, NumpyRuntimeImportsNumpyBeforeTheFork) {
  Zygote numpyZygote(zygoteOptions("python3.11-numpy"));
  TestSandbox box = spawnExample("numpy", &numpyZygote);
  box.channel->waitReady();
  InvocationOutcome out = box.channel->invoke("req-np", "{}");
  EXPECT_EQ(out.status, Status::kOk) << out.errorMessage << out.traceback;
  EXPECT_NE(out.payload.find("\"sum\":45"), std::string::npos) << out.payload;
}

TEST_F(ZygoteTest, FiveHundredSpawnsLeaveNothingBehind) {
  // Warm up lazily created parents, then compare once every sandbox so far
  // (this test's and earlier tests') has ended.
  {
    TestSandbox warm = spawnExample("hello");
    warm.channel->waitReady();
  }
  waitForEveryExit();
  testing_util::HostState before = testing_util::snapshot();
  int failures = 0;
  for (int i = 0; i < 500; ++i) {
    TestSandbox box = spawnExample("hello");
    box.channel->waitReady();
    if (box.channel->invoke("r" + std::to_string(i), "{}").status != Status::kOk) ++failures;
    box.channel.reset();  // closing the channel ends the sandbox
    EXPECT_EQ(exitOf(box.id).kind, ExitKind::kExited);
  }
  EXPECT_EQ(failures, 0);
  testing_util::HostState after = testing_util::snapshot();
  EXPECT_EQ(after.mounts, before.mounts);
  EXPECT_EQ(after.netns, before.netns);
  EXPECT_TRUE(after.sandboxProcesses.empty());
  EXPECT_EQ(after.cgroups, before.cgroups);
  EXPECT_EQ(after.links, before.links);
  EXPECT_TRUE(zygote_->alive());
}

// The supervisor's side never waits in sendmsg() and the zygote never
// waits on the supervisor: hundreds of requests sent in one go, with
// nothing read meanwhile, are all answered (a socket's buffer holds a few
// hundred unread; with both ends blocked writing, neither read again).
TEST_F(ZygoteTest, ThreeHundredSpawnRequestsInOneTurnAreAllAnswered) {
  constexpr size_t kRequests = 300;
  Zygote zygote(zygoteOptions("python3.11"));
  std::vector<TestSandbox> boxes(kRequests);
  for (size_t i = 0; i < kRequests; ++i) {
    TestSandbox& box = boxes[i];
    box.id = i + 1;
    box.lease = std::make_unique<sandbox::IdLease>(ids_.acquire());
    SandboxChannel::SandboxEnds ends;
    box.channel = std::make_unique<BlockingChannel>(ends, false);
    zygote.requestSpawn(box.id, params(repoRoot() + "/examples/hello", *box.lease),
                        std::move(ends));
  }
  std::map<uint64_t, pid_t> spawned;
  std::vector<std::string> failures;
  auto deadline = std::chrono::steady_clock::now() + 600s;  // for failing, not waiting
  while (spawned.size() + failures.size() < kRequests &&
         std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{zygote.controlFd(), zygote.pollEvents(), 0};
    ASSERT_GE(poll(&pfd, 1, 1000), 0);
    zygote.flush();
    for (const SpawnReply& reply : zygote.readAvailable().replies) {
      if (reply.failed)
        failures.push_back(reply.step + ": " + reply.message);
      else
        spawned[reply.id] = reply.pid;
    }
  }
  EXPECT_EQ(spawned.size(), kRequests);
  EXPECT_TRUE(failures.empty()) << failures.front();
  EXPECT_FALSE(zygote.sending());
  // Each answers; then closing its channel ends it.
  size_t answered = 0;
  for (TestSandbox& box : boxes) {
    if (!spawned.count(box.id)) continue;
    box.channel->waitReady();
    answered += box.channel->invoke("r", "{}").status == Status::kOk;
    box.channel.reset();
  }
  EXPECT_EQ(answered, spawned.size());
  std::set<uint64_t> exited;
  while (exited.size() < spawned.size() && std::chrono::steady_clock::now() < deadline)
    if (auto event = zygote.nextExit(1000ms)) exited.insert(event->id);
  EXPECT_EQ(exited.size(), spawned.size());
  EXPECT_TRUE(zygote.alive());
}

}  // namespace
}  // namespace runtime

namespace runtime {
namespace {

// Stem cells: pre-forked, confined, warmed-up sandboxes claimed by requests.
// The fixture reads the zygote's events itself (runtime::Zygote drops the
// ones that say how many stems are warm), and each test spawns only once a
// stem is warm: a request that finds none forks fresh, which would test the
// wrong path.
class StemCellTest : public ::testing::Test {
 protected:
  static constexpr unsigned kStems = 2;
  // A bound for failing, not for waiting: each event comes when it happens.
  static constexpr std::chrono::seconds kEventBound{60};

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    ZygoteOptions options;
    options.binary = testing_util::testBinDir() + "/../bin/thatch-zygote";
    zygote_ = std::make_unique<Zygote>(options);
    rootfs::SandboxShape function;
    function.codeDir = "/nonexistent";  // any: the template's code is replaced
    zygote_->startStemCells(kStems, rootfs::sandboxSpec(function), "/run/thatch/ids", {});
    waitForWarmStems(kStems);
  }

  // Until the zygote reports `count` warm stems.
  void waitForWarmStems(unsigned count) {
    readEventsUntil([&] { return warmStems_ >= count; },
                    std::to_string(count) + " warm stem cell(s)");
  }

  struct Spawned {
    uint64_t id;
    std::unique_ptr<sandbox::IdLease> lease;
    std::unique_ptr<BlockingChannel> channel;
    ReadyInfo ready;
    unsigned warmStemsLeft = 0;  // as the zygote answered the spawn
  };

  Spawned spawn(const std::string& codeDir, std::function<void(SpawnParams&)> adjust = {},
                bool withPage = false) {
    Spawned s;
    s.id = ++nextId_;
    s.lease = std::make_unique<sandbox::IdLease>(ids_.acquire());
    SpawnParams p;
    rootfs::SandboxShape function;
    function.codeDir = codeDir;
    function.hostId = s.lease->hostId();
    p.spec = rootfs::sandboxSpec(function);
    p.names.cgroupName = "st-" + std::to_string(s.lease->hostId());
    p.handler = "handler.handler";
    p.env = {"GREETING=stem"};
    p.function.name = "stem-fn";
    if (adjust) adjust(p);
    SandboxChannel::SandboxEnds ends;
    s.channel = std::make_unique<BlockingChannel>(ends, withPage);
    zygote_->requestSpawn(s.id, p, std::move(ends));
    readEventsUntil([&] { return replies_.count(s.id) > 0; },
                    "answer to spawn " + std::to_string(s.id));
    const SpawnReply& reply = replies_[s.id];
    if (reply.failed)
      throw std::runtime_error("spawn failed at " + reply.step + ": " + reply.message);
    s.warmStemsLeft = reply.warmStems;
    s.ready = s.channel->waitReady();
    return s;
  }

  // A claimed stem reports the claim among its start-up steps; a fresh
  // fork reports the confinement steps instead.
  static bool claimed(const ReadyInfo& ready) {
    for (const auto& t : ready.timings)
      if (t.step == "claim") return true;
    return false;
  }

  ExitEvent exitOf(uint64_t id) {
    readEventsUntil([&] { return exits_.count(id) > 0; },
                    "exit event for sandbox " + std::to_string(id));
    return exits_[id];
  }

  // Reads the zygote's events, keeping what they say, until `done`;
  // throws (failing the test) if `what` has not come within kEventBound.
  void readEventsUntil(const std::function<bool()>& done, const std::string& what) {
    auto deadline = std::chrono::steady_clock::now() + kEventBound;
    while (!done()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd readable{zygote_->controlFd(), POLLIN, 0};
      if (left.count() <= 0 || poll(&readable, 1, static_cast<int>(left.count())) == 0)
        throw std::runtime_error("the zygote sent no " + what + " in 60 s");
      ZygoteEvents events = zygote_->readAvailable();
      for (SpawnReply& reply : events.replies) replies_[reply.id] = std::move(reply);
      for (const ExitEvent& exit : events.exits) exits_[exit.id] = exit;
      warmStems_ = zygote_->warmStems();
    }
  }

  std::unique_ptr<Zygote> zygote_;
  sandbox::IdAllocator ids_{"/run/thatch/ids", {}};
  uint64_t nextId_ = 0;
  // What the zygote said so far (see readEventsUntil).
  unsigned warmStems_ = 0;
  std::map<uint64_t, SpawnReply> replies_;
  std::map<uint64_t, ExitEvent> exits_;
};

TEST_F(StemCellTest, AClaimedStemServesTheFunction) {
  Spawned s = spawn(repoRoot() + "/examples/hello");
  ASSERT_TRUE(claimed(s.ready)) << "a warm stem cell was available";
  EXPECT_EQ(s.warmStemsLeft, kStems - 1);
  InvocationOutcome out = s.channel->invoke("req-stem", R"({"name": "stem"})");
  EXPECT_EQ(out.status, Status::kOk) << out.errorMessage << out.traceback;
  EXPECT_EQ(out.payload, R"({"greeting":"hello, stem"})");
}

// The claim carries the page's fd to the stem, which maps it before the
// function's code loads.
TEST_F(StemCellTest, AClaimedStemAnswersInItsSharedPage) {
  testing_util::TempDir code;
  writePageHandler(code);
  Spawned s = spawn(code.path(), {}, /*withPage=*/true);
  SharedAnswer& page = *s.channel->page();
  ASSERT_TRUE(claimed(s.ready)) << "a warm stem cell was available";
  bool inPage = false;
  page.watch();
  InvocationOutcome out = s.channel->invokeInPage("req-page", R"({"name": "stem"})", 10s, &inPage);
  EXPECT_TRUE(inPage);
  EXPECT_EQ(out.payload, R"({"name":"stem","memfds":[]})");
}

TEST_F(StemCellTest, AClaimedStemIsConfinedAndSeesOnlyItsOwnCode) {
  testing_util::TempDir code;
  writeHandler(code, R"PY(
import os
def handler(event, context):
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    try:
        open("/var/task/written", "w")
        writable = True
    except OSError:
        writable = False
    return {"greeting": os.environ.get("GREETING"), "pid": os.getpid(), "uid": os.getuid(),
            "seccomp": status["Seccomp"].strip(), "capeff": status["CapEff"].strip(),
            "task": sorted(os.listdir("/var/task")), "writable": writable,
            "warm_module": "_thatch_warm" in __import__("sys").modules,
            "batch": os.sched_getscheduler(0) == os.SCHED_BATCH,
            "nice": os.getpriority(os.PRIO_PROCESS, 0)}
)PY");
  Spawned s = spawn(code.path());
  ASSERT_TRUE(claimed(s.ready));
  InvocationOutcome out = s.channel->invoke("req-confined", "{}");
  ASSERT_EQ(out.status, Status::kOk) << out.errorMessage << out.traceback;
  EXPECT_EQ(out.payload, R"({"greeting":"stem","pid":1,"uid":1000,"seccomp":"2",)"
                         R"("capeff":"0000000000000000","task":["handler.py"],"writable":false,)"
                         R"("warm_module":false,"batch":true,"nice":0})");
  EXPECT_FALSE(testing_util::exists(code.path() + "/written"));
}

TEST_F(StemCellTest, AClaimAppliesTheRequestsMemoryLimit) {
  testing_util::TempDir code;
  writeHandler(code, R"PY(
def handler(event, context):
    hog = b"x" * (256 << 20)
    return len(hog)
)PY");
  Spawned s = spawn(code.path(), [](SpawnParams& p) { p.spec.limits.memoryBytes = 48ull << 20; });
  ASSERT_TRUE(claimed(s.ready));
  EXPECT_THROW(s.channel->invoke("req-oom", "{}"), ChannelClosed);
  EXPECT_EQ(exitOf(s.id).kind, ExitKind::kOutOfMemory);
}

TEST_F(StemCellTest, ARequestThatDoesNotMatchTheTemplateForksFresh) {
  Spawned s =
      spawn(repoRoot() + "/examples/hello", [](SpawnParams& p) { p.spec.hostname = "different"; });
  EXPECT_FALSE(claimed(s.ready));
  EXPECT_EQ(s.warmStemsLeft, kStems) << "both stems were warm, and neither was claimed";
  EXPECT_EQ(s.channel->invoke("req-fresh", "{}").status, Status::kOk);
}

TEST_F(StemCellTest, AHundredClaimsLeaveNothingBehind) {
  testing_util::HostState before = testing_util::snapshot();
  int claims = 0;
  for (int i = 0; i < 100; ++i) {
    waitForWarmStems(1);  // a claimed stem is replaced in the background
    Spawned s = spawn(repoRoot() + "/examples/hello");
    claims += claimed(s.ready);
    EXPECT_EQ(s.channel->invoke("r", "{}").status, Status::kOk);
    s.channel.reset();
    EXPECT_EQ(exitOf(s.id).kind, ExitKind::kExited);
  }
  EXPECT_EQ(claims, 100);
  zygote_.reset();  // its stems go with it
  testing_util::HostState after = testing_util::snapshot();
  EXPECT_EQ(after.mounts, before.mounts);
  EXPECT_TRUE(after.sandboxProcesses.empty());
  // Before: two stems' cgroups; after the zygote is gone: none of its own.
  for (const std::string& cgroup : after.cgroups)
    EXPECT_EQ(cgroup.find("stem-"), std::string::npos) << cgroup;
  EXPECT_EQ(after.links, before.links);
}

}  // namespace
}  // namespace runtime
