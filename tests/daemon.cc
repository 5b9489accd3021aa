#include "tests/daemon.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <stdexcept>

#include "sandbox/cgroup.h"
#include "sandbox/egress_rules.h"

namespace testing_util {

namespace {
std::atomic<int> daemonsStarted{0};
}

TestDaemon::TestDaemon(const std::string& extraToml, const std::string& runtimeToml,
                       const std::string& socketPath) {
  dir_ = std::make_unique<TempDir>("thatchd-test");
  chmod(dir_->path().c_str(), 0711);  // sandboxes open their code below it with their own uid
  socket_ = socketPath.empty() ? dir_->path() + "/thatchd.sock" : socketPath;
  state_ = dir_->path() + "/state";
  logPath_ = dir_->path() + "/thatchd.log";
  // Below the `thatch` directory that snapshot() watches, and its own: a
  // thatchd removes whatever it finds in its subdirectory when it starts.
  cgroupName_ = "api-" + std::to_string(getpid()) + "-" + std::to_string(++daemonsStarted);
  std::string config =
      "state_dir = \"" + state_ + "\"\nsocket = \"" + socket_ + "\"\ncgroup_subdir = \"thatch/" +
      cgroupName_ + "\"\n" + extraToml + "\n" +
      (runtimeToml.empty() ? "[[runtime]]\nname = \"python3.11\"\nstem_cells = 0\n" : runtimeToml);
  writeFile(dir_->path() + "/thatchd.toml", config);
  start();
}

void TestDaemon::start() {
  if (pid_ >= 0) throw std::logic_error("thatchd is running");
  // Its log is appended to: a restart's "ready" is the one after this.
  size_t logged = log().size();
  std::string binary = testBinDir() + "/../bin/thatchd";
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    // A test process that dies (a crash, a timeout's SIGKILL) takes its
    // thatchd along, which then stops its sandboxes.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (!freopen(logPath_.c_str(), "a", stderr)) _exit(126);
    execl(binary.c_str(), "thatchd", "--config", (dir_->path() + "/thatchd.toml").c_str(), nullptr);
    _exit(127);
  }
  for (int i = 0; i < 200; ++i) {
    if (log().find("thatchd: ready", logged) != std::string::npos) return;
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      removeCgroups();  // no destructor runs when the constructor throws
      throw std::runtime_error("thatchd exited at start:\n" + log());
    }
    usleep(100'000);
  }
  std::string text = log();
  stop();
  removeCgroups();
  throw std::runtime_error("thatchd did not become ready in 20 s:\n" + text);
}

TestDaemon::~TestDaemon() {
  stop();
  removeCgroups();
}

void TestDaemon::removeCgroups() {
  try {
    sandbox::detectCgroups("thatch")->remove(cgroupName_);
  } catch (const std::exception&) {
    // Already gone: thatchd removes its own on a clean stop.
  }
  // And its egress firewall, which a killed thatchd leaves too.
  run({"/usr/sbin/nft", "-f", "-"},
      sandbox::egressRulesetRemoval(sandbox::egressTableName(cgroupSubdir())));
}

std::string TestDaemon::log() const {
  return exists(logPath_) ? readFile(logPath_) : "";
}

int TestDaemon::kill9() {
  if (pid_ < 0) return -1;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int TestDaemon::stop() {
  if (pid_ < 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  for (int i = 0; i < 300; ++i) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    usleep(100'000);
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return 128 + SIGKILL;
}

}  // namespace testing_util
