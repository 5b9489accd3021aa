// The cgroup v1 backend on the real kernel (root only). Everything lives under
// "thatch-test-<pid>" in this process's own cgroups, removed when each test
// ends, whether it passed or not.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "sandbox/cgroup.h"
#include "tests/testing.h"

namespace sandbox {
namespace {

using base::Fd;

using testing_util::exists;
using testing_util::readFile;

// A forked child that waits until released, then runs `body` and exits with
// its result. It starts in our cgroups, so a test attaches it before release.
class Child {
 public:
  explicit Child(const std::function<int()>& body) {
    int go[2];
    if (pipe2(go, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      close(go[1]);
      char byte;
      _exit(read(go[0], &byte, 1) == 1 ? body() : 99);
    }
    close(go[0]);
    go_ = Fd(go[1]);
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  void release() {
    ASSERT_EQ(write(go_.get(), "x", 1), 1);
    go_.reset();
  }
  int wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  Fd go_;
};

bool killedBySigkill(int status) {
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

int pauseForever() {
  while (true) pause();
}

// Maps and touches `bytes`, page by page, so that every page is charged.
int touchMemory(size_t bytes) {
  void* region = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (region == MAP_FAILED) return 2;
  volatile char* bytesOf = static_cast<char*>(region);
  for (size_t i = 0; i < bytes; i += 4096) bytesOf[i] = 1;
  return 0;
}

struct ForkReport {
  int error = 0;  // errno of the fork that failed; 0 if none did
  int forks = 0;  // how many succeeded before it
};

// Forks sleeping children until fork fails (at most 64, in case the limit
// does not hold), reports over `reportFd`, then kills and reaps them.
int forkUntilRefused(int reportFd) {
  std::vector<pid_t> children;
  ForkReport report;
  while (children.size() < 64) {
    pid_t pid = fork();
    if (pid == 0) pauseForever();
    if (pid < 0) {
      report.error = errno;
      break;
    }
    children.push_back(pid);
  }
  report.forks = static_cast<int>(children.size());
  bool reported = write(reportFd, &report, sizeof report) == sizeof report;
  for (pid_t pid : children) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  return reported ? 0 : 3;
}

std::vector<std::string> procsOf(const std::string& dir) {
  std::vector<std::string> pids;
  std::string contents = readFile(dir + "/cgroup.procs");
  for (size_t start = 0, end; start < contents.size(); start = end + 1) {
    end = contents.find('\n', start);
    if (end == std::string::npos) end = contents.size();
    if (end > start) pids.push_back(contents.substr(start, end - start));
  }
  return pids;
}

bool waitForProcs(const std::string& dir, size_t count) {
  return testing_util::eventually([&] { return procsOf(dir).size() == count; });
}

bool readableWithin(int fd, int timeoutMs) {
  pollfd event{fd, POLLIN, 0};
  return poll(&event, 1, timeoutMs) == 1 && (event.revents & POLLIN);
}

// Removes what a test left under its parents, then the parents themselves.
class TestParents {
 public:
  TestParents(CgroupManager* manager, std::vector<std::string> parents)
      : manager_(manager), parents_(std::move(parents)) {}
  ~TestParents() {
    try {
      manager_->removeStale();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "cleanup: removeStale: %s\n", e.what());
    }
    for (const std::string& parent : parents_)
      if (rmdir(parent.c_str()) != 0 && errno != ENOENT)
        std::fprintf(stderr, "cleanup: rmdir %s: %s\n", parent.c_str(), std::strerror(errno));
  }
  TestParents(const TestParents&) = delete;
  TestParents& operator=(const TestParents&) = delete;

 private:
  CgroupManager* manager_;
  std::vector<std::string> parents_;
};

class CgroupV1Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    CgroupPlan plan;
    try {
      plan = planCgroups(
          readFile("/proc/self/mountinfo"), readFile("/proc/self/cgroup"),
          [](const std::string& path) { return readFile(path); }, subdir_, "");
    } catch (const std::runtime_error& e) {
      GTEST_SKIP() << "no usable cgroups: " << e.what();
    }
    if (plan.version != CgroupPlan::Version::kV1) GTEST_SKIP() << "this host has no cgroup v1";
    layout_ = plan.v1;
    manager_ = detectCgroups(subdir_);
    std::vector<std::string> parents{layout_.memoryParent, layout_.pidsParent, layout_.cpuParent};
    if (!layout_.freezerParent.empty()) parents.push_back(layout_.freezerParent);
    parents_.emplace(manager_.get(), parents);
  }

  // The hierarchies a sandbox's cgroup has a directory in, in paths() order.
  std::vector<std::string> controllers() const {
    std::vector<std::string> names{"memory", "pids", "cpu"};
    if (!layout_.freezerParent.empty()) names.push_back("freezer");
    return names;
  }

  std::string subdir_ = "thatch-test-" + std::to_string(getpid());
  CgroupV1Layout layout_;
  std::unique_ptr<CgroupManager> manager_;
  std::optional<TestParents> parents_;  // after manager_: cleaned up before it goes
};

TEST_F(CgroupV1Test, DetectsV1WithParentsUnderOurOwnCgroups) {
  std::string parents = layout_.memoryParent + ", " + layout_.pidsParent + ", " + layout_.cpuParent;
  if (layout_.freezerParent.empty()) {
    EXPECT_EQ(manager_->describe(), "cgroup v1 (memory, pids, cpu) under " + parents);
    EXPECT_FALSE(manager_->canFreeze());
  } else {
    EXPECT_EQ(manager_->describe(), "cgroup v1 (memory, pids, cpu, freezer) under " + parents +
                                        ", " + layout_.freezerParent);
    EXPECT_TRUE(manager_->canFreeze());
  }
  for (const std::string& parent :
       {layout_.memoryParent, layout_.pidsParent, layout_.cpuParent, layout_.freezerParent}) {
    if (parent.empty()) continue;
    EXPECT_TRUE(exists(parent)) << parent;
    EXPECT_TRUE(parent.ends_with("/" + subdir_)) << parent;
  }
}

TEST_F(CgroupV1Test, AttachMovesTheChildIntoEachHierarchy) {
  auto cgroup = manager_->create("attach", {});
  Child child([] { return 0; });
  cgroup->attach(child.pid());

  std::vector<CgroupMembership> own =
      parseProcCgroup(readFile("/proc/" + std::to_string(child.pid()) + "/cgroup"));
  std::vector<std::string> paths = cgroup->paths();
  std::vector<std::string> controllers = this->controllers();
  ASSERT_EQ(paths.size(), controllers.size());
  for (size_t i = 0; i < controllers.size(); ++i) {
    const CgroupMembership* found = nullptr;
    for (const CgroupMembership& m : own)
      for (const std::string& c : m.controllers)
        if (c == controllers[i]) found = &m;
    ASSERT_NE(found, nullptr) << controllers[i];
    EXPECT_TRUE(found->path.ends_with("/" + subdir_ + "/attach")) << found->path;
    EXPECT_TRUE(paths[i].ends_with(found->path)) << paths[i] << " vs " << found->path;
    EXPECT_EQ(procsOf(paths[i]), std::vector<std::string>{std::to_string(child.pid())});
  }
  EXPECT_EQ(manager_->nameOf(child.pid()), "attach");
  EXPECT_EQ(manager_->nameOf(getpid()), "") << "not in any of its cgroups";
  child.release();
  int status = child.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(manager_->nameOf(child.pid()), "") << "gone";
}

TEST_F(CgroupV1Test, WritesLimitFiles) {
  CgroupLimits limits;
  limits.memoryBytes = 32 << 20;
  limits.pids = 8;
  limits.cpus = 0.5;
  auto cgroup = manager_->create("limits", limits);
  std::vector<std::string> paths = cgroup->paths();
  EXPECT_EQ(readFile(paths[0] + "/memory.limit_in_bytes"), "33554432\n");
  if (exists(paths[0] + "/memory.memsw.limit_in_bytes")) {
    EXPECT_EQ(readFile(paths[0] + "/memory.memsw.limit_in_bytes"), "33554432\n");
  } else {
    EXPECT_EQ(readFile(paths[0] + "/memory.swappiness"), "0\n");
  }
  EXPECT_EQ(readFile(paths[1] + "/pids.max"), "8\n");
  EXPECT_EQ(readFile(paths[2] + "/cpu.cfs_period_us"), "100000\n");
  EXPECT_EQ(readFile(paths[2] + "/cpu.cfs_quota_us"), "50000\n");

  auto twoCores = manager_->create("two-cores", {0, 0, 2});
  EXPECT_EQ(readFile(twoCores->paths()[2] + "/cpu.cfs_quota_us"), "200000\n");
  EXPECT_EQ(readFile(twoCores->paths()[1] + "/pids.max"), "max\n");

  // Not written (a new cgroup has them), but what the sandbox gets all the same.
  auto unlimited = manager_->create("unlimited", {});
  EXPECT_EQ(readFile(unlimited->paths()[2] + "/cpu.cfs_quota_us"), "-1\n");
  EXPECT_EQ(readFile(unlimited->paths()[2] + "/cpu.cfs_period_us"), "100000\n");
  EXPECT_EQ(readFile(unlimited->paths()[1] + "/pids.max"), "max\n");
}

// Claiming a stem cell replaces its limits in place, in either direction.
TEST_F(CgroupV1Test, SetLimitsReplacesTheLimits) {
  auto cgroup = manager_->create("relimit", {32 << 20, 8, 0});
  std::vector<std::string> paths = cgroup->paths();
  cgroup->setLimits({64 << 20, 8, 1});
  EXPECT_EQ(readFile(paths[0] + "/memory.limit_in_bytes"), "67108864\n");
  EXPECT_EQ(readFile(paths[1] + "/pids.max"), "8\n");
  EXPECT_EQ(readFile(paths[2] + "/cpu.cfs_quota_us"), "100000\n");
  cgroup->setLimits({16 << 20, 0, 0});
  EXPECT_EQ(readFile(paths[0] + "/memory.limit_in_bytes"), "16777216\n");
  if (exists(paths[0] + "/memory.memsw.limit_in_bytes")) {
    EXPECT_EQ(readFile(paths[0] + "/memory.memsw.limit_in_bytes"), "16777216\n");
  }
  EXPECT_EQ(readFile(paths[1] + "/pids.max"), "max\n");
  EXPECT_EQ(readFile(paths[2] + "/cpu.cfs_quota_us"), "-1\n");
}

TEST_F(CgroupV1Test, MemoryLimitOomKillsAndNotifies) {
  CgroupLimits limits;
  limits.memoryBytes = 32 << 20;
  auto cgroup = manager_->create("oom", limits);
  ASSERT_EQ(cgroup->eventFds().size(), 1u);
  int oomFd = cgroup->eventFds()[0];
  EXPECT_FALSE(readableWithin(oomFd, 0));

  Child child([] { return touchMemory(128 << 20); });
  cgroup->attach(child.pid());
  child.release();
  int status = child.wait();
  EXPECT_TRUE(killedBySigkill(status)) << "status " << status;

  EXPECT_TRUE(readableWithin(oomFd, 2000));
  EXPECT_GE(cgroup->events().oomKills, 1u);
  EXPECT_FALSE(readableWithin(oomFd, 0)) << "events() drains the eventfd";
}

TEST_F(CgroupV1Test, PidsLimitRefusesForkWithEagain) {
  CgroupLimits limits;
  limits.pids = 8;
  auto cgroup = manager_->create("pids", limits);
  int report[2];
  ASSERT_EQ(pipe2(report, O_CLOEXEC), 0);
  Fd reportRead(report[0]);
  Fd reportWrite(report[1]);

  Child child([&] { return forkUntilRefused(reportWrite.get()); });
  reportWrite.reset();
  cgroup->attach(child.pid());
  child.release();
  ForkReport observed;
  ASSERT_EQ(read(reportRead.get(), &observed, sizeof observed), ssize_t(sizeof observed));
  int status = child.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;

  EXPECT_EQ(observed.error, EAGAIN) << std::strerror(observed.error);
  EXPECT_EQ(observed.forks, 7) << "8 pids: the child and 7 of its own";
  EXPECT_GE(cgroup->events().pidsMaxHits, 1u);
}

TEST_F(CgroupV1Test, KillAllEmptiesTheCgroup) {
  auto cgroup = manager_->create("kill", {});
  Child child([] {
    for (int i = 0; i < 3; ++i)
      if (fork() == 0) pauseForever();
    return pauseForever();
  });
  cgroup->attach(child.pid());
  child.release();
  ASSERT_TRUE(waitForProcs(cgroup->paths()[0], 4));

  cgroup->killAll();
  for (const std::string& path : cgroup->paths()) EXPECT_TRUE(procsOf(path).empty()) << path;
  EXPECT_TRUE(killedBySigkill(child.wait()));
}

TEST_F(CgroupV1Test, DestructionKillsAndRemovesEveryDirectory) {
  auto cgroup = manager_->create("destroy", {});
  std::vector<std::string> paths = cgroup->paths();
  Child child(pauseForever);
  cgroup->attach(child.pid());
  child.release();
  EXPECT_EQ(manager_->list(), std::vector<std::string>{"destroy"});

  cgroup.reset();
  for (const std::string& path : paths) EXPECT_FALSE(exists(path)) << path;
  EXPECT_TRUE(killedBySigkill(child.wait()));
  EXPECT_TRUE(manager_->list().empty());
}

// What a crashed predecessor leaves: directories named `name` with `child` in them.
std::vector<std::string> makeLeftover(const CgroupV1Layout& layout, const std::string& name,
                                      pid_t child) {
  std::vector<std::string> dirs;
  for (const std::string& parent :
       {layout.memoryParent, layout.pidsParent, layout.cpuParent, layout.freezerParent}) {
    if (parent.empty()) continue;
    dirs.push_back(parent + "/" + name);
    if (mkdir(dirs.back().c_str(), 0755) != 0) throw std::runtime_error("mkdir " + dirs.back());
    testing_util::writeFile(dirs.back() + "/cgroup.procs", std::to_string(child));
  }
  return dirs;
}

TEST_F(CgroupV1Test, RemoveStaleKillsAndRemovesALeftover) {
  Child child(pauseForever);
  std::vector<std::string> stale = makeLeftover(layout_, "stale", child.pid());
  child.release();

  EXPECT_EQ(manager_->list(), std::vector<std::string>{"stale"});
  EXPECT_EQ(manager_->removeStale(), std::vector<std::string>{"stale"});
  for (const std::string& dir : stale) EXPECT_FALSE(exists(dir)) << dir;
  EXPECT_TRUE(killedBySigkill(child.wait()));
}

TEST_F(CgroupV1Test, RemoveKillsAndRemovesOneLeftoverByName) {
  Child child(pauseForever);
  std::vector<std::string> leftover = makeLeftover(layout_, "run-7", child.pid());
  child.release();
  auto live = manager_->create("run-8", {});

  manager_->remove("run-7");
  manager_->remove("run-9");  // absent: nothing to do
  for (const std::string& dir : leftover) EXPECT_FALSE(exists(dir)) << dir;
  EXPECT_TRUE(killedBySigkill(child.wait()));
  EXPECT_EQ(manager_->list(), std::vector<std::string>{"run-8"});
}

// ---- the freezer ------------------------------------------------------------

// A counter in memory shared with a forked child, which spins incrementing it.
class SharedCounter {
 public:
  SharedCounter()
      : value_(static_cast<std::atomic<uint64_t>*>(mmap(nullptr, sizeof(std::atomic<uint64_t>),
                                                        PROT_READ | PROT_WRITE,
                                                        MAP_SHARED | MAP_ANONYMOUS, -1, 0))) {
    if (value_ == MAP_FAILED) throw std::runtime_error("mmap failed");
    new (value_) std::atomic<uint64_t>(0);
  }
  ~SharedCounter() { munmap(value_, sizeof *value_); }
  SharedCounter(const SharedCounter&) = delete;
  SharedCounter& operator=(const SharedCounter&) = delete;

  uint64_t value() const { return value_->load(); }
  // The body of a child that spins on it.
  std::function<int()> spinner() {
    return [this] {
      while (true) value_->fetch_add(1, std::memory_order_relaxed);
      return 0;
    };
  }
  // Waits until it has moved past `from` by more than `by`.
  bool advancesPast(uint64_t from, uint64_t by = 0) const {
    return testing_util::eventually([&] { return value() > from + by; });
  }

 private:
  std::atomic<uint64_t>* value_;
};

class CgroupV1FreezerTest : public CgroupV1Test {
 protected:
  void SetUp() override {
    CgroupV1Test::SetUp();
    if (IsSkipped()) return;
    if (layout_.freezerParent.empty()) GTEST_SKIP() << "no cgroup v1 freezer on this host";
  }

  bool frozenEventually(const std::string& name) {
    return testing_util::eventually(
        [&] { return manager_->freezerState(name) == FreezerState::kFrozen; });
  }
};

// What the frozen process observed: its counter does not move while another
// process, not frozen, makes a million increments of progress; it moves
// again right after the thaw. The thatchd side uses the calls by name.
TEST_F(CgroupV1FreezerTest, AFrozenSpinnerMakesNoProgressAndResumesAfterTheThaw) {
  // Children before the cgroup: its destructor thaws and kills them before
  // theirs wait for them, should the test fail half-way.
  SharedCounter frozenCount, controlCount;
  Child spinner(frozenCount.spinner());
  Child control(controlCount.spinner());
  auto cgroup = manager_->create("spin", {});
  cgroup->attach(spinner.pid());
  spinner.release();
  ASSERT_TRUE(frozenCount.advancesPast(0));
  EXPECT_EQ(manager_->freezerState("spin"), FreezerState::kThawed);

  manager_->freeze("spin");  // returns at once; the state follows
  ASSERT_TRUE(frozenEventually("spin"));
  EXPECT_EQ(cgroup->freezerState(), FreezerState::kFrozen);
  uint64_t atFreeze = frozenCount.value();
  control.release();
  ASSERT_TRUE(controlCount.advancesPast(0, 1'000'000));
  EXPECT_EQ(frozenCount.value(), atFreeze) << "it ran while frozen";

  manager_->thaw("spin");
  EXPECT_EQ(manager_->freezerState("spin"), FreezerState::kThawed) << "the thaw is complete";
  EXPECT_TRUE(frozenCount.advancesPast(atFreeze));
}

// SIGKILL stays pending on a frozen v1 task: killAll() thaws first, or it
// would wait for an exit that never comes (and throw).
TEST_F(CgroupV1FreezerTest, KillAllKillsAFrozenCgroup) {
  SharedCounter count;
  Child child(count.spinner());
  auto cgroup = manager_->create("frozen-kill", {});
  cgroup->attach(child.pid());
  child.release();
  ASSERT_TRUE(count.advancesPast(0));
  cgroup->freeze();
  ASSERT_TRUE(frozenEventually("frozen-kill"));

  cgroup->killAll();
  for (const std::string& path : cgroup->paths()) EXPECT_TRUE(procsOf(path).empty()) << path;
  EXPECT_TRUE(killedBySigkill(child.wait()));
}

TEST_F(CgroupV1FreezerTest, DestroyingAFrozenCgroupKillsAndRemovesEveryDirectory) {
  Child child(pauseForever);
  auto cgroup = manager_->create("frozen-destroy", {});
  std::vector<std::string> paths = cgroup->paths();
  ASSERT_EQ(paths.size(), 4u);
  EXPECT_TRUE(paths[3].starts_with(layout_.freezerParent + "/")) << paths[3];
  cgroup->attach(child.pid());
  child.release();
  cgroup->freeze();
  ASSERT_TRUE(frozenEventually("frozen-destroy"));

  cgroup.reset();
  for (const std::string& path : paths) EXPECT_FALSE(exists(path)) << path;
  EXPECT_TRUE(killedBySigkill(child.wait()));
  EXPECT_TRUE(manager_->list().empty());
}

// A thatchd that died while a sandbox was idle and frozen leaves it frozen.
TEST_F(CgroupV1FreezerTest, RemoveStaleThawsKillsAndRemovesAFrozenLeftover) {
  Child child(pauseForever);
  std::vector<std::string> stale = makeLeftover(layout_, "frozen-stale", child.pid());
  ASSERT_EQ(stale.size(), 4u);
  // Should removeStale() fail, the child's destructor must not wait for a
  // frozen process.
  struct ThawOnExit {
    std::string dir;
    ~ThawOnExit() {
      if (exists(dir)) testing_util::writeFile(dir + "/freezer.state", "THAWED");
    }
  } thawOnExit{stale[3]};
  child.release();
  manager_->freeze("frozen-stale");
  ASSERT_TRUE(frozenEventually("frozen-stale"));

  EXPECT_EQ(manager_->removeStale(), std::vector<std::string>{"frozen-stale"});
  for (const std::string& dir : stale) EXPECT_FALSE(exists(dir)) << dir;
  EXPECT_TRUE(killedBySigkill(child.wait()));
}

TEST_F(CgroupV1Test, MemoryUsageCountsWhatTheProcessesTouched) {
  auto cgroup = manager_->create("usage", {});
  int report[2];
  ASSERT_EQ(pipe2(report, O_CLOEXEC), 0);
  Fd reportRead(report[0]);
  Fd reportWrite(report[1]);
  Child child([&] {
    int touched = touchMemory(16 << 20);
    if (write(reportWrite.get(), &touched, sizeof touched) != sizeof touched) return 3;
    return pauseForever();
  });
  reportWrite.reset();
  uint64_t empty = cgroup->memoryUsage();
  cgroup->attach(child.pid());
  child.release();
  int touched = -1;
  ASSERT_EQ(read(reportRead.get(), &touched, sizeof touched), ssize_t(sizeof touched));
  ASSERT_EQ(touched, 0);
  EXPECT_GE(cgroup->memoryUsage(), empty + (16u << 20));
  EXPECT_EQ(manager_->memoryUsage("usage"), cgroup->memoryUsage());
  EXPECT_THROW(manager_->memoryUsage("absent"), std::exception);
}

}  // namespace
}  // namespace sandbox
