// Faults, injected into a real thatchd: SIGKILL of thatchd under load, of a
// sandbox mid-invocation and of a zygote with spawns under way; a zygote
// that hangs; a state directory that fills up during a deploy; a sandbox
// cgroup that cannot be created; the host out of processes. Clients get an
// answer or an error, never a hang; deploys survive; nothing is left on
// the host.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
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

  // thatchd's zygote (its one child), -1 while there is none.
  pid_t zygote() {
    std::string children;
    try {
      std::string pid = std::to_string(daemon_->pid());
      children = testing_util::readFile("/proc/" + pid + "/task/" + pid + "/children");
    } catch (const std::exception&) {
      return -1;
    }
    return children.empty() ? -1 : std::stoi(children);
  }

  // Invokes until the answer is not start_failed (no zygote serves while
  // one is being replaced); the bound is for failing, not for waiting.
  thatch::Result invokeOnceServed(thatch::Thatch& client, const std::string& function) {
    thatch::Result r;
    testing_util::eventually([&] {
      r = client.invoke(function, "{}");
      return r.status != Status::kStartFailed;
    });
    return r;
  }

  // Whether process `pid` is stopped (SIGSTOP).
  static bool stopped(pid_t pid) {
    try {
      std::string stat = testing_util::readFile("/proc/" + std::to_string(pid) + "/stat");
      return stat.compare(stat.rfind(')') + 2, 1, "T") == 0;
    } catch (const std::exception&) {
      return false;
    }
  }

  // Calls of `function` on clients of their own, each a future.
  std::vector<std::future<thatch::Result>> callsOf(const std::string& function, int count) {
    std::vector<std::future<thatch::Result>> calls;
    for (int i = 0; i < count; ++i)
      calls.push_back(std::async(std::launch::async, [this, function] {
        return thatch::Thatch::connect(daemon_->socketPath())->invoke(function, "{}");
      }));
    return calls;
  }

  // The answers of `calls`, each of which must come, never a hang: one that
  // has not within the bound fails the test and is left out.
  static std::vector<thatch::Result> answersOf(std::vector<std::future<thatch::Result>>& calls) {
    std::vector<thatch::Result> answers;
    for (auto& call : calls) {
      if (call.wait_for(60s) != std::future_status::ready) {
        ADD_FAILURE() << "a call hangs";
        continue;
      }
      answers.push_back(call.get());
    }
    return answers;
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

// A zygote killed with spawn requests under way (stopped first, so that
// they wait in its socket): each of those calls is start_failed, saying
// the zygote died, none hangs; a replacement serves the next ones.
TEST_F(Fault, AZygoteKilledWithSpawnsUnderWayFailsThemAndIsReplaced) {
  daemon_ = std::make_unique<TestDaemon>();
  auto client = thatch::Thatch::connect(daemon_->socketPath());
  testing_util::deploySource(*client, "hello", kHello);
  pid_t first = zygote();
  ASSERT_GT(first, 0);
  ASSERT_EQ(kill(first, SIGSTOP), 0);
  auto calls = callsOf("hello", 4);
  ASSERT_TRUE(testing_util::eventually([&] { return client->stats().startingSandboxes == 4; }));
  ASSERT_EQ(kill(first, SIGKILL), 0);
  std::vector<thatch::Result> answers = answersOf(calls);
  ASSERT_EQ(answers.size(), calls.size());
  for (const thatch::Result& r : answers) {
    EXPECT_EQ(r.status, Status::kStartFailed);
    EXPECT_NE(r.errorMessage.find("the zygote died"), std::string::npos) << r.errorMessage;
  }
  thatch::Result next = invokeOnceServed(*client, "hello");
  EXPECT_EQ(next.status, Status::kOk) << next.errorMessage;
  EXPECT_NE(zygote(), first);
  EXPECT_EQ(client->stats().zygoteRestarts, 1u);
  client.reset();
  EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
}

// A zygote killed mid-spawn: it has forked the sandbox and stopped itself
// before saying so ([testing] zygote_stops_after_fork). The call is
// start_failed, the forked sandbox dies with its zygote, nothing of it is
// left (TearDown); the replacement, let go on at the same point, serves.
TEST_F(Fault, AZygoteKilledMidSpawnTakesItsSandboxAndIsReplaced) {
  daemon_ = std::make_unique<TestDaemon>("[testing]\nzygote_stops_after_fork = true\n");
  auto client = thatch::Thatch::connect(daemon_->socketPath());
  testing_util::deploySource(*client, "hello", kHello);
  pid_t first = zygote();
  auto call = callsOf("hello", 1);
  ASSERT_TRUE(testing_util::eventually([&] { return stopped(first); }));
  ASSERT_EQ(newSandboxes().size(), 1u);  // forked, not reported
  ASSERT_EQ(kill(first, SIGKILL), 0);
  std::vector<thatch::Result> answer = answersOf(call);
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(answer[0].status, Status::kStartFailed);
  EXPECT_NE(answer[0].errorMessage.find("the zygote died"), std::string::npos)
      << answer[0].errorMessage;
  EXPECT_TRUE(testing_util::eventually([&] { return newSandboxes().empty(); }));

  pid_t second = -1;
  ASSERT_TRUE(testing_util::eventually([&] {
    second = zygote();
    return second > 0 && second != first;
  }));
  thatch::Result next;
  ASSERT_TRUE(testing_util::eventually([&] {
    call = callsOf("hello", 1);
    // Until the replacement is ready: before, a call is start_failed at once.
    while (call[0].wait_for(10ms) != std::future_status::ready)
      if (stopped(second)) kill(second, SIGCONT);
    next = call[0].get();
    return next.status != Status::kStartFailed;
  }));
  EXPECT_EQ(next.status, Status::kOk) << next.errorMessage;
  client.reset();
  EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
}

// A zygote that hangs rather than dies (stopped): past [host]
// spawn_timeout without an answer it is killed and replaced, and the calls
// waiting on it are start_failed, saying so.
TEST_F(Fault, AHungZygoteIsKilledAndReplaced) {
  daemon_ = std::make_unique<TestDaemon>("[host]\nspawn_timeout = \"5s\"\n");
  auto client = thatch::Thatch::connect(daemon_->socketPath());
  testing_util::deploySource(*client, "hello", kHello);
  pid_t hung = zygote();
  ASSERT_GT(hung, 0);
  ASSERT_EQ(kill(hung, SIGSTOP), 0);
  auto calls = callsOf("hello", 2);
  std::vector<thatch::Result> answers = answersOf(calls);
  ASSERT_EQ(answers.size(), calls.size());
  for (const thatch::Result& r : answers) {
    EXPECT_EQ(r.status, Status::kStartFailed);
    EXPECT_NE(r.errorMessage.find("the zygote died (hung: it answered none of its"),
              std::string::npos)
        << r.errorMessage;
    EXPECT_NE(r.errorMessage.find("spawn requests in 5s ([host] spawn_timeout); killed)"),
              std::string::npos)
        << r.errorMessage;
  }
  EXPECT_NE(kill(hung, 0), 0) << "the hung zygote still runs";
  thatch::Result next = invokeOnceServed(*client, "hello");
  EXPECT_EQ(next.status, Status::kOk) << next.errorMessage;
  EXPECT_EQ(next.payload, "\"hello\"");
  client.reset();
  EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
  EXPECT_NE(daemon_->log().find("zygote_died runtime=python3.11 error=\"hung"), std::string::npos);
}

// A sandbox cgroup that cannot be created (its zygote's directory in the
// pids hierarchy renamed away, as another tool might): a cold start is
// start_failed naming the directory, warm sandboxes keep serving, and once
// the directory is back cold starts work again.
TEST_F(Fault, ACgroupThatCannotBeCreatedFailsOnlyColdStarts) {
  daemon_ = std::make_unique<TestDaemon>();
  std::string pids = testing_util::thatchCgroupDir("pids");
  if (pids.empty()) GTEST_SKIP() << "no cgroup v1 pids hierarchy";
  std::string dir = pids + daemon_->cgroupSubdir().substr(std::string("thatch").size());
  auto client = thatch::Thatch::connect(daemon_->socketPath());
  testing_util::deploySource(*client, "warm", kHello);
  testing_util::deploySource(*client, "cold", kHello);
  ASSERT_EQ(client->invoke("warm", "{}").status, Status::kOk);
  std::string runtime = dir + "/python3.11", moved = dir + "/moved-away";
  ASSERT_EQ(rename(runtime.c_str(), moved.c_str()), 0) << strerror(errno);
  struct RenameBack {
    std::string from, to;
    ~RenameBack() { rename(from.c_str(), to.c_str()); }
  } back{moved, runtime};
  thatch::Result r = client->invoke("cold", "{}");
  EXPECT_EQ(r.status, Status::kStartFailed);
  EXPECT_NE(r.errorMessage.find("mkdir " + runtime + "/sbx-"), std::string::npos) << r.errorMessage;
  EXPECT_NE(r.errorMessage.find("No such file or directory"), std::string::npos) << r.errorMessage;
  EXPECT_EQ(client->invoke("warm", "[1]").status, Status::kOk);
  ASSERT_EQ(rename(moved.c_str(), runtime.c_str()), 0) << strerror(errno);
  r = client->invoke("cold", "[2]");
  EXPECT_EQ(r.status, Status::kOk) << r.errorMessage;
  client.reset();
  EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
}

// The host out of processes, as the zygote meets it: its pids cgroup at
// its limit, its fork fails. A cold start is start_failed with the
// kernel's reason, warm sandboxes keep serving, and with room again cold
// starts work.
TEST_F(Fault, OutOfPidsFailsOnlyColdStartsWithTheReason) {
  daemon_ = std::make_unique<TestDaemon>();
  std::string pids = testing_util::thatchCgroupDir("pids");
  if (pids.empty()) GTEST_SKIP() << "no cgroup v1 pids hierarchy";
  auto client = thatch::Thatch::connect(daemon_->socketPath());
  testing_util::deploySource(*client, "warm", kHello);
  testing_util::deploySource(*client, "cold", kHello);
  ASSERT_EQ(client->invoke("warm", "{}").status, Status::kOk);
  // A cgroup of the test's for the zygote alone, at one process.
  struct Full {
    std::string dir;
    ~Full() {
      // The zygote (if it still runs) back where it was, then the cgroup goes.
      std::string procs = testing_util::readFile(dir + "/cgroup.procs");
      if (!procs.empty())
        testing_util::writeFile(std::filesystem::path(dir).parent_path().string() + "/cgroup.procs",
                                procs);
      rmdir(dir.c_str());
    }
  } full{std::filesystem::path(pids).parent_path().string() + "/thatch-fault-pids"};
  ASSERT_EQ(mkdir(full.dir.c_str(), 0755), 0) << strerror(errno);
  testing_util::writeFile(full.dir + "/cgroup.procs", std::to_string(zygote()));
  testing_util::writeFile(full.dir + "/pids.max", "1");
  thatch::Result r = client->invoke("cold", "{}");
  EXPECT_EQ(r.status, Status::kStartFailed);
  EXPECT_NE(r.errorMessage.find("Resource temporarily unavailable"), std::string::npos)
      << r.errorMessage;
  EXPECT_EQ(client->invoke("warm", "[1]").status, Status::kOk);
  testing_util::writeFile(full.dir + "/pids.max", "max");
  r = client->invoke("cold", "[2]");
  EXPECT_EQ(r.status, Status::kOk) << r.errorMessage;
  client.reset();
  EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
}

}  // namespace
