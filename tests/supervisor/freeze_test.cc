// Idle sandboxes frozen ([pool] freeze_idle) and the warm-memory cap on what
// idle sandboxes use, with a real thatch-zygote on this host's cgroups: what
// a frozen sandbox's processes observed (no CPU time while frozen, progress
// again after the thaw), and that a frozen sandbox dies cleanly however it
// is destroyed.
#include <gtest/gtest.h>
#include <kj/async-io.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sandbox/cgroup.h"
#include "supervisor/supervisor.h"
#include "tests/supervisor/supervisor_fixture.h"
#include "tests/testing.h"

namespace supervisor {
namespace {

using namespace std::chrono_literals;

// A handler that, called with a name, names its process and starts a thread
// that spins for good; called without, waits until that thread has made
// progress again (so it answers only if the spinner runs).
constexpr char kSpinnerHandler[] = R"PY(
import ctypes, threading
spins = 0
def spin():
    global spins
    while True:
        spins += 1
def handler(event, context):
    if event.get("name"):
        ctypes.CDLL(None).prctl(15, event["name"].encode(), 0, 0, 0)  # PR_SET_NAME
        threading.Thread(target=spin, daemon=True).start()
        return "spinning"
    start = spins
    while spins < start + 1000:
        pass
    return "resumed"
)PY";

// Work for the host: burns 200 ms of its own CPU time, which takes a cold
// start and a full round trip through thatchd besides.
constexpr char kBurnerHandler[] = R"PY(
import time
def handler(event, context):
    start = time.thread_time()
    while time.thread_time() - start < 0.2:
        pass
    return "burnt"
)PY";

using testing_util::cpuNs;
using testing_util::freezerDirOf;
using testing_util::freezerState;

class FreezeTest : public SupervisorFixture {
 protected:
  FreezeTest() : SupervisorFixture("freeze") {}

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    try {
      if (!sandbox::detectCgroups("thatch")->canFreeze()) GTEST_SKIP() << "no cgroup freezer";
    } catch (const std::exception& e) {
      GTEST_SKIP() << "no usable cgroups: " << e.what();
    }
    SupervisorFixture::SetUp();
  }

  void removeCgroups() override {
    try {
      // A test that failed may leave a sandbox frozen: removeStale() thaws
      // and removes what the zygote did not.
      sandbox::detectCgroups(cgroupSubdir() + "/python3.11")->removeStale();
      sandbox::detectCgroups(cgroupSubdir())->remove("python3.11");
    } catch (const std::exception& e) {
      ADD_FAILURE() << "cannot remove the test's cgroup directory: " << e.what();
    }
    SupervisorFixture::removeCgroups();
  }

  void start(bool freezeIdle, std::function<void(Config&)> adjust = {}) {
    SupervisorFixture::start([&](Config& c) {
      c.limits.timeout = 30000ms;
      c.pool.freezeIdle = freezeIdle;
      if (adjust) adjust(c);
    });
  }

  // A spinner sandbox, warm and idle: its host pid (-1 if it failed).
  pid_t startSpinner() {
    deploySource("spinner", kSpinnerHandler);
    std::string name = testing_util::uniqueProcessName();
    InvokeResult started = invoke("spinner", R"({"name":")" + name + R"("})");
    EXPECT_EQ(started.status, Status::kOk) << started.errorMessage;
    std::vector<pid_t> pids = testing_util::processesNamed(name);
    EXPECT_EQ(pids.size(), 1u);
    return pids.size() == 1 ? pids[0] : -1;
  }

  bool frozenEventually(const std::string& freezerDir) {
    return loopUntil([&] { return freezerState(freezerDir) == "FROZEN"; });
  }

  // A spinner sandbox started on a thatchd that freezes idle ones (`adjust`
  // changing the rest of its config), and its freezer directory once it is
  // frozen ("" if it never is).
  struct Frozen {
    pid_t pid = -1;
    std::string freezer;
  };
  Frozen startFrozenSpinner(std::function<void(Config&)> adjust = {}) {
    start(/*freezeIdle=*/true, std::move(adjust));
    Frozen frozen;
    frozen.pid = startSpinner();
    if (frozen.pid <= 0) return frozen;
    std::string freezer = freezerDirOf(frozen.pid);
    if (!freezer.empty() && frozenEventually(freezer)) frozen.freezer = freezer;
    return frozen;
  }
};

// Without freezing, the idle spinner spends CPU: what the next test's
// measurement would see if the freezer did nothing.
TEST_F(FreezeTest, AnIdleSandboxNotFrozenKeepsSpending) {
  start(/*freezeIdle=*/false);
  pid_t spinner = startSpinner();
  ASSERT_GT(spinner, 0);
  uint64_t idle = cpuNs(spinner);
  EXPECT_TRUE(loopUntil([&] { return cpuNs(spinner) > idle; }));
  EXPECT_EQ(supervisor_->stats().frozenSandboxes, 0u);
}

TEST_F(FreezeTest, AFrozenIdleSandboxUsesNoCpuAndTheNextCallThawsIt) {
  auto [spinner, freezer] = startFrozenSpinner();
  ASSERT_GT(spinner, 0);
  ASSERT_FALSE(freezer.empty()) << "never frozen";
  EXPECT_EQ(supervisor_->stats().frozenSandboxes, 1u);
  // The kernel's freezer held on by an empty frozen cgroup of thatchd's.
  std::string hold = freezerDirOf(getpid()) + "/" + cgroupSubdir() + "/freezer-on";
  EXPECT_EQ(freezerState(hold), "FROZEN");

  // Across other work (a cold start, 200 ms of CPU, a round trip), not a
  // nanosecond of CPU for any of its threads.
  uint64_t frozen = cpuNs(spinner);
  deploySource("burner", kBurnerHandler);
  InvokeResult burnt = invoke("burner");
  ASSERT_EQ(burnt.status, Status::kOk) << burnt.errorMessage;
  EXPECT_EQ(cpuNs(spinner), frozen) << "a frozen sandbox ran";

  // The next call thaws it, in the same sandbox, and its spinner runs again.
  InvokeResult resumed = invoke("spinner");
  ASSERT_EQ(resumed.status, Status::kOk) << resumed.errorMessage;
  EXPECT_EQ(resumed.payload, "\"resumed\"");
  EXPECT_FALSE(resumed.cold);
  EXPECT_GT(cpuNs(spinner), frozen);
  Stats stats = supervisor_->stats();
  EXPECT_GE(stats.freezes, 1u);
  EXPECT_GE(stats.thaws, 1u);
  EXPECT_EQ(stats.warmStarts, 1u);
}

// Each way a frozen idle sandbox is destroyed: its function removed, its
// idle time up, thatchd shutting down. A frozen v1 task takes no SIGKILL,
// so each thaws first; the sandbox's process and cgroups go (TearDown checks
// that nothing is left).
TEST_F(FreezeTest, AFrozenSandboxDiesWhenItsFunctionIsRemoved) {
  auto [spinner, freezer] = startFrozenSpinner();
  ASSERT_GT(spinner, 0);
  ASSERT_FALSE(freezer.empty()) << "never frozen";

  EXPECT_TRUE(supervisor_->remove("spinner"));
  EXPECT_TRUE(loopUntil([&] { return supervisor_->stats().liveSandboxes == 0; }));
  EXPECT_FALSE(testing_util::exists("/proc/" + std::to_string(spinner)));
  EXPECT_FALSE(testing_util::exists(freezer)) << freezer;
  EXPECT_EQ(supervisor_->stats().killsByReason["removed"], 1u);
}

TEST_F(FreezeTest, AFrozenSandboxDiesWhenItsIdleTimeIsUp) {
  auto [spinner, freezer] = startFrozenSpinner([](Config& c) { c.pool.idleTtl = 1s; });
  ASSERT_GT(spinner, 0);
  ASSERT_FALSE(freezer.empty()) << "never frozen";

  EXPECT_TRUE(loopUntil([&] { return supervisor_->stats().liveSandboxes == 0; }));
  EXPECT_FALSE(testing_util::exists("/proc/" + std::to_string(spinner)));
  EXPECT_FALSE(testing_util::exists(freezer)) << freezer;
  EXPECT_EQ(supervisor_->stats().killsByReason["expired"], 1u);
}

TEST_F(FreezeTest, AFrozenSandboxDiesWhenThatchdShutsDown) {
  auto [spinner, freezer] = startFrozenSpinner();
  ASSERT_GT(spinner, 0);
  ASSERT_FALSE(freezer.empty()) << "never frozen";

  supervisor_->drain(5s).wait(io_.waitScope);
  EXPECT_EQ(supervisor_->stats().killsByReason["shutdown"], 1u);
  supervisor_.reset();
  EXPECT_FALSE(testing_util::exists("/proc/" + std::to_string(spinner)));
  EXPECT_FALSE(testing_util::exists(freezer)) << freezer;
  std::string hold = freezerDirOf(getpid()) + "/" + cgroupSubdir() + "/freezer-on";
  EXPECT_FALSE(testing_util::exists(hold)) << hold;
}

// The zygote stopping with a frozen sandbox (thatchd destroyed without a
// drain) kills it too: the zygote's own kill thaws first.
TEST_F(FreezeTest, AFrozenSandboxDiesWithItsZygote) {
  auto [spinner, freezer] = startFrozenSpinner();
  ASSERT_GT(spinner, 0);
  ASSERT_FALSE(freezer.empty()) << "never frozen";

  supervisor_.reset();
  EXPECT_FALSE(testing_util::exists("/proc/" + std::to_string(spinner)));
  EXPECT_FALSE(testing_util::exists(freezer)) << freezer;
}

// The host's warm-memory cap counts what idle sandboxes use, not their
// limits: a 128 MiB sandbox is kept under a 64 MiB cap, and counts what
// its cgroup reads.
TEST_F(FreezeTest, TheWarmMemoryCapCountsWhatIdleSandboxesUse) {
  start(/*freezeIdle=*/false, [](Config& c) {
    c.limits.memoryBytes = 128ull << 20;
    c.host.maxWarmMemoryBytes = 64ull << 20;
  });
  pid_t spinner = startSpinner();
  ASSERT_GT(spinner, 0);
  Stats stats = supervisor_->stats();
  EXPECT_EQ(stats.idleSandboxes, 1u) << "it was not kept under the cap";
  EXPECT_EQ(stats.pools.rejectedTooLarge, 0u);
  std::string cgroup = testing_util::memoryCgroupOf(spinner);
  ASSERT_FALSE(cgroup.empty());
  uint64_t usedNow = std::stoull(testing_util::readFile(cgroup + "/memory.usage_in_bytes"));
  EXPECT_LT(stats.idleMemoryBytes, 64ull << 20);
  // Read as it went idle: about what it uses now.
  EXPECT_GE(stats.idleMemoryBytes, usedNow / 2);
  EXPECT_LE(stats.idleMemoryBytes, usedNow * 2);
}

}  // namespace
}  // namespace supervisor
