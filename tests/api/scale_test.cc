// thatchd at scale, end to end: a thousand sandboxes prewarmed while it
// keeps answering, and three hundred cold starts asked in one go with a
// SIGTERM in their midst. No timing thresholds: what is asserted is that
// everything asked for happens, that thatchd answers throughout, and that
// it stops cleanly and leaves nothing behind.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/daemon.h"
#include "tests/testing.h"
#include "thatch/thatch.h"

namespace {

using namespace std::chrono_literals;
using testing_util::deploySource;
using testing_util::TestDaemon;

// Caps that let a thousand sandboxes of 64 MiB live at once.
constexpr char kScaleConfig[] =
    "[limits]\nmemory = \"64MiB\"\n"
    "[pool]\nmax_warm = 1500\nconcurrency = 300\nidle_ttl = \"30m\"\n"
    "[host]\nmax_warm = 1500\nmax_warm_memory = \"1TiB\"\nmax_sandboxes = 1500\n";

// Blocks until the test sends it SIGUSR1 (blocked first, so that none is
// lost; a handler installed, as the init of a pid namespace gets no signal
// from outside that it does not handle), under its event's name.
constexpr char kHeldHandler[] = R"PY(
import ctypes, signal
signal.signal(signal.SIGUSR1, lambda signum, frame: None)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
def handler(event, context):
    ctypes.CDLL(None).prctl(15, event["name"].encode(), 0, 0, 0)  # PR_SET_NAME
    signal.sigwait([signal.SIGUSR1])
    return event["name"]
)PY";

class ScaleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    before_ = testing_util::snapshot();
  }
  // Nothing of either test's sandboxes is left on the host.
  void expectNothingLeft() {
    EXPECT_EQ(testing_util::leftBehind(before_, testing_util::snapshot()), "");
  }
  testing_util::HostState before_;
};

TEST_F(ScaleTest, AThousandPrewarmedSandboxesWhileThatchdKeepsAnsweringThenSigterm) {
  constexpr unsigned kSandboxes = 1000;
  {
    TestDaemon daemon(kScaleConfig);
    auto client = thatch::Thatch::connect(daemon.socketPath());
    deploySource(*client, "hello", "def handler(event, context):\n    return 'hi'\n");
    std::atomic<bool> done{false};
    unsigned started = 0;
    std::string prewarmError;
    std::thread prewarm([&] {
      try {
        started = thatch::Thatch::connect(daemon.socketPath())->prewarm("hello", kSandboxes);
      } catch (const std::exception& e) {
        prewarmError = e.what();
      }
      done = true;
    });
    // Meanwhile thatchd answers, and the sandboxes only ever grow in number.
    std::vector<uint64_t> live;
    size_t answeredDuring = 0;
    auto bound = std::chrono::steady_clock::now() + 15min;  // for failing, not waiting
    while (!done && std::chrono::steady_clock::now() < bound) {
      client->ping();
      live.push_back(client->stats().liveSandboxes);
      answeredDuring += !done;
      // A sample now and then, not a loop that takes the cores from the prewarm.
      std::this_thread::sleep_for(20ms);
    }
    if (!done) {
      ADD_FAILURE() << "the prewarm did not finish; thatchd's log:\n" << daemon.log();
      kill(daemon.pid(), SIGKILL);  // its connection breaks, and the thread ends
    }
    prewarm.join();
    EXPECT_EQ(prewarmError, "");
    EXPECT_EQ(started, kSandboxes);
    EXPECT_GE(answeredDuring, 1u) << "no call was answered during the prewarm";
    for (size_t i = 1; i < live.size(); ++i) EXPECT_LE(live[i - 1], live[i]) << "at sample " << i;
    thatch::Stats stats = client->stats();
    EXPECT_EQ(stats.liveSandboxes, kSandboxes);
    EXPECT_EQ(stats.idleSandboxes, kSandboxes);
    EXPECT_EQ(client->invoke("hello", "{}").payload, "\"hi\"") << "one of them serves a call";
    EXPECT_EQ(daemon.stop(), 0) << daemon.log();
  }
  expectNothingLeft();
}

// Three hundred invocations asked in one go: three hundred spawn requests
// reach the zygote at once. Each handler holds until the test releases
// it, so that SIGTERM certainly comes in the midst of the burst; the drain
// lets them all finish.
TEST_F(ScaleTest, ThreeHundredColdStartsInOneGoAndASigtermInTheirMidst) {
  constexpr size_t kCalls = 300;
  {
    TestDaemon daemon(kScaleConfig);
    auto client = thatch::Thatch::connect(daemon.socketPath());
    deploySource(*client, "held", kHeldHandler);
    std::string name = testing_util::uniqueProcessName();
    std::vector<kj::Promise<thatch::Result>> calls;
    for (size_t i = 0; i < kCalls; ++i)
      calls.push_back(client->invokeAsync("held", "{\"name\": \"" + name + "\"}"));
    ASSERT_TRUE(testing_util::eventually(
        [&] {
          client->waitScope().poll();
          return !testing_util::processesNamed(name).empty();
        },
        10min))
        << "no invocation ran; thatchd's log:\n"
        << daemon.log();
    kill(daemon.pid(), SIGTERM);
    ASSERT_TRUE(testing_util::eventually([&] {
      return daemon.log().find(", draining\n") != std::string::npos;
    })) << daemon.log();
    // Every call is answered: released as its sandbox comes to hold it.
    std::vector<thatch::Result> results(kCalls);
    std::vector<bool> answered(kCalls, false);
    size_t count = 0;
    auto promises = kj::heapArrayBuilder<kj::Promise<void>>(kCalls);
    for (size_t i = 0; i < kCalls; ++i)
      promises.add(calls[i].then([&, i](thatch::Result result) {
        results[i] = std::move(result);
        answered[i] = true;
        ++count;
      }));
    auto all = kj::joinPromises(promises.finish()).eagerlyEvaluate(nullptr);
    EXPECT_TRUE(testing_util::eventually(
        [&] {
          for (pid_t pid : testing_util::processesNamed(name)) kill(pid, SIGUSR1);
          client->waitScope().poll();
          return count == kCalls;
        },
        10min))
        << count << " of " << kCalls << " answered; thatchd's log:\n"
        << daemon.log();
    size_t ok = 0, shuttingDown = 0;
    for (size_t i = 0; i < kCalls; ++i) {
      if (!answered[i]) continue;
      ok += results[i].status == thatch::Status::kOk && results[i].payload == "\"" + name + "\"";
      shuttingDown += results[i].status == thatch::Status::kShuttingDown;
    }
    EXPECT_EQ(ok + shuttingDown, kCalls) << "each call ran or was told thatchd was stopping";
    EXPECT_GE(ok, 1u);
    EXPECT_EQ(daemon.stop(), 0) << daemon.log();
  }
  expectNothingLeft();
}

}  // namespace
