// One thatchd shared by all the tests of a suite (starting one costs
// ~0.5 s): started by the suite's SetUpTestSuite (as root only), stopped by
// its TearDownTestSuite, which then expects a clean exit and nothing of it
// left on the host (leftBehind()).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "tests/daemon.h"
#include "tests/testing.h"

namespace testing_util {

class SuiteDaemon {
 public:
  void start(const std::string& extraToml = "") {
    if (geteuid() != 0) return;
    before_ = snapshot();
    daemon_ = std::make_unique<TestDaemon>(extraToml);
  }
  void stop() {
    if (!daemon_) return;
    EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
    daemon_.reset();
    EXPECT_EQ(leftBehind(before_, snapshot()), "");
  }
  explicit operator bool() const { return daemon_ != nullptr; }
  TestDaemon* operator->() const { return daemon_.get(); }

 private:
  HostState before_;
  std::unique_ptr<TestDaemon> daemon_;
};

// A test that needs root and must leave nothing on the host: SetUp takes a
// snapshot, TearDown compares (leftBehind()).
class LeavesNothing : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    before_ = snapshot();
  }
  void TearDown() override {
    if (geteuid() != 0) return;
    EXPECT_EQ(leftBehind(before_, snapshot()), "");
  }
  HostState before_;
};

}  // namespace testing_util
