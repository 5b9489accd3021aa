// thatchd's SIGHUP end to end: a real thatchd reads its config again, keeps
// the warm sandboxes of functions whose settings did not change, retires
// the others, and refuses a config it cannot take while the old one still
// governs.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <string>

#include "tests/daemon.h"
#include "tests/suite_daemon.h"
#include "tests/testing.h"
#include "thatch/thatch.h"

namespace {

using testing_util::deploySource;
using testing_util::eventually;
using testing_util::TestDaemon;
using thatch::Status;

// What the sandbox was given: its context's memory limit and Lambda's
// environment variable for it.
const char kMemoryHandler[] = R"PY(
import os

def handler(event, context):
    return "%s/%s" % (context.memory_limit_in_mb, os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
)PY";

const char kLimits[] = "[limits]\nmemory = \"128MiB\"\n";

class ReloadTest : public testing_util::LeavesNothing {
 protected:
  void SetUp() override {
    LeavesNothing::SetUp();
    if (IsSkipped()) return;
    daemon_ = std::make_unique<TestDaemon>(kLimits);
    configPath_ = daemon_->dir() + "/thatchd.toml";
    config_ = testing_util::readFile(configPath_);
    client_ = thatch::Thatch::connect(daemon_->socketPath());
    thatch::FunctionConfig own;
    own.memoryBytes = 64ull << 20;
    deploySource(*client_, "f", kMemoryHandler, own);  // sets its own memory
    deploySource(*client_, "g", kMemoryHandler);       // the default's
  }
  void TearDown() override {
    client_.reset();
    if (daemon_) {
      EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
    }
    daemon_.reset();
    LeavesNothing::TearDown();
  }

  // The config with `from` replaced by `to`.
  std::string edited(const std::string& from, const std::string& to) const {
    size_t at = config_.find(from);
    EXPECT_NE(at, std::string::npos) << config_;
    return std::string(config_).replace(at, from.size(), to);
  }

  // SIGHUP with `text` as the config file (none if nullptr); returns the
  // log line thatchd wrote for it.
  std::string reload(const char* text) {
    if (text)
      testing_util::writeFile(configPath_, text);
    else
      unlink(configPath_.c_str());
    size_t from = daemon_->log().size();
    EXPECT_EQ(kill(daemon_->pid(), SIGHUP), 0);
    size_t at = std::string::npos;
    EXPECT_TRUE(eventually([&] {
      std::string log = daemon_->log();
      at = log.find("thatchd: config_reload", from);
      return at != std::string::npos && log.find('\n', at) != std::string::npos;
    })) << daemon_->log();
    std::string log = daemon_->log();
    return at == std::string::npos ? "" : log.substr(at, log.find('\n', at) - at);
  }

  thatch::Result call(const std::string& function) {
    thatch::Result result = client_->invoke(function, "{}");
    EXPECT_EQ(result.status, Status::kOk) << result.errorMessage;
    return result;
  }

  // A warm call in `sandbox` that sees `memory` MiB.
  void expectWarm(const std::string& function, uint64_t sandbox, const std::string& memory) {
    thatch::Result result = call(function);
    EXPECT_FALSE(result.cold) << function;
    EXPECT_EQ(result.sandboxId, sandbox) << function;
    EXPECT_EQ(result.payload, "\"" + memory + "/" + memory + "\"") << function;
  }

  std::unique_ptr<TestDaemon> daemon_;
  std::string configPath_, config_;
  std::unique_ptr<thatch::Thatch> client_;
};

TEST_F(ReloadTest, OnlyFunctionsWhoseSettingsChangedLoseTheirWarmSandboxes) {
  thatch::Result f = call("f"), g = call("g");
  EXPECT_EQ(f.payload, "\"64/64\"");
  EXPECT_EQ(g.payload, "\"128/128\"");
  expectWarm("f", f.sandboxId, "64");
  expectWarm("g", g.sandboxId, "128");

  // The default memory, which only g uses, and an unrelated key.
  std::string next = edited(kLimits, "[limits]\nmemory = \"96MiB\"\n[pool]\nidle_ttl = \"15m\"\n");
  std::string line = reload(next.c_str());
  EXPECT_NE(line.find("config_reloaded "), std::string::npos) << line;
  EXPECT_NE(line.find("changed=limits.memory,pool.idle_ttl"), std::string::npos) << line;

  expectWarm("f", f.sandboxId, "64");
  thatch::Result after = call("g");
  EXPECT_TRUE(after.cold);
  EXPECT_NE(after.sandboxId, g.sandboxId);
  EXPECT_EQ(after.payload, "\"96/96\"");
  EXPECT_NE(daemon_->log().find("sandbox=" + std::to_string(g.sandboxId) +
                                " function=g version=1 reason=reconfigured"),
            std::string::npos)
      << daemon_->log();
}

TEST_F(ReloadTest, ABadConfigIsRefusedWholeAndTheOldOneGoverns) {
  thatch::Result g = call("g");
  EXPECT_EQ(g.payload, "\"128/128\"");
  struct Case {
    const char* name;
    std::string text;  // "" for no file at all
    std::string expected;
  };
  const Case cases[] = {
      {"syntax", edited(kLimits, "[limits\nmemory = \"96MiB\"\n"), "reason=\"line "},
      {"range", edited(kLimits, "[limits]\nmemory = \"1MiB\"\n"),
       "limits.memory: must be at least 8MiB, not 1MiB"},
      // A reloadable key beside them changes nothing either.
      {"restart", edited(kLimits, "log_format = \"json\"\n[limits]\nmemory = \"96MiB\"\n"),
       "keys=log_format"},
      {"state_dir", edited("state_dir = \"", "state_dir = \"/var/tmp/elsewhere"), "keys=state_dir"},
      {"deleted", "", "cannot read the configuration: open: No such file or directory"},
  };
  for (const Case& c : cases) {
    std::string line = reload(c.text.empty() ? nullptr : c.text.c_str());
    EXPECT_NE(line.find("config_reload_refused "), std::string::npos) << c.name << ": " << line;
    EXPECT_NE(line.find(c.expected), std::string::npos) << c.name << ": " << line;
    expectWarm("g", g.sandboxId, "128");
  }
}

TEST_F(ReloadTest, NothingChangedIsSaidSoAndKeepsEverything) {
  thatch::Result g = call("g");
  std::string line = reload(config_.c_str());
  EXPECT_NE(line.find("config_reloaded "), std::string::npos) << line;
  EXPECT_NE(line.find("changed=\"\""), std::string::npos) << line;
  expectWarm("g", g.sandboxId, "128");
}

}  // namespace
