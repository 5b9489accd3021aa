// What the tests of the supervisor with real sandboxes share: a state
// directory and registry of their own, a Supervisor on this thread's event
// loop with a real thatch-zygote, a cgroup subdirectory per test process,
// and the host compared before and after each test.
#pragma once

#include <gtest/gtest.h>
#include <kj/async-io.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sandbox/cgroup.h"
#include "supervisor/supervisor.h"
#include "tests/testing.h"

namespace supervisor {

// thatchd removes whatever it finds in its cgroup subdirectory when it
// starts: each test process gets its own for each suite, under the `thatch`
// directory that testing_util::snapshot() watches, so that test runs never
// clean up each other's sandboxes.
inline std::string testCgroupSubdir(const std::string& suite) {
  return "thatch/" + suite + "-" + std::to_string(getpid());
}

inline void removeTestCgroupSubdir(const std::string& suite) {
  try {
    sandbox::detectCgroups("thatch")->remove(suite + "-" + std::to_string(getpid()));
  } catch (const std::exception& e) {
    ADD_FAILURE() << "cannot remove the test's cgroup directory: " << e.what();
  }
}

class SupervisorFixture : public ::testing::Test {
 protected:
  explicit SupervisorFixture(std::string suite) : suite_(std::move(suite)) {}

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    before_ = testing_util::snapshot();
    state_ = std::make_unique<testing_util::TempDir>("thatch-state");
    // Sandboxes open their code under it with their own uid.
    chmod(state_->path().c_str(), 0711);
    registry_ = std::make_unique<Registry>(state_->path());
  }

  void TearDown() override {
    if (!registry_) return;  // skipped
    supervisor_.reset();
    registry_.reset();
    state_.reset();
    removeCgroups();
    testing_util::HostState after = testing_util::snapshot();
    EXPECT_EQ(after.mounts, before_.mounts);
    EXPECT_TRUE(after.sandboxProcesses.empty());
    EXPECT_EQ(after.cgroups, before_.cgroups);
  }

  // What TearDown removes before it compares the host with SetUp's.
  virtual void removeCgroups() { removeTestCgroupSubdir(suite_); }

  std::string cgroupSubdir() const { return testCgroupSubdir(suite_); }

  void start(std::function<void(Config&)> adjust = {}) {
    SupervisorOptions options;
    options.config = defaultConfig();
    options.config.runtimes = {RuntimeConfig{"python3.11", 0, {}, {}}};
    options.config.limits.timeout = std::chrono::milliseconds(5000);
    options.config.cgroupSubdir = cgroupSubdir();
    if (adjust) adjust(options.config);
    options.zygoteBinary = testing_util::testBinDir() + "/../bin/thatch-zygote";
    options.logSink = [this](std::string_view line) { log_.emplace_back(line); };
    supervisor_ =
        std::make_unique<Supervisor>(options, *registry_, clock_, io_.provider->getTimer(),
                                     io_.unixEventPort, *io_.lowLevelProvider);
  }

  // A function whose handler.py is `source`.
  void deploySource(const std::string& name, const std::string& source,
                    FunctionConfig config = {}) {
    testing_util::TempDir code;
    testing_util::writeFile(code.path() + "/handler.py", source);
    registry_->deployDirectory(name, code.path(), config);
  }

  InvokeResult invoke(const std::string& name, const std::string& payload = "{}") {
    return supervisor_->invoke(name, payload).wait(io_.waitScope);
  }

  // Lets the loop run (exit events, kills) for `duration`.
  void runFor(std::chrono::milliseconds duration) {
    io_.provider->getTimer().afterDelay(duration.count() * kj::MILLISECONDS).wait(io_.waitScope);
  }

  // Runs the loop until `condition` holds (checked every 10 ms); false if it
  // does not within `bound`, which is for failing, not for waiting.
  bool loopUntil(const std::function<bool()>& condition,
                 std::chrono::seconds bound = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + bound;
    while (!condition()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      runFor(std::chrono::milliseconds(10));
    }
    return true;
  }

  // The lines the supervisor logged for `event`.
  std::vector<std::string> logLines(const std::string& event) const {
    std::vector<std::string> lines;
    for (const std::string& line : log_)
      if (line.rfind("thatchd: " + event + " ", 0) == 0) lines.push_back(line);
    return lines;
  }

  const std::string suite_;
  // Held by pointer: kj's destructors may throw, which gtest's may not.
  std::unique_ptr<kj::AsyncIoContext> ioContext_ =
      std::make_unique<kj::AsyncIoContext>(kj::setupAsyncIo());
  kj::AsyncIoContext& io_ = *ioContext_;
  SteadyClock clock_;
  testing_util::HostState before_;
  std::unique_ptr<testing_util::TempDir> state_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<Supervisor> supervisor_;
  std::vector<std::string> log_;  // what the supervisor logged
};

}  // namespace supervisor
