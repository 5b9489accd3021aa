// Faults, injected into a real thatchd: SIGKILL of thatchd under load and
// of a sandbox mid-invocation, and a state directory that fills up during
// a deploy. Clients get an answer or an error, never a hang; deploys
// survive; nothing is left on the host.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "tests/daemon.h"
#include "tests/suite_daemon.h"
#include "tests/testing.h"
#include "thatch/thatch.h"

namespace {

using namespace std::chrono_literals;
using testing_util::TestDaemon;
using thatch::Status;

constexpr char kHello[] = "def handler(event, context):\n    return 'hello'\n";

class Fault : public testing_util::LeavesNothing {
 protected:
  void TearDown() override {
    daemon_.reset();
    LeavesNothing::TearDown();
  }

  // Its sandbox processes that were not there before the test.
  std::set<std::string> newSandboxes() {
    std::set<std::string> now = testing_util::snapshot().sandboxProcesses, added;
    for (const std::string& pid : now)
      if (!before_.sandboxProcesses.count(pid)) added.insert(pid);
    return added;
  }

  std::unique_ptr<TestDaemon> daemon_;
};

// Eight clients each keep a call of a slow function in flight; thatchd is
// killed once calls have come back. Every client's pending call ends in an
// error (its connection is gone), none hangs; the zygote and sandboxes go
// with thatchd; a new thatchd on the same state directory has every
// function, serves them, and stops cleanly.
TEST_F(Fault, ThatchdKilledUnderLoadFailsEveryCallAndLosesNoDeploy) {
  daemon_ = std::make_unique<TestDaemon>("[pool]\nconcurrency = 8\n");
  {
    auto client = thatch::Thatch::connect(daemon_->socketPath());
    testing_util::deploySource(*client, "hello", kHello);
    testing_util::deploySource(*client, "slow", R"PY(
import time
def handler(event, context):
    time.sleep(0.05)
    return event
)PY");
  }
  std::atomic<int> answered{0};
  std::vector<std::future<std::string>> clients;
  for (int i = 0; i < 8; ++i) {
    clients.push_back(std::async(std::launch::async, [&, i]() -> std::string {
      auto client = thatch::Thatch::connect(daemon_->socketPath());
      try {
        for (;;) {
          thatch::Result r = client->invoke("slow", std::to_string(i));
          if (r.status != Status::kOk) return "status " + r.errorMessage;
          ++answered;
        }
      } catch (const thatch::Error& e) {
        return "error";
      }
    }));
  }
  ASSERT_TRUE(testing_util::eventually([&] { return answered >= 16; })) << "no calls came back:\n"
                                                                        << daemon_->log();
  EXPECT_EQ(daemon_->kill9(), 128 + SIGKILL);
  for (auto& client : clients) {
    ASSERT_EQ(client.wait_for(60s), std::future_status::ready) << "a client hangs";
    EXPECT_EQ(client.get(), "error");
  }
  // The zygote and its sandboxes die with thatchd (PR_SET_PDEATHSIG).
  EXPECT_TRUE(testing_util::eventually([&] { return newSandboxes().empty(); }))
      << "sandboxes outlived thatchd";
  daemon_->restart();
  auto client = thatch::Thatch::connect(daemon_->socketPath());
  std::vector<std::string> names;
  for (const thatch::FunctionInfo& f : client->list()) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"hello", "slow"}));
  EXPECT_EQ(client->invoke("hello", "{}").payload, "\"hello\"");
  EXPECT_EQ(client->invoke("slow", "[7]").payload, "[7]");
  client.reset();
  EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
}

// A sandbox killed while its call runs: that call is `crashed`, and the
// next is served by a new sandbox.
TEST_F(Fault, ASandboxKilledMidInvocationIsCrashedAndTheNextCallIsServed) {
  daemon_ = std::make_unique<TestDaemon>();
  auto client = thatch::Thatch::connect(daemon_->socketPath());
  testing_util::deploySource(*client, "stuck", R"PY(
import time
def handler(event, context):
    if event == 'hang':
        time.sleep(3600)
    return event
)PY");
  auto call = std::async(std::launch::async, [&] {
    auto caller = thatch::Thatch::connect(daemon_->socketPath());
    return caller->invoke("stuck", "\"hang\"");
  });
  // Running: one live sandbox, neither starting nor idle.
  ASSERT_TRUE(testing_util::eventually([&] {
    thatch::Stats s = client->stats();
    return s.liveSandboxes == 1 && s.startingSandboxes == 0 && s.idleSandboxes == 0;
  }));
  std::set<std::string> sandboxes = newSandboxes();
  ASSERT_EQ(sandboxes.size(), 1u);
  ASSERT_EQ(kill(std::stoi(*sandboxes.begin()), SIGKILL), 0);
  ASSERT_EQ(call.wait_for(60s), std::future_status::ready) << "the call hangs";
  EXPECT_EQ(call.get().status, Status::kCrashed);
  thatch::Result next = client->invoke("stuck", "\"again\"");
  EXPECT_EQ(next.status, Status::kOk) << next.errorMessage;
  EXPECT_EQ(next.payload, "\"again\"");
  client.reset();
  EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
}

// The state directory's filesystem full during a deploy: a clear error,
// the previous version intact and served, nothing half-written listed.
TEST_F(Fault, AFullStateDirectoryFailsTheDeployAndKeepsThePreviousVersion) {
  daemon_ = std::make_unique<TestDaemon>();
  ASSERT_EQ(daemon_->stop(), 0);
  // A 1 MiB tmpfs over the state directory, for a thatchd started afresh.
  testing_util::TmpfsMount tmpfs(daemon_->stateDir(), "size=1m,mode=0711");
  daemon_->restart();
  auto client = thatch::Thatch::connect(daemon_->socketPath());
  testing_util::deploySource(*client, "kept", kHello);
  testing_util::TempDir big;
  testing_util::writeFile(big.path() + "/handler.py", kHello);
  testing_util::writeFile(big.path() + "/data.bin", std::string(2 << 20, 'x'));
  try {
    client->deploy("kept", big.path());
    ADD_FAILURE() << "a deploy larger than the state directory succeeded";
  } catch (const thatch::Error& e) {
    EXPECT_NE(std::string(e.what()).find("No space left on device"), std::string::npos) << e.what();
  }
  std::vector<thatch::FunctionInfo> versions = client->versions("kept");
  ASSERT_EQ(versions.size(), 1u);
  EXPECT_EQ(versions[0].version, 1u);
  EXPECT_EQ(client->invoke("kept", "{}").payload, "\"hello\"");
  // And once there is room again, the next deploy is version 2.
  testing_util::writeFile(big.path() + "/data.bin", "small");
  EXPECT_EQ(client->deploy("kept", big.path()).version, 2u);
  client.reset();
  EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
}

}  // namespace
