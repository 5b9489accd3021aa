// The supervisor with real sandboxes: a real thatch-zygote, functions
// deployed from examples/ and from handlers written here, every way an
// invocation can end, and what is left on the host afterwards.
#include "supervisor/supervisor.h"

#include <gtest/gtest.h>
#include <kj/async-io.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "sandbox/cgroup.h"
#include "tests/daemon.h"
#include "tests/supervisor/supervisor_fixture.h"
#include "tests/testing.h"

namespace supervisor {
namespace {

using namespace std::chrono_literals;

using testing_util::repoRoot;

class SupervisorTest : public SupervisorFixture {
 protected:
  SupervisorTest() : SupervisorFixture("supervisor") {}

  void deployExample(const std::string& name, FunctionConfig config = {}) {
    registry_->deployDirectory(name, repoRoot() + "/examples/" + name, config);
  }

  // Runs the loop until a handler (testing_util::kNamingHandler, or one
  // like it) has named its sandbox's process `name`: its host pid, or -1.
  pid_t loopUntilRunning(const std::string& name) {
    std::vector<pid_t> pids;
    loopUntil([&] { return !(pids = testing_util::processesNamed(name)).empty(); });
    return pids.empty() ? -1 : pids[0];
  }
};

TEST_F(SupervisorTest, AColdStartThenAWarmOneInTheSameSandbox) {
  start();
  deployExample("hello");
  InvokeResult first = invoke("hello", R"({"name":"thatch"})");
  ASSERT_EQ(first.status, Status::kOk) << first.errorMessage;
  EXPECT_TRUE(first.cold);
  EXPECT_NE(first.payload.find("thatch"), std::string::npos) << first.payload;
  InvokeResult second = invoke("hello", R"({"name":"again"})");
  ASSERT_EQ(second.status, Status::kOk) << second.errorMessage;
  EXPECT_FALSE(second.cold);
  EXPECT_NE(first.sandboxId, 0u);
  EXPECT_EQ(second.sandboxId, first.sandboxId);
  Stats stats = supervisor_->stats();
  EXPECT_EQ(stats.coldStarts, 1u);
  EXPECT_EQ(stats.warmStarts, 1u);
  EXPECT_EQ(stats.idleSandboxes, 1u);
  EXPECT_EQ(stats.invocationsByStatus["ok"], 2u);
  EXPECT_EQ(stats.invocationsByFunction["hello"]["ok"], 2u);
  EXPECT_EQ(stats.invocationsByFunction.size(), 1u);
  EXPECT_EQ(stats.start.total, 2u);
  EXPECT_EQ(stats.run.sum, first.run + second.run);
  std::vector<std::string> logged = logLines("invocation");
  ASSERT_EQ(logged.size(), 2u);
  EXPECT_NE(logged[0].find("function=hello version=1 status=ok cold=true"), std::string::npos)
      << logged[0];
  EXPECT_NE(logged[1].find("status=ok cold=false"), std::string::npos) << logged[1];
  EXPECT_EQ(stats.run.total, 2u);
  // The cold start (a fork, confinement, an import) is the slower half.
  EXPECT_GE(stats.start.quantile(1.0), first.start);
  EXPECT_LE(stats.start.quantile(0.5), stats.start.quantile(1.0));
}

TEST(HistogramTest, BucketsArePowersOfTwoMicroseconds) {
  Histogram h;
  h.record(std::chrono::nanoseconds(500));    // bucket 0
  h.record(std::chrono::microseconds(3));     // bucket 1: [2, 4)
  h.record(std::chrono::microseconds(1000));  // bucket 9: [512, 1024)
  h.record(std::chrono::seconds(1));          // bucket 19
  EXPECT_EQ(h.total, 4u);
  EXPECT_EQ(h.counts[0], 1u);
  EXPECT_EQ(h.counts[1], 1u);
  EXPECT_EQ(h.counts[9], 1u);
  EXPECT_EQ(h.counts[19], 1u);
  EXPECT_EQ(h.quantile(0.5), std::chrono::microseconds(4));
  EXPECT_EQ(h.quantile(0.75), std::chrono::microseconds(1024));
  EXPECT_EQ(h.quantile(1.0), std::chrono::microseconds(1 << 20));
}

TEST(HistogramTest, SumsExactlyWhatItRecords) {
  Histogram h;
  h.record(std::chrono::nanoseconds(500));
  h.record(std::chrono::microseconds(3));
  h.record(std::chrono::hours(2));  // past the last bucket's bound: counted there, summed whole
  EXPECT_EQ(h.sum, std::chrono::hours(2) + std::chrono::nanoseconds(3500));
  EXPECT_EQ(h.counts[Histogram::kBuckets - 1], 1u);
}

// examples/stateful counts its calls in a module-level variable.
TEST_F(SupervisorTest, ModuleStatePersistsInTheWarmSandbox) {
  start();
  deployExample("stateful");
  InvokeResult first = invoke("stateful");
  ASSERT_EQ(first.status, Status::kOk) << first.errorMessage;
  EXPECT_TRUE(first.cold);
  EXPECT_EQ(first.payload, "1");
  InvokeResult second = invoke("stateful");
  ASSERT_EQ(second.status, Status::kOk) << second.errorMessage;
  EXPECT_FALSE(second.cold);
  EXPECT_EQ(second.sandboxId, first.sandboxId);
  EXPECT_EQ(second.payload, "2") << "the second call saw the count the first one left";
}

TEST_F(SupervisorTest, ANewVersionNeverReusesTheOldVersionsSandbox) {
  start();
  deployExample("hello");
  InvokeResult v1 = invoke("hello");
  deployExample("hello");
  InvokeResult v2 = invoke("hello");
  ASSERT_EQ(v2.status, Status::kOk);
  EXPECT_EQ(v1.version + 1, v2.version);
  EXPECT_TRUE(v2.cold);
  EXPECT_NE(v2.sandboxId, v1.sandboxId);
  EXPECT_TRUE(loopUntil([&] { return supervisor_->stats().liveSandboxes == 1; }));
  Stats stats = supervisor_->stats();
  EXPECT_EQ(stats.idleSandboxes, 1u);  // v1's was retired
  EXPECT_EQ(stats.killsByReason["old_version"], 1u);
}

// Keeping one version: a deploy removes the version before it, but not
// one still running (its handler reads its own code after the deploys),
// which the next deploy removes; the warm sandbox of a removed version
// retires with it.
TEST_F(SupervisorTest, AVersionStillRunningOutlivesItsRetention) {
  registry_ = std::make_unique<Registry>(state_->path(), ArchiveLimits{}, Retention{1, 0});
  start();
  deploySource("slow", R"PY(
import os, time
here = os.path.dirname(__file__)
def handler(event, context):
    while not os.path.exists(os.path.join(here, "go")):
        time.sleep(0.01)
    with open(os.path.join(here, "handler.py")) as f:
        return len(f.read())
)PY");
  FunctionVersion v1 = *registry_->latest("slow");
  auto running = supervisor_->invoke("slow", "{}");
  ASSERT_TRUE(loopUntil([&] { return supervisor_->stats().liveSandboxes == 1; }));
  auto deploy = [&]() {
    testing_util::TempDir code;
    testing_util::writeFile(code.path() + "/handler.py", "def handler(e, c):\n    return 0\n");
    return supervisor_->commit("slow", {}, *registry_->stagingArea().directory(code.path()))
        .version;
  };
  std::vector<uint64_t> kept;
  EXPECT_EQ(deploy(), 2u);
  EXPECT_EQ(deploy(), 3u);
  for (const FunctionVersion& v : registry_->versions("slow")) kept.push_back(v.version);
  EXPECT_EQ(kept, (std::vector<uint64_t>{1, 3}));  // 2 went at once; 1 runs
  // The running handler's code is all there: it finishes.
  chmod(v1.codeDir.c_str(), 0755);
  testing_util::writeFile(v1.codeDir + "/go", "");
  InvokeResult r = running.wait(io_.waitScope);
  ASSERT_EQ(r.status, Status::kOk) << r.errorMessage;
  EXPECT_NE(r.payload, "0");
  EXPECT_EQ(r.version, 1u);
  // Its sandbox is warm now, which holds nothing: the next deploy removes
  // version 1 (and 3) and retires the sandbox.
  EXPECT_EQ(deploy(), 4u);
  kept.clear();
  for (const FunctionVersion& v : registry_->versions("slow")) kept.push_back(v.version);
  EXPECT_EQ(kept, std::vector<uint64_t>{4});
  EXPECT_EQ(testing_util::directoryEntries(state_->path() + "/functions/slow"),
            std::set<std::string>{"4"});
  EXPECT_TRUE(loopUntil([&] { return supervisor_->stats().liveSandboxes == 0; }));
  EXPECT_EQ(supervisor_->stats().killsByReason["old_version"], 1u);
}

// Lambda's environment variables, observed by the handler, with the
// function's own beside them.
TEST_F(SupervisorTest, TheHandlerSeesLambdasEnvironment) {
  start([](Config& c) {
    c.lambda.region = "eu-north-1";
    c.lambda.accountId = "123456789012";
  });
  FunctionConfig config;
  config.memoryBytes = 96ull << 20;
  config.env = {{"GREETING", "hi"}};
  deploySource("envy", R"PY(
import json, os, time
def handler(event, context):
    return {"env": dict(os.environ), "zone": time.tzname[0],
            "version": context.function_version, "stream": context.log_stream_name,
            "arn": context.invoked_function_arn}
)PY",
               config);
  InvokeResult r = invoke("envy");
  ASSERT_EQ(r.status, Status::kOk) << r.errorMessage << r.traceback;
  std::string stream = "sbx-" + std::to_string(r.sandboxId);
  EXPECT_EQ(r.payload,
            R"({"env":{"PATH":"/usr/local/bin:/usr/bin:/bin","LANG":"C.UTF-8","TZ":":UTC",)"
            R"("LAMBDA_TASK_ROOT":"/var/task","LAMBDA_RUNTIME_DIR":"/var/runtime",)"
            R"("_HANDLER":"handler.handler","AWS_EXECUTION_ENV":"AWS_Lambda_python3.11",)"
            R"("AWS_LAMBDA_FUNCTION_NAME":"envy","AWS_LAMBDA_FUNCTION_VERSION":"1",)"
            R"("AWS_LAMBDA_FUNCTION_MEMORY_SIZE":"96","AWS_LAMBDA_LOG_GROUP_NAME":"/thatch/envy",)"
            R"("AWS_LAMBDA_LOG_STREAM_NAME":")" +
                stream +
                R"(","AWS_LAMBDA_INITIALIZATION_TYPE":"on-demand",)"
                R"("AWS_REGION":"eu-north-1","AWS_DEFAULT_REGION":"eu-north-1","GREETING":"hi"},)"
                R"("zone":"UTC","version":"1","stream":")" +
                stream + R"(","arn":"arn:aws:lambda:eu-north-1:123456789012:function:envy:1"})");
}

// `files` (path -> contents) under `dir`, with their directories.
void writeTree(const std::string& dir, const std::map<std::string, std::string>& files) {
  for (const auto& [path, contents] : files) {
    std::filesystem::create_directories(std::filesystem::path(dir + "/" + path).parent_path());
    testing_util::writeFile(dir + "/" + path, contents);
  }
}

// What a handler reports about /opt: the packages it imported from layers,
// files read there, what a write there did, the mount, its search paths.
constexpr const char* kOptProbe = R"PY(
import errno, os, sys

def attempt(action):
    try:
        action()
        return "done"
    except OSError as e:
        return errno.errorcode[e.errno]

def mount_of(target):
    for line in open("/proc/self/mountinfo"):
        fields = line.split()
        if fields[4] == target:
            return {"type": fields[fields.index("-") + 1], "options": sorted(fields[5].split(","))}
    return None

def read(path):
    with open(path) as f:
        return f.read()

def handler(event, context):
    import greeting, extra
    return {
        "greeting": greeting.WORD,
        "extra": extra.NAME,
        "shared": read("/opt/data/shared.txt"),
        "onlyFirst": read("/opt/data/only-first.txt"),
        "create": attempt(lambda: open("/opt/data/new.txt", "w")),
        "overwrite": attempt(lambda: open("/opt/data/shared.txt", "w")),
        "mkdir": attempt(lambda: os.mkdir("/opt/new")),
        "mount": mount_of("/opt"),
        "path": [p for p in sys.path if p.startswith("/opt") or p == "/var/task"],
        "PATH": os.environ["PATH"],
        "LD_LIBRARY_PATH": os.environ.get("LD_LIBRARY_PATH"),
    }
)PY";

// Lambda's layers, as the confined handler sees them: two merged at /opt,
// the second's file hiding the first's, packages imported from both on
// Lambda's search path, nothing writable, nosuid and nodev.
TEST_F(SupervisorTest, LayersAreMergedReadOnlyAtOptALaterOneWinning) {
  start();
  testing_util::TempDir first, second;
  writeTree(first.path(), {{"python/greeting/__init__.py", "WORD = 'hello'\n"},
                           {"data/shared.txt", "from the first layer"},
                           {"data/only-first.txt", "only in the first"}});
  writeTree(second.path(), {{"python/lib/python3.11/site-packages/extra.py", "NAME = 'extra'\n"},
                            {"data/shared.txt", "from the second layer"}});
  registry_->publishLayerDirectory("base", first.path());
  registry_->publishLayerDirectory("override", second.path());
  FunctionConfig config;
  config.layers = {{"base", 1}, {"override", 1}};
  deploySource("layered", kOptProbe, config);

  InvokeResult r = invoke("layered");
  ASSERT_EQ(r.status, Status::kOk) << r.errorMessage << r.traceback;
  EXPECT_EQ(r.payload,
            R"({"greeting":"hello","extra":"extra","shared":"from the second layer",)"
            R"("onlyFirst":"only in the first","create":"EROFS","overwrite":"EROFS",)"
            R"("mkdir":"EROFS","mount":{"type":"overlay","options":["nodev","nosuid",)"
            R"("relatime","ro"]},"path":["/var/task","/opt/python/lib/python3.11/site-packages",)"
            R"("/opt/python"],"PATH":"/usr/local/bin:/usr/bin:/bin:/opt/bin",)"
            R"("LD_LIBRARY_PATH":"/opt/lib"})");
}

// One layer needs no overlayfs: it is bound read-only. Without layers there
// is no /opt at all, as before layers.
TEST_F(SupervisorTest, OneLayerIsBoundReadOnlyAndNoLayerMeansNoOpt) {
  start();
  testing_util::TempDir layer;
  writeTree(layer.path(), {{"python/greeting/__init__.py", "WORD = 'hi'\n"},
                           {"python/extra.py", "NAME = 'also here'\n"},
                           {"data/shared.txt", "shared"},
                           {"data/only-first.txt", "first"}});
  registry_->publishLayerDirectory("single", layer.path());
  FunctionConfig config;
  config.layers = {{"single", 1}};
  deploySource("one-layer", kOptProbe, config);
  InvokeResult r = invoke("one-layer");
  ASSERT_EQ(r.status, Status::kOk) << r.errorMessage << r.traceback;
  EXPECT_NE(r.payload.find(R"("greeting":"hi","extra":"also here","shared":"shared",)"
                           R"("onlyFirst":"first","create":"EROFS","overwrite":"EROFS",)"
                           R"("mkdir":"EROFS")"),
            std::string::npos)
      << r.payload;
  // The bind keeps the type of the filesystem the state directory is on.
  EXPECT_NE(r.payload.find(R"("options":["nodev","nosuid",)"), std::string::npos) << r.payload;
  EXPECT_NE(r.payload.find(R"("ro"]},"path":["/var/task","/opt/python"])"), std::string::npos)
      << r.payload;
  EXPECT_EQ(r.payload.find(R"("type":"overlay")"), std::string::npos) << r.payload;

  deploySource("no-layers", R"PY(
import os, sys
def handler(event, context):
    return [os.path.exists("/opt"), [p for p in sys.path if p.startswith("/opt")],
            os.environ["PATH"], "LD_LIBRARY_PATH" in os.environ]
)PY");
  InvokeResult plain = invoke("no-layers");
  ASSERT_EQ(plain.status, Status::kOk) << plain.errorMessage << plain.traceback;
  EXPECT_EQ(plain.payload, R"([false,[],"/usr/local/bin:/usr/bin:/bin",false])");
}

TEST_F(SupervisorTest, PrewarmKeepsTheMinimumReady) {
  deployExample("hello");
  start([](Config& c) { c.pool.minWarm = 2; });
  EXPECT_TRUE(loopUntil([&] { return supervisor_->stats().idleSandboxes >= 2; }));
  EXPECT_EQ(supervisor_->stats().idleSandboxes, 2u);
  InvokeResult result = invoke("hello");
  EXPECT_EQ(result.status, Status::kOk);
  EXPECT_FALSE(result.cold);
  EXPECT_EQ(supervisor_->stats().coldStarts, 0u);
  EXPECT_GE(supervisor_->stats().prewarmed, 2u);
}

// [pool] keep_alive builds the policy the pools use: each keeps the sandbox
// of a first call (the histogram knows nothing yet, so keeps it idle_ttl),
// and says its name in the stats.
TEST_F(SupervisorTest, TheConfiguredKeepAlivePolicyIsTheOneInUse) {
  deployExample("hello");
  for (const char* policy : {"ttl", "lru", "greedy-dual", "histogram"}) {
    supervisor_.reset();
    start([policy](Config& c) { c.pool.keepAlive = policy; });
    EXPECT_EQ(supervisor_->stats().keepAlive, policy);
    ASSERT_EQ(invoke("hello").status, Status::kOk);
    InvokeResult again = invoke("hello");
    EXPECT_FALSE(again.cold) << policy;
    EXPECT_EQ(supervisor_->stats().pools.unloaded, 0u) << policy;
  }
  supervisor_.reset();
  EXPECT_THROW(start([](Config& c) { c.pool.keepAlive = "fifo"; }), std::invalid_argument);
}

// Under "ttl" an idle sandbox goes at idle_ttl, as it always did.
TEST_F(SupervisorTest, UnderTtlAnIdleSandboxExpires) {
  deployExample("hello");
  start([](Config& c) {
    c.pool.keepAlive = "ttl";
    c.pool.idleTtl = std::chrono::seconds(1);
  });
  ASSERT_EQ(invoke("hello").status, Status::kOk);
  EXPECT_TRUE(loopUntil([&] { return supervisor_->stats().killsByReason["expired"] == 1; }));
  EXPECT_EQ(supervisor_->stats().pools.expirations, 1u);
}

// A sandbox counts as starting until its function has loaded: one whose
// module holds at import is live and starting, not idle; then idle.
TEST_F(SupervisorTest, ASandboxIsStartingUntilItsFunctionHasLoaded) {
  std::string name = testing_util::uniqueProcessName();
  deploySource("held-import",
               "import ctypes, signal\n"
               "signal.signal(signal.SIGUSR1, lambda signum, frame: None)\n"
               "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])\n"
               "ctypes.CDLL(None).prctl(15, b'" +
                   name +
                   "', 0, 0, 0)  # PR_SET_NAME\n"
                   "signal.sigwait([signal.SIGUSR1])\n"
                   "def handler(event, context):\n"
                   "    return 1\n");
  start([](Config& c) { c.pool.minWarm = 1; });
  pid_t pid = loopUntilRunning(name);
  ASSERT_GT(pid, 0) << "the module never ran";
  Stats stats = supervisor_->stats();
  EXPECT_EQ(stats.liveSandboxes, 1u);
  EXPECT_EQ(stats.startingSandboxes, 1u);
  EXPECT_EQ(stats.idleSandboxes, 0u);
  testing_util::release(pid);
  EXPECT_TRUE(loopUntil([&] { return supervisor_->stats().idleSandboxes == 1; }));
  EXPECT_EQ(supervisor_->stats().startingSandboxes, 0u);
}

TEST_F(SupervisorTest, AnUnknownFunctionIsNotFound) {
  start();
  EXPECT_EQ(invoke("nobody").status, Status::kNotFound);
  Stats stats = supervisor_->stats();
  EXPECT_EQ(stats.invocationsByStatus["not_found"], 1u);
  // Counted, but by no function: names not in the registry are unbounded.
  EXPECT_EQ(stats.unknownFunctionInvocations, 1u);
  EXPECT_TRUE(stats.invocationsByFunction.empty());
  ASSERT_EQ(logLines("invocation").size(), 1u);
  EXPECT_NE(logLines("invocation")[0].find("function=nobody"), std::string::npos);
}

TEST_F(SupervisorTest, ARemovedFunctionsCountsGoWithIt) {
  start();
  deployExample("hello");
  ASSERT_EQ(invoke("hello").status, Status::kOk);
  EXPECT_EQ(supervisor_->stats().invocationsByFunction["hello"]["ok"], 1u);
  ASSERT_TRUE(supervisor_->remove("hello"));
  Stats stats = supervisor_->stats();
  EXPECT_EQ(stats.invocationsByFunction.count("hello"), 0u);
  EXPECT_EQ(stats.invocationsByStatus["ok"], 1u);  // the daemon's own count stays
  EXPECT_EQ(invoke("hello").status, Status::kNotFound);
  EXPECT_EQ(supervisor_->stats().invocationsByFunction.count("hello"), 0u);
  EXPECT_EQ(supervisor_->stats().unknownFunctionInvocations, 1u);
}

TEST_F(SupervisorTest, AnExceptionIsAHandlerErrorAndTheSandboxIsKept) {
  start();
  deployExample("raises");
  InvokeResult result = invoke("raises");
  EXPECT_EQ(result.status, Status::kHandlerError);
  EXPECT_FALSE(result.errorType.empty());
  EXPECT_FALSE(result.traceback.empty());
  EXPECT_FALSE(invoke("raises").cold);
}

TEST_F(SupervisorTest, AnImportErrorIsAStartFailureWithItsTraceback) {
  start();
  deploySource("broken", "import does_not_exist\n");
  InvokeResult result = invoke("broken");
  EXPECT_EQ(result.status, Status::kStartFailed);
  EXPECT_NE(result.errorMessage.find("does_not_exist"), std::string::npos) << result.errorMessage;
  EXPECT_TRUE(loopUntil([&] { return supervisor_->stats().liveSandboxes == 0; }));
}

TEST_F(SupervisorTest, PastItsDeadlineTheSandboxIsKilled) {
  start();
  FunctionConfig config;
  config.timeout = 300ms;
  deployExample("spins", config);
  auto begin = std::chrono::steady_clock::now();
  InvokeResult result = invoke("spins");
  auto took = std::chrono::steady_clock::now() - begin;
  EXPECT_EQ(result.status, Status::kTimeout);
  // The function's timeout, not the default 5 s (kill precision is a
  // benchmark figure, see bench/).
  EXPECT_EQ(result.errorMessage, "the invocation exceeded its timeout of 300 ms");
  EXPECT_GE(took, 300ms);
  EXPECT_TRUE(loopUntil([&] { return supervisor_->stats().liveSandboxes == 0; }));
  Stats stats = supervisor_->stats();
  EXPECT_EQ(stats.liveSandboxes, 0u);
  EXPECT_EQ(stats.killsByReason["timeout"], 1u);
  ASSERT_EQ(logLines("sandbox_killed").size(), 1u);
  EXPECT_NE(logLines("sandbox_killed")[0].find("function=spins version=1 reason=timeout"),
            std::string::npos);
}

TEST_F(SupervisorTest, TooMuchMemoryIsOutOfMemory) {
  start();
  FunctionConfig config;
  config.memoryBytes = 48ull << 20;
  deploySource("hog", R"PY(
def handler(event, context):
    hog = b"x" * (256 << 20)
    return len(hog)
)PY",
               config);
  InvokeResult result = invoke("hog");
  EXPECT_EQ(result.status, Status::kOutOfMemory) << result.errorMessage;
}

TEST_F(SupervisorTest, AForkBombIsTooManyProcesses) {
  start([](Config& c) { c.limits.pids = 16; });
  deploySource("forkbomb", testing_util::kForkBombHandler);
  InvokeResult result = invoke("forkbomb");
  EXPECT_EQ(result.status, Status::kTooManyProcesses) << result.errorMessage;
}

TEST_F(SupervisorTest, ASegfaultIsACrash) {
  start();
  deployExample("segfault");
  InvokeResult result = invoke("segfault");
  EXPECT_EQ(result.status, Status::kCrashed);
  EXPECT_NE(result.errorMessage.find("signal"), std::string::npos) << result.errorMessage;
}

TEST_F(SupervisorTest, AnOversizedResultIsRefusedAndTheNextCallIsServed) {
  start([](Config& c) { c.limits.resultBytes = 1 << 20; });
  deploySource("big", R"PY(
def handler(event, context):
    return "x" * (2 << 20) if event.get("big") else "small"
)PY");
  InvokeResult result = invoke("big", R"({"big":true})");
  EXPECT_EQ(result.status, Status::kResultTooLarge) << result.errorMessage;
  EXPECT_TRUE(result.payload.empty());
  // The unread rest of that result must not reach the next caller.
  InvokeResult next = invoke("big", "{}");
  EXPECT_EQ(next.status, Status::kOk) << next.errorMessage;
  EXPECT_EQ(next.payload, R"("small")");
}

TEST_F(SupervisorTest, BeyondConcurrencyAndQueueItIsOverloaded) {
  start([](Config& c) {
    c.pool.concurrency = 1;
    c.pool.queueLength = 0;
  });
  FunctionConfig config;
  config.timeout = 1000ms;
  deployExample("spins", config);
  auto running = supervisor_->invoke("spins", "{}");
  InvokeResult refused = invoke("spins");
  EXPECT_EQ(refused.status, Status::kOverloaded);
  EXPECT_EQ(running.wait(io_.waitScope).status, Status::kTimeout);
}

TEST_F(SupervisorTest, QueuedInvocationsRunInTurn) {
  start([](Config& c) {
    c.pool.concurrency = 1;
    c.pool.queueLength = 4;
  });
  deployExample("hello");
  auto a = supervisor_->invoke("hello", "{}");
  auto b = supervisor_->invoke("hello", "{}");
  InvokeResult first = a.wait(io_.waitScope);
  InvokeResult second = b.wait(io_.waitScope);
  EXPECT_EQ(first.status, Status::kOk);
  EXPECT_EQ(second.status, Status::kOk);
  EXPECT_GT(second.queued, Duration::zero());
  EXPECT_FALSE(second.cold);  // the first one's sandbox, back in its pool
  EXPECT_EQ(supervisor_->stats().admission.queued, 1u);
}

// The one running spins for as long as the test lets it (its timeout is a
// minute): the one behind it can only leave the queue by timing out.
TEST_F(SupervisorTest, AQueueTimeoutIsOverloaded) {
  start([](Config& c) {
    c.pool.concurrency = 1;
    c.pool.queueLength = 4;
    c.pool.queueTimeout = 200ms;
  });
  FunctionConfig config;
  config.timeout = 60s;
  deployExample("spins", config);
  auto running = supervisor_->invoke("spins", "{}");
  InvokeResult waited = invoke("spins");
  EXPECT_EQ(waited.status, Status::kOverloaded);
  EXPECT_NE(waited.errorMessage.find("queue"), std::string::npos);
  EXPECT_FALSE(running.poll(io_.waitScope)) << "the first one still runs";
  EXPECT_EQ(supervisor_->stats().admission.queueTimeouts, 1u);
}

TEST_F(SupervisorTest, ACallerThatGoesAwayCancelsAndKillsTheSandbox) {
  start();
  deploySource("spins", testing_util::kNamingHandler);
  std::string name = testing_util::uniqueProcessName();
  {
    auto abandoned = supervisor_->invoke("spins", testing_util::namingEvent(name, "spin"));
    ASSERT_GT(loopUntilRunning(name), 0) << "it never ran";
  }  // dropped: cancelled
  EXPECT_TRUE(loopUntil([&] { return supervisor_->stats().liveSandboxes == 0; }));
  EXPECT_TRUE(testing_util::processesNamed(name).empty()) << "its sandbox outlived its exit event";
  Stats stats = supervisor_->stats();
  EXPECT_EQ(stats.killsByReason["cancelled"], 1u);
  EXPECT_EQ(stats.liveSandboxes, 0u);
  EXPECT_EQ(stats.invocationsByStatus["cancelled"], 1u);
}

TEST_F(SupervisorTest, DrainLetsTheRunningFinishAndRefusesNewOnes) {
  start();
  deployExample("hello");
  auto running = supervisor_->invoke("hello", "{}");
  auto drained = supervisor_->drain();
  EXPECT_EQ(invoke("hello").status, Status::kShuttingDown);
  EXPECT_EQ(running.wait(io_.waitScope).status, Status::kOk);
  drained.wait(io_.waitScope);
  EXPECT_TRUE(loopUntil([&] { return supervisor_->stats().liveSandboxes == 0; }));
}

TEST_F(SupervisorTest, PastTheDrainGraceRunningInvocationsAreKilled) {
  start();
  deploySource("spins", testing_util::kNamingHandler);
  std::string name = testing_util::uniqueProcessName();
  auto running = supervisor_->invoke("spins", testing_util::namingEvent(name, "spin"));
  ASSERT_GT(loopUntilRunning(name), 0) << "it never ran";
  supervisor_->drain(200ms).wait(io_.waitScope);
  InvokeResult result = running.wait(io_.waitScope);
  EXPECT_EQ(result.status, Status::kShuttingDown) << result.errorMessage;
  EXPECT_TRUE(loopUntil([&] { return supervisor_->stats().liveSandboxes == 0; }));
}

// What the function itself sees: its network interfaces.
TEST_F(SupervisorTest, NetworkAccessIsWhatTheFunctionWasGiven) {
  start();
  const char* source = R"PY(
import socket
def handler(event, context):
    return sorted(name for _, name in socket.if_nameindex())
)PY";
  deploySource("offline", source);
  FunctionConfig egress;
  egress.network = Network::kEgress;
  deploySource("online", source, egress);
  InvokeResult offline = invoke("offline");
  ASSERT_EQ(offline.status, Status::kOk) << offline.errorMessage;
  EXPECT_EQ(offline.payload, R"(["lo"])");
  InvokeResult online = invoke("online");
  ASSERT_EQ(online.status, Status::kOk) << online.errorMessage;
  EXPECT_EQ(online.payload, R"(["eth0","lo"])");
}

TEST_F(SupervisorTest, AtTheHostsSandboxCapAnIdleOneIsEvictedOrTheCallRefused) {
  start([](Config& c) {
    c.host.maxSandboxes = 1;
    c.host.maxWarm = 1;
  });
  deployExample("hello");
  FunctionConfig quick;
  quick.timeout = 1000ms;
  deployExample("spins", quick);
  ASSERT_EQ(invoke("hello").status, Status::kOk);      // now idle, holding the one slot
  auto spinning = supervisor_->invoke("spins", "{}");  // evicts it
  EXPECT_TRUE(loopUntil([&] { return supervisor_->stats().killsByReason["evicted"] == 1; }));
  InvokeResult refused = invoke("hello");  // nothing idle to evict
  EXPECT_EQ(refused.status, Status::kOverloaded);
  EXPECT_NE(refused.errorMessage.find("live sandboxes"), std::string::npos) << refused.errorMessage;
  EXPECT_EQ(spinning.wait(io_.waitScope).status, Status::kTimeout);
}

TEST_F(SupervisorTest, ADeadZygoteIsReplaced) {
  start();
  deployExample("hello");
  ASSERT_EQ(invoke("hello").status, Status::kOk);
  pid_t first = supervisor_->zygotePid("python3.11");
  ASSERT_GT(first, 0);
  ASSERT_EQ(kill(first, SIGKILL), 0);
  // Seen dead; the first restart comes 1 s later.
  EXPECT_TRUE(loopUntil([&] { return supervisor_->zygotePid("python3.11") == -1; }));
  EXPECT_EQ(supervisor_->stats().liveSandboxes, 0u);  // its sandbox went with it
  EXPECT_TRUE(loopUntil([&] { return supervisor_->zygotePid("python3.11") > 0; }));
  pid_t second = supervisor_->zygotePid("python3.11");
  EXPECT_GT(second, 0);
  EXPECT_NE(second, first);
  InvokeResult after = invoke("hello");
  EXPECT_EQ(after.status, Status::kOk) << after.errorMessage;
  EXPECT_TRUE(after.cold);
  EXPECT_EQ(supervisor_->stats().zygoteRestarts, 1u);
}

// The children of process `pid` (its sandboxes, for a zygote without stem
// cells).
std::vector<pid_t> childrenOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::vector<pid_t> children;
  for (pid_t child; in >> child;) children.push_back(child);
  return children;
}

// With two zygotes for a runtime, spawns go to the one with the fewest
// under way, so both fork; when one dies, only its own sandboxes go, the
// other's stay warm and serve, and the dead one is replaced.
TEST_F(SupervisorTest, TwoZygotesShareTheSpawnsAndADeadOneTakesOnlyItsOwn) {
  deployExample("hello");
  start([](Config& c) {
    c.runtimes[0].zygotes = 2;
    c.pool.minWarm = 4;
  });
  ASSERT_TRUE(loopUntil([&] { return supervisor_->stats().idleSandboxes == 4; }));
  pid_t first = supervisor_->zygotePid("python3.11", 0);
  pid_t second = supervisor_->zygotePid("python3.11", 1);
  ASSERT_GT(first, 0);
  ASSERT_GT(second, 0);
  ASSERT_NE(first, second);
  std::vector<pid_t> kept = childrenOf(first), lost = childrenOf(second);
  EXPECT_EQ(kept.size(), 2u);
  EXPECT_EQ(lost.size(), 2u);

  ASSERT_EQ(kill(second, SIGKILL), 0);
  EXPECT_TRUE(loopUntil([&] { return supervisor_->zygotePid("python3.11", 1) == -1; }));
  // Seen dead: its two went with it (and pool.min_warm starts two more).
  EXPECT_TRUE(loopUntil([&] { return supervisor_->stats().idleSandboxes == 4; }));
  for (pid_t pid : kept) EXPECT_EQ(kill(pid, 0), 0) << "a sandbox of the zygote that lives died";
  InvokeResult result = invoke("hello");
  EXPECT_EQ(result.status, Status::kOk) << result.errorMessage;
  EXPECT_FALSE(result.cold);
  EXPECT_TRUE(loopUntil([&] { return supervisor_->zygotePid("python3.11", 1) > 0; }));
  EXPECT_NE(supervisor_->zygotePid("python3.11", 1), second);
  EXPECT_EQ(supervisor_->stats().zygoteRestarts, 1u);
}

// A claimed stem cell keeps the cgroup it was forked in (stem-<host id>); a
// fresh fork has one of its own (sbx-<id>). The stems warm up unseen by the
// supervisor, and until one is warm a cold start forks fresh: each new
// version's first call is a cold start, until one claims a stem.
TEST_F(SupervisorTest, StemCellsServeColdStarts) {
  start([](Config& c) { c.runtimes = {RuntimeConfig{"python3.11", 2, {}, {}}}; });
  int coldStarts = 0;
  bool claimed = loopUntil([&] {
    deploySource("named", testing_util::kNamingHandler);
    std::string name = testing_util::uniqueProcessName();
    InvokeResult result = invoke("named", testing_util::namingEvent(name));
    EXPECT_EQ(result.status, Status::kOk) << result.errorMessage;
    EXPECT_TRUE(result.cold);
    ++coldStarts;
    std::vector<pid_t> sandbox = testing_util::processesNamed(name);
    if (result.status != Status::kOk || sandbox.size() != 1) return true;  // failed, and said so
    return testing_util::memoryCgroupOf(sandbox[0]).find("/stem-") != std::string::npos;
  });
  EXPECT_TRUE(claimed) << "none of " << coldStarts << " cold starts claimed a stem cell";
}

// 10,000 invocations over 20 functions, 16 in flight, with limit breaches
// mixed in at random: every invocation ends with exactly the status its
// behaviour calls for, the statistics add up, and nothing is left behind.
// A stem cell has no /opt to give: a function with layers forks fresh,
// even while stems wait (its spec is not the stems' template).
TEST_F(SupervisorTest, AFunctionWithLayersForksFreshBesideStemCells) {
  start([](Config& c) { c.runtimes = {RuntimeConfig{"python3.11", 2, {}, {}}}; });
  testing_util::TempDir layer;
  testing_util::writeFile(layer.path() + "/word.txt", "layered");
  registry_->publishLayerDirectory("words", layer.path());
  FunctionConfig config;
  config.layers = {{"words", 1}};
  const char* source = R"PY(
import ctypes
def handler(event, context):
    ctypes.CDLL(None).prctl(15, event["name"].encode(), 0, 0, 0)  # PR_SET_NAME
    return open("/opt/word.txt").read()
)PY";
  // First a plain function claims a stem: there are stems to claim.
  bool claimed = loopUntil([&] {
    deploySource("plain", testing_util::kNamingHandler);
    std::string name = testing_util::uniqueProcessName();
    InvokeResult result = invoke("plain", testing_util::namingEvent(name));
    std::vector<pid_t> sandbox = testing_util::processesNamed(name);
    if (result.status != Status::kOk || sandbox.size() != 1) return true;
    return testing_util::memoryCgroupOf(sandbox[0]).find("/stem-") != std::string::npos;
  });
  ASSERT_TRUE(claimed);
  for (int i = 0; i < 3; ++i) {
    deploySource("layered", source, config);
    std::string name = testing_util::uniqueProcessName();
    InvokeResult result = invoke("layered", testing_util::namingEvent(name));
    ASSERT_EQ(result.status, Status::kOk) << result.errorMessage << result.traceback;
    EXPECT_TRUE(result.cold);
    EXPECT_EQ(result.payload, R"("layered")");
    std::vector<pid_t> sandbox = testing_util::processesNamed(name);
    ASSERT_EQ(sandbox.size(), 1u);
    EXPECT_EQ(testing_util::memoryCgroupOf(sandbox[0]).find("/stem-"), std::string::npos);
  }
}

TEST_F(SupervisorTest, SoakOfTenThousandInvocationsAccountsForEveryOne) {
  start([](Config& c) {
    c.limits.memoryBytes = 64ull << 20;
    c.limits.resultBytes = 1 << 20;
    c.host.maxWarm = 64;
  });
  const char* source = R"PY(
import ctypes
def handler(event, context):
    what = event["do"]
    if what == "ok":
        return {"n": event["n"]}
    if what == "raise":
        raise ValueError("asked to")
    if what == "oom":
        hog = b"x" * (256 << 20)
        return len(hog)
    if what == "spin":
        while True:
            pass
    if what == "crash":
        return ctypes.string_at(0)
    if what == "big":
        return "x" * (2 << 20)
)PY";
  constexpr int kFunctions = 20, kSpinners = 4, kInvocations = 10000, kInFlight = 16;
  for (int f = 0; f < kFunctions; ++f) {
    FunctionConfig config;
    config.timeout = f < kSpinners ? 200ms : 10000ms;
    deploySource("f" + std::to_string(f), source, config);
  }
  struct Case {
    std::string function, payload;
    Status expected;
  };
  std::mt19937 random(42);
  std::vector<Case> cases;
  std::map<Status, int> expected;
  for (int i = 0; i < kInvocations; ++i) {
    int dice = random() % 1000;
    std::string what = "ok";
    Status status = Status::kOk;
    if (dice < 10)
      what = "raise", status = Status::kHandlerError;
    else if (dice < 15)
      what = "oom", status = Status::kOutOfMemory;
    else if (dice < 20)
      what = "crash", status = Status::kCrashed;
    else if (dice < 25)
      what = "big", status = Status::kResultTooLarge;
    else if (dice < 26)
      what = "spin", status = Status::kTimeout;
    // Only the spins go to the functions with a 200 ms timeout: on a loaded
    // host any other call could outlast it (the OOM killer, a busy core).
    int f = what == "spin" ? random() % kSpinners : kSpinners + random() % (kFunctions - kSpinners);
    cases.push_back({"f" + std::to_string(f),
                     R"({"do":")" + what + R"(","n":)" + std::to_string(i) + "}", status});
    expected[status]++;
  }
  std::map<Status, int> seen;
  int wrong = 0;
  size_t next = 0;
  std::vector<std::pair<size_t, kj::Promise<InvokeResult>>> inFlight;
  auto launch = [&]() {
    inFlight.emplace_back(next, supervisor_->invoke(cases[next].function, cases[next].payload));
    ++next;
  };
  while (next < cases.size() && inFlight.size() < kInFlight) launch();
  while (!inFlight.empty()) {
    auto [index, promise] = std::move(inFlight.front());
    inFlight.erase(inFlight.begin());
    InvokeResult result = promise.wait(io_.waitScope);
    seen[result.status]++;
    if (result.status != cases[index].expected && wrong++ < 10)
      ADD_FAILURE() << "invocation " << index << " (" << cases[index].payload << ") ended "
                    << statusName(result.status) << ", not " << statusName(cases[index].expected)
                    << ": " << result.errorMessage;
    if (result.status == Status::kOk) {
      EXPECT_EQ(result.payload, R"({"n":)" + std::to_string(index) + "}");
    }
    if (next < cases.size()) launch();
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(seen, expected);
  Stats stats = supervisor_->stats();
  uint64_t total = 0;
  for (const auto& [status, count] : stats.invocationsByStatus) total += count;
  EXPECT_EQ(total, uint64_t(kInvocations));
  EXPECT_EQ(stats.coldStarts + stats.warmStarts, uint64_t(kInvocations));
  // The killed ones are gone once their exit events are in.
  EXPECT_TRUE(loopUntil([&] {
    Stats now = supervisor_->stats();
    return now.liveSandboxes == now.idleSandboxes;
  }));
}

// thatchd killed with SIGKILL in the middle of an invocation: nothing it
// started keeps running, and the next one finds its deploys and cleans up.
// The killed one ran two zygotes, its spinning sandbox forked by the
// second (a cgroup under python3.11.1); the next start runs one zygote and
// still finds and removes what the second left.
TEST(SupervisorRecovery, AfterSigkillNothingRunsAndTheNextStartCleansUp) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  testing_util::HostState before = testing_util::snapshot();
  testing_util::TempDir state("thatch-state");
  chmod(state.path().c_str(), 0711);
  Config config = defaultConfig();
  config.runtimes = {RuntimeConfig{"python3.11", 0, {}, {}}};
  config.limits.timeout = 60000ms;
  config.cgroupSubdir = testCgroupSubdir("supervisor");
  SupervisorOptions options;
  options.config = config;
  options.zygoteBinary = testing_util::testBinDir() + "/../bin/thatch-zygote";
  {
    Registry registry(state.path());
    testing_util::TempDir code;
    testing_util::writeFile(code.path() + "/handler.py", testing_util::kNamingHandler);
    registry.deployDirectory("spins", code.path(), {});
    registry.deployDirectory("hello", repoRoot() + "/examples/hello", {});
  }
  std::string name = testing_util::uniqueProcessName();
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto io = kj::setupAsyncIo();
    SteadyClock clock;
    Registry registry(state.path());
    SupervisorOptions twoZygotes = options;
    twoZygotes.config.runtimes[0].zygotes = 2;
    Supervisor supervisor(twoZygotes, registry, clock, io.provider->getTimer(), io.unixEventPort,
                          *io.lowLevelProvider);
    // hello's sandbox, kept warm, is the first zygote's: the next goes to the second.
    supervisor.invoke("hello", "{}").wait(io.waitScope);
    supervisor.invoke("spins", testing_util::namingEvent(name, "spin"))
        .wait(io.waitScope);  // until killed
    _exit(0);
  }
  // Once the spinning sandbox runs, kill the "daemon".
  std::vector<pid_t> sandbox;
  EXPECT_TRUE(testing_util::eventually([&] {
    return !(sandbox = testing_util::processesNamed(name)).empty();
  })) << "the invocation never ran";
  std::string cgroup = sandbox.empty() ? "" : testing_util::memoryCgroupOf(sandbox[0]);
  EXPECT_NE(cgroup.find("/python3.11.1/"), std::string::npos) << cgroup;
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  EXPECT_TRUE(testing_util::eventually([&] { return testing_util::processesNamed(name).empty(); }))
      << "a sandbox outlived thatchd";
  {
    auto io = kj::setupAsyncIo();
    SteadyClock clock;
    Registry registry(state.path());
    EXPECT_EQ(registry.list(), (std::vector<std::string>{"hello", "spins"}));
    Supervisor supervisor(options, registry, clock, io.provider->getTimer(), io.unixEventPort,
                          *io.lowLevelProvider);
    // It removed what its predecessor left: the killed sandbox's cgroup,
    // and the second zygote's directory.
    EXPECT_FALSE(cgroup.empty());
    EXPECT_FALSE(testing_util::exists(cgroup)) << cgroup;
    EXPECT_FALSE(testing_util::exists(cgroup.substr(0, cgroup.rfind('/')))) << cgroup;
    EXPECT_EQ(supervisor.invoke("hello", "{}").wait(io.waitScope).status, Status::kOk);
  }
  removeTestCgroupSubdir("supervisor");
  testing_util::HostState after = testing_util::snapshot();
  EXPECT_EQ(after.cgroups, before.cgroups);
  EXPECT_EQ(after.mounts, before.mounts);
  EXPECT_TRUE(after.sandboxProcesses.empty());
}

// The daemon binary: its configuration check, and a start and stop.
std::string thatchd() {
  return testing_util::testBinDir() + "/../bin/thatchd";
}

// Runs `command`, returning its exit status and what it printed (both streams).
std::pair<int, std::string> runCommand(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

TEST(Thatchd, CheckConfigNamesEachErrorWithItsLine) {
  testing_util::TempDir dir;
  testing_util::writeFile(
      dir.path() + "/bad.toml",
      "[pool]\nmax_warm = 2\nmin_warm = 9\nbogus = 1\n[limits]\ntimeout = \"3\"\n");
  auto [status, output] = runCommand(thatchd() + " --check-config " + dir.path() + "/bad.toml");
  EXPECT_EQ(status, 2);
  EXPECT_NE(output.find("bad.toml:4: pool.bogus: unknown key"), std::string::npos) << output;
  EXPECT_NE(output.find("bad.toml:6: limits.timeout:"), std::string::npos) << output;
  EXPECT_NE(output.find("pool.min_warm"), std::string::npos) << output;
}

TEST(Thatchd, CheckConfigPrintsTheEffectiveConfig) {
  testing_util::TempDir dir;
  testing_util::writeFile(dir.path() + "/ok.toml", "[pool]\nconcurrency = 3\n");
  auto [status, output] = runCommand(thatchd() + " --check-config " + dir.path() + "/ok.toml");
  EXPECT_EQ(status, 0) << output;
  Config printed = parseConfig(output, "output");
  EXPECT_EQ(printed.pool.concurrency, 3u);
  EXPECT_EQ(printed.limits, defaultConfig().limits);
}

TEST(Thatchd, StateDirAndSocketOverridesFollowTheConfigRules) {
  auto [status, output] = runCommand(thatchd() + " --state-dir relative/state --socket x.sock");
  EXPECT_EQ(status, 2);
  EXPECT_NE(output.find("state_dir: 'relative/state' is not an absolute path"), std::string::npos)
      << output;
  EXPECT_NE(output.find("socket: 'x.sock' is not an absolute path"), std::string::npos) << output;
  std::tie(status, output) = runCommand(thatchd() + " --check-config " + repoRoot() +
                                        "/scripts/thatchd.toml --socket /tmp/elsewhere.sock");
  EXPECT_EQ(status, 0) << output;
  EXPECT_NE(output.find("socket = \"/tmp/elsewhere.sock\""), std::string::npos) << output;
}

TEST(Thatchd, StartsAndStopsCleanlyOnSigterm) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  testing_util::HostState before = testing_util::snapshot();
  {
    testing_util::TestDaemon daemon("", "[[runtime]]\nname = \"python3.11\"\nstem_cells = 1\n");
    // Stopped with its stem cell forked.
    EXPECT_TRUE(testing_util::eventually([&] {
      for (const std::string& cgroup :
           testing_util::cgroupsWithProcessesBelow(daemon.cgroupSubdir()))
        if (cgroup.find("/stem-") != std::string::npos) return true;
      return false;
    }));
    EXPECT_EQ(daemon.stop(), 0) << daemon.log();
    EXPECT_NE(daemon.log().find("thatchd: stopped"), std::string::npos) << daemon.log();
  }
  testing_util::HostState after = testing_util::snapshot();
  EXPECT_EQ(after.cgroups, before.cgroups);
  EXPECT_TRUE(after.sandboxProcesses.empty());
}

// Sending ahead (docs/thatching.md): a function whose handler does what
// the event asks, and says how many calls its sandbox has served. With
// "hold", it names its process that (as testing_util::kNamingHandler does)
// and runs until the test lets it go (testing_util::release()).
constexpr const char* kStepsHandler = R"PY(
import ctypes, os, signal, time
calls = 0
released = False
def release(signum, frame):
    global released
    released = True
def handler(event, context):
    global calls, released
    calls += 1
    if event.get("hold"):
        released = False
        signal.signal(signal.SIGUSR1, release)
        ctypes.CDLL(None).prctl(15, event["hold"].encode(), 0, 0, 0)  # PR_SET_NAME
        while not released:
            time.sleep(0.001)
    if event.get("spin"):
        while True:
            pass
    if event.get("exit"):
        os._exit(3)
    time.sleep(event.get("sleep", 0))
    return {"calls": calls, "tag": event.get("tag", 0),
            "remaining": context.get_remaining_time_in_millis()}
)PY";

// An integer field of a flat JSON object (-1 if absent).
long jsonInt(const std::string& json, const std::string& key) {
  size_t at = json.find("\"" + key + "\":");
  return at == std::string::npos ? -1 : std::stol(json.substr(at + key.size() + 3));
}

class SendAheadTest : public SupervisorTest {
 protected:
  // The event of a call that holds, under a name of its own.
  static std::string holding(int tag, std::string* name) {
    *name = testing_util::uniqueProcessName();
    return R"({"tag":)" + std::to_string(tag) + R"(,"hold":")" + *name + R"("})";
  }

  // One sandbox at a time, and a sandbox that has served one short call.
  InvokeResult startWithOneWarmSandbox(std::chrono::microseconds under,
                                       std::chrono::milliseconds timeout = 2000ms) {
    start([under](Config& c) {
      c.pool.concurrency = 1;
      c.pool.queueLength = 8;
      c.pool.sendAheadUnder = under;
    });
    FunctionConfig config;
    config.timeout = timeout;
    deploySource("steps", kStepsHandler, config);
    InvokeResult warm = invoke("steps", R"({"tag":0})");
    EXPECT_EQ(warm.status, Status::kOk) << warm.errorMessage << warm.traceback;
    return warm;
  }
};

TEST_F(SendAheadTest, AQueuedInvocationStartsInTheBusySandboxWhenItsPredecessorEnds) {
  InvokeResult warm = startWithOneWarmSandbox(1s, 5s);
  // b queues behind a (concurrency 1) and goes into a's sandbox's channel;
  // a runs on for 2 s after that.
  std::string aName;
  auto a = supervisor_->invoke("steps", holding(1, &aName));
  auto b = supervisor_->invoke("steps", R"({"tag":2})");
  ASSERT_TRUE(loopUntil([&] { return supervisor_->stats().sentAhead == 1; }));
  pid_t sandbox = loopUntilRunning(aName);
  ASSERT_GT(sandbox, 0);
  std::this_thread::sleep_for(2s);
  testing_util::release(sandbox);
  InvokeResult first = a.wait(io_.waitScope);
  InvokeResult second = b.wait(io_.waitScope);
  ASSERT_EQ(first.status, Status::kOk) << first.errorMessage;
  ASSERT_EQ(second.status, Status::kOk) << second.errorMessage;
  EXPECT_EQ(jsonInt(first.payload, "tag"), 1);
  EXPECT_EQ(jsonInt(second.payload, "tag"), 2);
  // The same sandbox, in turn.
  EXPECT_EQ(first.sandboxId, warm.sandboxId);
  EXPECT_EQ(second.sandboxId, warm.sandboxId);
  EXPECT_EQ(jsonInt(first.payload, "calls"), 2);
  EXPECT_EQ(jsonInt(second.payload, "calls"), 3);
  // Its deadline counted from its own start, not from when it was sent
  // (over 2 s earlier, which would have left it under 3 s of its 5).
  EXPECT_GT(jsonInt(second.payload, "remaining"), 4000) << second.payload;
  EXPECT_GE(second.queued, 2s);  // it waited for a, as a queued one does
  Stats stats = supervisor_->stats();
  EXPECT_EQ(stats.sentAhead, 1u);
  EXPECT_EQ(stats.sentAheadStarted, 1u);
  EXPECT_EQ(stats.admission.startedFromQueue, 1u);
  EXPECT_EQ(stats.invocationsByStatus["ok"], 3u);
  EXPECT_EQ(stats.liveSandboxes, 1u);
}

// "Short" is under a minute here: a runs until the test has seen what
// was sent ahead, however long that takes.
TEST_F(SendAheadTest, UpToFourWaitInOneSandboxAndRunInArrivalOrder) {
  InvokeResult warm = startWithOneWarmSandbox(60s);
  std::string aName;
  auto a = supervisor_->invoke("steps", holding(1, &aName));
  std::vector<kj::Promise<InvokeResult>> queued;
  for (int tag = 2; tag <= 7; ++tag)
    queued.push_back(supervisor_->invoke("steps", R"({"tag":)" + std::to_string(tag) + "}"));
  pid_t sandbox = loopUntilRunning(aName);
  ASSERT_GT(sandbox, 0);
  // Four in the sandbox's channel behind a; two more wait in thatchd.
  EXPECT_TRUE(loopUntil([&] { return supervisor_->stats().sentAhead >= 4; }));
  runFor(10ms);  // (and no more go while a runs)
  EXPECT_EQ(supervisor_->stats().sentAhead, 4u);
  testing_util::release(sandbox);
  EXPECT_EQ(a.wait(io_.waitScope).status, Status::kOk);
  for (int tag = 2; tag <= 7; ++tag) {
    InvokeResult r = queued[tag - 2].wait(io_.waitScope);
    ASSERT_EQ(r.status, Status::kOk) << r.errorMessage;
    EXPECT_EQ(jsonInt(r.payload, "tag"), tag);
    EXPECT_EQ(jsonInt(r.payload, "calls"), tag + 1);  // after the warm-up call and a
    EXPECT_EQ(r.sandboxId, warm.sandboxId);
  }
  Stats stats = supervisor_->stats();
  EXPECT_EQ(stats.sentAhead, 6u);  // the last two went as room was made
  EXPECT_EQ(stats.sentAheadStarted, 6u);
  EXPECT_EQ(stats.liveSandboxes, 1u);
}

TEST_F(SendAheadTest, WhenThePredecessorTimesOutOrDiesItRunsElsewhereOnce) {
  for (const char* ahead : {R"({"spin":true})", R"({"exit":true})"}) {
    SCOPED_TRACE(ahead);
    InvokeResult warm = startWithOneWarmSandbox(1s);
    auto a = supervisor_->invoke("steps", ahead);
    auto b = supervisor_->invoke("steps", R"({"tag":2})");
    InvokeResult first = a.wait(io_.waitScope);
    InvokeResult second = b.wait(io_.waitScope);
    EXPECT_EQ(first.status, std::string(ahead).find("spin") != std::string::npos ? Status::kTimeout
                                                                                 : Status::kCrashed)
        << statusName(first.status) << " " << first.errorMessage;
    EXPECT_EQ(first.sandboxId, warm.sandboxId);
    // The sandbox never started it: it went back to the queue, then to a new
    // sandbox, where it is the first call.
    ASSERT_EQ(second.status, Status::kOk) << second.errorMessage;
    EXPECT_NE(second.sandboxId, warm.sandboxId);
    EXPECT_EQ(jsonInt(second.payload, "calls"), 1);
    EXPECT_TRUE(second.cold);
    Stats stats = supervisor_->stats();
    EXPECT_EQ(stats.sentAhead, 1u);
    EXPECT_EQ(stats.sentAheadStarted, 0u);
    supervisor_.reset();
  }
}

TEST_F(SendAheadTest, AnAnswerPastItsDeadlineIsATimeoutAndWhatWasSentAheadRunsElsewhere) {
  startWithOneWarmSandbox(1s);
  FunctionConfig config;
  config.timeout = 2s;
  deploySource("steps", kStepsHandler, config);  // version 2, with a 2 s timeout
  ASSERT_EQ(invoke("steps", R"({"tag":0})").status, Status::kOk);
  std::string aName;
  auto a = supervisor_->invoke("steps", holding(1, &aName));
  auto b = supervisor_->invoke("steps", R"({"tag":2})");
  // a's request sent, b's behind it.
  ASSERT_TRUE(loopUntil([&] { return supervisor_->stats().sentAhead == 1; }));
  pid_t sandbox = loopUntilRunning(aName);
  ASSERT_GT(sandbox, 0);
  // thatchd's loop stands still past a's deadline (2 s after it was sent,
  // which was before it ran). Then a ends: its answer, saying it overran, is
  // in the channel before thatchd looks, and the sandbox exits rather than
  // start b.
  std::this_thread::sleep_for(2s);
  testing_util::release(sandbox);
  EXPECT_TRUE(
      testing_util::eventually([&] { return testing_util::processesNamed(aName).empty(); }));
  InvokeResult first = a.wait(io_.waitScope);
  InvokeResult second = b.wait(io_.waitScope);
  EXPECT_EQ(first.status, Status::kTimeout)
      << statusName(first.status) << " " << first.errorMessage;
  EXPECT_GT(first.run, Duration::zero()) << "the timeout is its answer's, not thatchd's timer's";
  ASSERT_EQ(second.status, Status::kOk) << second.errorMessage;
  EXPECT_NE(second.sandboxId, first.sandboxId);
  EXPECT_EQ(jsonInt(second.payload, "calls"), 1);  // b's first sandbox is a new one
  EXPECT_EQ(supervisor_->stats().sentAheadStarted, 0u);
  // a's sandbox goes (it exited, or is killed if its exit was not in yet);
  // b's is warm.
  EXPECT_TRUE(loopUntil([&] { return supervisor_->stats().liveSandboxes == 1; }));
  EXPECT_EQ(supervisor_->stats().idleSandboxes, 1u);
}

TEST_F(SendAheadTest, CancellingOneSentAheadRetiresTheSandboxAfterItsPredecessor) {
  InvokeResult warm = startWithOneWarmSandbox(1s);
  std::string aName;
  auto a = supervisor_->invoke("steps", holding(1, &aName));
  pid_t sandbox = -1;
  {
    auto b = supervisor_->invoke("steps", R"({"tag":2})");
    // a runs, b waits in its channel.
    ASSERT_TRUE(loopUntil([&] { return supervisor_->stats().sentAhead == 1; }));
    sandbox = loopUntilRunning(aName);
    ASSERT_GT(sandbox, 0);
  }  // b's caller goes away
  testing_util::release(sandbox);
  InvokeResult first = a.wait(io_.waitScope);
  EXPECT_EQ(first.status, Status::kOk) << first.errorMessage;
  EXPECT_EQ(first.sandboxId, warm.sandboxId);
  EXPECT_TRUE(loopUntil([&] { return supervisor_->stats().liveSandboxes == 0; }));
  Stats stats = supervisor_->stats();
  // The sandbox went on to b when a ended: it is killed, not reused.
  EXPECT_EQ(stats.killsByReason["cancelled"], 1u);
  EXPECT_EQ(stats.liveSandboxes, 0u);
  EXPECT_EQ(stats.admission.cancelled, 1u);
  EXPECT_EQ(stats.sentAheadStarted, 0u);
}

TEST_F(SendAheadTest, CancellingTheRunningOneSendsTheOneAheadElsewhere) {
  InvokeResult warm = startWithOneWarmSandbox(1s);
  auto b = [&] {
    std::string aName;
    auto a = supervisor_->invoke("steps", holding(1, &aName));  // never let go
    auto b = supervisor_->invoke("steps", R"({"tag":2})");
    // a runs, b waits in its channel.
    EXPECT_TRUE(loopUntil([&] { return supervisor_->stats().sentAhead == 1; }));
    EXPECT_GT(loopUntilRunning(aName), 0);
    return b;
  }();  // a's caller goes away: its sandbox is killed before it answered
  InvokeResult second = b.wait(io_.waitScope);
  ASSERT_EQ(second.status, Status::kOk) << second.errorMessage;
  EXPECT_EQ(jsonInt(second.payload, "tag"), 2);
  EXPECT_NE(second.sandboxId, warm.sandboxId);
  EXPECT_EQ(jsonInt(second.payload, "calls"), 1);
  Stats stats = supervisor_->stats();
  EXPECT_EQ(stats.killsByReason["cancelled"], 1u);
  EXPECT_EQ(stats.invocationsByStatus["cancelled"], 1u);
  EXPECT_EQ(stats.sentAheadStarted, 0u);
}

TEST_F(SendAheadTest, NothingIsSentAheadBehindALongInvocation) {
  // The sandbox's previous call ran 20 ms, over the 1 ms bound.
  startWithOneWarmSandbox(1ms);
  ASSERT_EQ(invoke("steps", R"({"sleep":0.02})").status, Status::kOk);
  auto a = supervisor_->invoke("steps", R"({"tag":1})");
  auto b = supervisor_->invoke("steps", R"({"tag":2})");
  EXPECT_EQ(a.wait(io_.waitScope).status, Status::kOk);
  EXPECT_EQ(b.wait(io_.waitScope).status, Status::kOk);
  EXPECT_EQ(supervisor_->stats().sentAhead, 0u);
  // A short previous call, but the running one has run for longer than 1 ms
  // when the next arrives.
  std::string cName;
  auto c = supervisor_->invoke("steps", holding(3, &cName));
  pid_t sandbox = loopUntilRunning(cName);
  ASSERT_GT(sandbox, 0);
  std::this_thread::sleep_for(2ms);  // c has run for over 1 ms by now
  auto d = supervisor_->invoke("steps", R"({"tag":4})");
  runFor(10ms);
  testing_util::release(sandbox);
  EXPECT_EQ(c.wait(io_.waitScope).status, Status::kOk);
  EXPECT_EQ(d.wait(io_.waitScope).status, Status::kOk);
  EXPECT_EQ(supervisor_->stats().sentAhead, 0u);
  EXPECT_EQ(supervisor_->stats().admission.startedFromQueue, 2u);
}

TEST_F(SendAheadTest, ZeroTurnsItOff) {
  startWithOneWarmSandbox(0us);
  auto a = supervisor_->invoke("steps", R"({"tag":1})");
  auto b = supervisor_->invoke("steps", R"({"tag":2})");
  EXPECT_EQ(a.wait(io_.waitScope).status, Status::kOk);
  EXPECT_EQ(b.wait(io_.waitScope).status, Status::kOk);
  EXPECT_EQ(supervisor_->stats().sentAhead, 0u);
}

// An answer in the shared page and one in the channel behind it: nothing
// may be sent ahead behind an invocation whose answer may come through its
// page, or the next one's answer, coming through the channel first, would
// be taken for it (a caller got another's result so). With every answer's
// page watched and calls queued for one sandbox, every caller gets its own
// result and nothing is sent ahead.
TEST_F(SendAheadTest, AnAnswerInThePageIsNeverOvertakenByTheNextInTheChannel) {
  start([](Config& c) {
    c.pool.concurrency = 1;
    c.pool.queueLength = 64;
    c.pool.sendAheadUnder = 1s;
    c.testing.answerPageAlways = true;
  });
  deploySource("steps", kStepsHandler);
  constexpr int kCalls = 300, kInFlight = 32;  // within the queue's 64
  int wrong = 0, done = 0, next = 0;
  std::function<kj::Promise<void>()> call = [&]() -> kj::Promise<void> {
    if (next == kCalls) return kj::READY_NOW;
    int i = ++next;
    return supervisor_->invoke("steps", R"({"tag":)" + std::to_string(i) + "}")
        .then([&, i](InvokeResult result) {
          ++done;
          if ((result.status != Status::kOk || jsonInt(result.payload, "tag") != i) && wrong++ == 0)
            ADD_FAILURE() << "call " << i << ": " << statusName(result.status) << " "
                          << result.payload << result.errorMessage;
          return call();
        });
  };
  auto callers = kj::heapArrayBuilder<kj::Promise<void>>(kInFlight);
  for (int c = 0; c < kInFlight; ++c) callers.add(call());
  // As thatchd runs its loop: only runUntil() watches pages.
  runUntil(kj::joinPromises(callers.finish()), io_.waitScope, supervisor_->busyPoll());
  EXPECT_EQ(done, kCalls);
  EXPECT_EQ(wrong, 0);
  // Each answer came through its page, so nothing was ever sent ahead (the
  // race above needs both, and is rare; this is what rules it out).
  EXPECT_EQ(supervisor_->stats().answeredInPage, uint64_t(kCalls));
  EXPECT_EQ(supervisor_->stats().sentAhead, 0u);
}

}  // namespace
}  // namespace supervisor
