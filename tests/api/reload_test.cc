// thatchd's SIGHUP end to end: a real thatchd reads its config again, keeps
// the warm sandboxes of functions whose settings did not change, retires
// the others, and refuses a config it cannot take while the old one still
// governs.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
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

// The status line of an unsigned GET of the Lambda API's function list on
// 127.0.0.1:`port`; "" if it could not be asked.
std::string unsignedListFunctions(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::string request =
        "GET /2015-03-31/functions/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (write(fd, request.data(), request.size()) == ssize_t(request.size())) {
      char buffer[4096];
      ssize_t n;
      while (answer.find("\r\n") == std::string::npos && (n = read(fd, buffer, sizeof buffer)) > 0)
        answer.append(buffer, size_t(n));
    }
  }
  close(fd);
  return answer.substr(0, answer.find("\r\n"));
}

class ReloadTest : public testing_util::LeavesNothing {
 protected:
  void SetUp() override {
    LeavesNothing::SetUp();
    if (IsSkipped()) return;
    port_ = 40000 + getpid() % 20000;
    daemon_ = std::make_unique<TestDaemon>("http_listen = \"127.0.0.1:" + std::to_string(port_) +
                                           "\"\n[lambda]\nanonymous = true\n" + kLimits);
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

  int port_ = 0;
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
      {"restart",
       edited(kLimits, "[limits]\nmemory = \"96MiB\"\n").replace(0, 0, "log_format = \"json\"\n"),
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

// A sandbox busy when its settings change finishes its call, then goes.
TEST_F(ReloadTest, ABusySandboxRetiresWhenItsCallEnds) {
  deploySource(*client_, "h", testing_util::kNamingHandler);
  std::string name = testing_util::uniqueProcessName();
  auto held = client_->invokeAsync("h", testing_util::namingEvent(name, "hold"));
  std::vector<pid_t> sandbox;
  ASSERT_TRUE(eventually([&] {
    client_->waitScope().poll();
    sandbox = testing_util::processesNamed(name);
    return !sandbox.empty();
  })) << "the invocation never ran";
  std::string next = edited(kLimits, "[limits]\nmemory = \"96MiB\"\n");
  std::string line = reload(next.c_str());
  EXPECT_NE(line.find("config_reloaded "), std::string::npos) << line;
  testing_util::release(sandbox[0]);
  thatch::Result first = held.wait(client_->waitScope());
  EXPECT_EQ(first.status, Status::kOk) << first.errorMessage;
  EXPECT_EQ(first.payload, "\"" + name + "\"");  // the call in flight ran to its end
  thatch::Result second = client_->invoke("h", testing_util::namingEvent(name));
  EXPECT_EQ(second.status, Status::kOk) << second.errorMessage;
  EXPECT_TRUE(second.cold);
  EXPECT_NE(second.sandboxId, first.sandboxId);
}

// The Lambda API reads [lambda] per request: unsigned requests are let in,
// then, once anonymous is off, refused.
TEST_F(ReloadTest, TheLambdaApiFollowsTheNewConfigForNewRequests) {
  EXPECT_EQ(unsignedListFunctions(port_), "HTTP/1.1 200 OK");
  std::string next =
      edited("anonymous = true", "anonymous = false") +
      "\n[[access_key]]\nid = \"AKIDRELOAD\"\nsecret = \"reload-secret-0123456789\"\n"
      "allow = [\"invoke\"]\n";
  std::string line = reload(next.c_str());
  EXPECT_NE(line.find("changed=lambda.anonymous,access_key[0].id,access_key[0].secret,"
                      "access_key[0].allow"),
            std::string::npos)
      << line;
  EXPECT_EQ(unsignedListFunctions(port_).substr(0, 12), "HTTP/1.1 403");
}

TEST_F(ReloadTest, NothingChangedIsSaidSoAndKeepsEverything) {
  thatch::Result g = call("g");
  std::string line = reload(config_.c_str());
  EXPECT_NE(line.find("config_reloaded "), std::string::npos) << line;
  EXPECT_NE(line.find("changed=\"\""), std::string::npos) << line;
  expectWarm("g", g.sandboxId, "128");
}

}  // namespace
