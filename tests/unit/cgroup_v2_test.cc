// The cgroup v2 backend against a fake cgroupfs (a plain directory tree), and
// the parsing behind detectCgroups() against other hosts' layouts.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "sandbox/cgroup.h"
#include "tests/testing.h"

namespace sandbox {
namespace {

using testing_util::exists;
using testing_util::readFile;
using testing_util::TempDir;
using testing_util::writeFile;

constexpr char kAllControllers[] = "cpuset cpu io memory hugetlb pids rdma misc\n";
constexpr char kEnabled[] = "+memory +pids +cpu";

// A fake cgroup directory, with the files the kernel would put in it.
void makeFakeCgroup(const std::string& dir, const std::string& controllers) {
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0) << dir;
  writeFile(dir + "/cgroup.controllers", controllers);
  writeFile(dir + "/cgroup.subtree_control", "");
  writeFile(dir + "/cgroup.procs", "");
}

// The kernel removes a cgroup's interface files with it; a plain directory
// must be emptied first.
void removeKernelFiles(const std::string& dir) {
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.is_regular_file()) std::filesystem::remove(entry.path());
}

// A Cgroup in the fake tree. Plays the kernel's part before the Cgroup's
// destructor runs, whether the test passed or not.
struct FakeCgroup {
  std::unique_ptr<Cgroup> cgroup;
  ~FakeCgroup() {
    if (cgroup)
      for (const std::string& path : cgroup->paths()) removeKernelFiles(path);
  }
  Cgroup* operator->() const { return cgroup.get(); }
};

// A child that sleeps until killed: a real pid that attach() may write and
// that is harmless to SIGKILL.
class SleepingChild {
 public:
  SleepingChild() : pid_(fork()) {
    if (pid_ == 0) {
      pause();
      _exit(0);
    }
  }
  ~SleepingChild() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  SleepingChild(const SleepingChild&) = delete;
  SleepingChild& operator=(const SleepingChild&) = delete;
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_;
};

class CgroupV2FakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    makeFakeCgroup(root_, kAllControllers);
    makeFakeCgroup(parent_, "");
  }

  FakeCgroup create(const std::string& name, const CgroupLimits& limits) {
    return FakeCgroup{manager()->create(name, limits)};
  }
  CgroupManager* manager() {
    if (!manager_) manager_ = makeCgroupV2(parent_);
    return manager_.get();
  }

  TempDir tmp_{"thatch-cgroup-v2"};
  std::string root_ = tmp_.path() + "/cgroup";
  std::string parent_ = root_ + "/thatch";
  std::unique_ptr<CgroupManager> manager_;
};

TEST_F(CgroupV2FakeTest, EnablesControllersInParentAndTheAncestorLackingThem) {
  manager();
  EXPECT_EQ(readFile(parent_ + "/cgroup.subtree_control"), kEnabled);
  // The parent's cgroup.controllers lacked them, so the root had to enable them.
  EXPECT_EQ(readFile(root_ + "/cgroup.subtree_control"), kEnabled);
}

TEST_F(CgroupV2FakeTest, LeavesAncestorsAloneWhenTheParentIsOfferedTheControllers) {
  writeFile(parent_ + "/cgroup.controllers", "cpu memory pids\n");
  manager();
  EXPECT_EQ(readFile(parent_ + "/cgroup.subtree_control"), kEnabled);
  EXPECT_EQ(readFile(root_ + "/cgroup.subtree_control"), "");
}

TEST_F(CgroupV2FakeTest, SkipsTheWriteWhenAlreadyEnabled) {
  writeFile(parent_ + "/cgroup.controllers", "cpu memory pids\n");
  writeFile(parent_ + "/cgroup.subtree_control", "cpu memory pids\n");
  manager();
  EXPECT_EQ(readFile(parent_ + "/cgroup.subtree_control"), "cpu memory pids\n");
}

TEST_F(CgroupV2FakeTest, EnablesEveryLevelUpToTheRoot) {
  std::string middle = root_ + "/service";
  makeFakeCgroup(middle, "");
  std::string deep = middle + "/pool";
  makeFakeCgroup(deep, "");
  auto manager = makeCgroupV2(deep);
  for (const std::string& dir : {root_, middle, deep})
    EXPECT_EQ(readFile(dir + "/cgroup.subtree_control"), kEnabled) << dir;
}

TEST_F(CgroupV2FakeTest, FailsWhenTheRootLacksAController) {
  writeFile(root_ + "/cgroup.controllers", "cpu memory\n");
  try {
    manager();
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("does not offer memory, pids and cpu"), std::string::npos)
        << e.what();
  }
}

struct LimitsCase {
  CgroupLimits limits;
  const char* memoryMax;
  const char* pidsMax;
  const char* cpuMax;
};

class CgroupV2LimitsTest : public CgroupV2FakeTest,
                           public ::testing::WithParamInterface<LimitsCase> {};

TEST_P(CgroupV2LimitsTest, WritesExactLimitFiles) {
  const LimitsCase& c = GetParam();
  FakeCgroup cgroup = create("sbx", c.limits);
  std::string dir = parent_ + "/sbx";
  ASSERT_EQ(cgroup->paths(), std::vector<std::string>{dir});
  EXPECT_EQ(readFile(dir + "/memory.max"), c.memoryMax);
  EXPECT_EQ(readFile(dir + "/memory.swap.max"), "0");
  EXPECT_EQ(readFile(dir + "/pids.max"), c.pidsMax);
  EXPECT_EQ(readFile(dir + "/cpu.max"), c.cpuMax);
}

INSTANTIATE_TEST_SUITE_P(
    Combinations, CgroupV2LimitsTest,
    ::testing::Values(LimitsCase{{0, 0, 0}, "max", "max", "max 100000"},
                      LimitsCase{{32 << 20, 8, 0.5}, "33554432", "8", "50000 100000"},
                      LimitsCase{{1ull << 30, 0, 2}, "1073741824", "max", "200000 100000"},
                      LimitsCase{{0, 100, 0.01}, "max", "100", "1000 100000"},
                      LimitsCase{{4096, 1, 1.234567}, "4096", "1", "123457 100000"}));

// A stem cell's claim replaces its limits: only the controls that change
// are written (the fake tree shows which: the others keep a marker).
TEST_F(CgroupV2FakeTest, SetLimitsWritesOnlyWhatChanges) {
  FakeCgroup cgroup = create("sbx", {64 << 20, 16, 0});
  std::string dir = parent_ + "/sbx";
  for (const char* file : {"memory.max", "memory.swap.max", "pids.max", "cpu.max"})
    writeFile(dir + "/" + file, "untouched");
  cgroup->setLimits({64 << 20, 32, 0});
  EXPECT_EQ(readFile(dir + "/pids.max"), "32");
  EXPECT_EQ(readFile(dir + "/memory.max"), "untouched");
  EXPECT_EQ(readFile(dir + "/memory.swap.max"), "untouched");
  EXPECT_EQ(readFile(dir + "/cpu.max"), "untouched");
  cgroup->setLimits({128 << 20, 32, 0.5});
  EXPECT_EQ(readFile(dir + "/memory.max"), "134217728");
  EXPECT_EQ(readFile(dir + "/cpu.max"), "50000 100000");
  EXPECT_EQ(readFile(dir + "/memory.swap.max"), "untouched");
}

TEST_F(CgroupV2FakeTest, RejectsACpuLimitBelowTheKernelMinimumAndLeavesNothing) {
  CgroupLimits limits;
  limits.cpus = 0.001;
  EXPECT_THROW(create("sbx", limits), std::invalid_argument);
  EXPECT_FALSE(exists(parent_ + "/sbx"));
}

TEST_F(CgroupV2FakeTest, RejectsNamesThatAreNotOneComponent) {
  for (const char* name : {"", ".", "..", "a/b", "../escape"})
    EXPECT_THROW(create(name, {}), std::invalid_argument) << name;
}

TEST_F(CgroupV2FakeTest, RefusesToReuseAnExistingDirectory) {
  ASSERT_EQ(mkdir((parent_ + "/taken").c_str(), 0755), 0);
  EXPECT_THROW(create("taken", {}), std::runtime_error);
  EXPECT_TRUE(exists(parent_ + "/taken"));
}

TEST_F(CgroupV2FakeTest, AttachWritesThePid) {
  SleepingChild child;
  FakeCgroup cgroup = create("sbx", {});
  cgroup->attach(child.pid());
  EXPECT_EQ(readFile(parent_ + "/sbx/cgroup.procs"), std::to_string(child.pid()));
}

TEST_F(CgroupV2FakeTest, ParsesEventsThroughTheHeldFds) {
  FakeCgroup cgroup = create("sbx", {});
  EXPECT_EQ(cgroup->eventFds().size(), 2u);
  for (int fd : cgroup->eventFds()) EXPECT_GE(fcntl(fd, F_GETFD), 0);
  CgroupEvents none = cgroup->events();
  EXPECT_EQ(none.oomKills, 0u);
  EXPECT_EQ(none.pidsMaxHits, 0u);

  writeFile(parent_ + "/sbx/memory.events",
            "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n");
  writeFile(parent_ + "/sbx/pids.events", "max 5\n");
  CgroupEvents events = cgroup->events();
  EXPECT_EQ(events.oomKills, 2u);
  EXPECT_EQ(events.pidsMaxHits, 5u);
}

TEST_F(CgroupV2FakeTest, KillAllUsesCgroupKillWhenPresent) {
  FakeCgroup cgroup = create("sbx", {});
  writeFile(parent_ + "/sbx/cgroup.kill", "");
  writeFile(parent_ + "/sbx/cgroup.procs", "");
  cgroup->killAll();
  EXPECT_EQ(readFile(parent_ + "/sbx/cgroup.kill"), "1");
}

TEST_F(CgroupV2FakeTest, DestructionRemovesTheDirectory) {
  {
    FakeCgroup cgroup = create("sbx", {});
    EXPECT_TRUE(exists(parent_ + "/sbx"));
  }
  EXPECT_FALSE(exists(parent_ + "/sbx"));
}

TEST_F(CgroupV2FakeTest, ListsAndRemovesStaleCgroups) {
  ASSERT_EQ(mkdir((parent_ + "/stale-a").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((parent_ + "/stale-b").c_str(), 0755), 0);
  EXPECT_EQ(manager()->list(), (std::vector<std::string>{"stale-a", "stale-b"}));
  {
    FakeCgroup live = create("live", {});
    EXPECT_EQ(manager()->list(), (std::vector<std::string>{"live", "stale-a", "stale-b"}));
  }
  EXPECT_EQ(manager()->removeStale(), (std::vector<std::string>{"stale-a", "stale-b"}));
  EXPECT_FALSE(exists(parent_ + "/stale-a"));
  EXPECT_FALSE(exists(parent_ + "/stale-b"));
  EXPECT_TRUE(manager()->list().empty());
}

TEST_F(CgroupV2FakeTest, RemovesOneLeftoverByName) {
  ASSERT_EQ(mkdir((parent_ + "/run-1").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((parent_ + "/run-2").c_str(), 0755), 0);
  manager()->remove("run-1");
  manager()->remove("absent");
  EXPECT_EQ(manager()->list(), std::vector<std::string>{"run-2"});
  EXPECT_THROW(manager()->remove("../thatch"), std::invalid_argument);
}

// cgroup.freeze asks; cgroup.events says when the kernel is done (the fake
// tree plays the kernel's part by writing it).
TEST_F(CgroupV2FakeTest, FreezeWritesCgroupFreezeAndTheStateFollowsCgroupEvents) {
  FakeCgroup cgroup = create("sbx", {});
  std::string dir = parent_ + "/sbx";
  writeFile(dir + "/cgroup.freeze", "0\n");
  writeFile(dir + "/cgroup.events", "populated 1\nfrozen 0\n");
  EXPECT_EQ(cgroup->freezerState(), FreezerState::kThawed);

  cgroup->freeze();
  EXPECT_EQ(readFile(dir + "/cgroup.freeze"), "1");
  EXPECT_EQ(cgroup->freezerState(), FreezerState::kFreezing) << "asked, not done yet";
  writeFile(dir + "/cgroup.events", "populated 1\nfrozen 1\n");
  EXPECT_EQ(cgroup->freezerState(), FreezerState::kFrozen);

  cgroup->thaw();
  EXPECT_EQ(readFile(dir + "/cgroup.freeze"), "0");
  writeFile(dir + "/cgroup.events", "populated 1\nfrozen 0\n");
  EXPECT_EQ(cgroup->freezerState(), FreezerState::kThawed);
}

// What thatchd uses: the same files, found by the cgroup's name.
TEST_F(CgroupV2FakeTest, FreezesThawsAndReadsMemoryByName) {
  FakeCgroup cgroup = create("sbx-7", {});
  std::string dir = parent_ + "/sbx-7";
  EXPECT_TRUE(manager()->canFreeze());
  manager()->freeze("sbx-7");
  EXPECT_EQ(readFile(dir + "/cgroup.freeze"), "1");
  writeFile(dir + "/cgroup.events", "populated 1\nfrozen 1\n");
  EXPECT_EQ(manager()->freezerState("sbx-7"), FreezerState::kFrozen);
  manager()->thaw("sbx-7");
  EXPECT_EQ(readFile(dir + "/cgroup.freeze"), "0");

  writeFile(dir + "/memory.current", "2621440\n");
  EXPECT_EQ(manager()->memoryUsage("sbx-7"), 2621440u);
  EXPECT_EQ(cgroup->memoryUsage(), 2621440u);
  writeFile(dir + "/memory.current", "lots\n");
  EXPECT_THROW(manager()->memoryUsage("sbx-7"), std::runtime_error);

  EXPECT_THROW(manager()->freeze("absent"), std::exception);
  EXPECT_THROW(manager()->memoryUsage("absent"), std::exception);
  EXPECT_THROW(manager()->freeze("../escape"), std::invalid_argument);
  EXPECT_FALSE(exists(parent_ + "/absent"));
}

TEST(CgroupFiles, FreezerStateNames) {
  EXPECT_STREQ(freezerStateName(FreezerState::kThawed), "thawed");
  EXPECT_STREQ(freezerStateName(FreezerState::kFreezing), "freezing");
  EXPECT_STREQ(freezerStateName(FreezerState::kFrozen), "frozen");
}

TEST_F(CgroupV2FakeTest, DescribesItself) {
  EXPECT_EQ(manager()->describe(), "cgroup v2 (memory, pids, cpu) under " + parent_);
}

// ---- detection -------------------------------------------------------------

// This machine: v1 controllers each at /sys/fs/cgroup/<name>, an empty cgroup2
// at /sys/fs/cgroup/unified, and a memory cgroup of our own.
constexpr char kHybridMountinfo[] =
    "22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
    "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
    "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "36 30 0:33 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
    "38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
constexpr char kHybridProcCgroup[] =
    "9:name=systemd:/\n8:pids:/\n6:freezer:/\n4:memory:/process_api/e085b8c5\n"
    "2:cpuacct:/\n1:cpu:/\n0::/\n";

// A systemd host with only cgroup2, thatchd running as a service.
constexpr char kPureV2Mountinfo[] =
    "24 29 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
    "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";
constexpr char kPureV2ProcCgroup[] = "0::/system.slice/thatchd.service\n";

auto controllersFile(const std::string& contents, std::vector<std::string>* reads = nullptr) {
  return [contents, reads](const std::string& path) {
    if (reads) reads->push_back(path);
    return contents;
  };
}

TEST(CgroupDetection, ParsesCgroupMounts) {
  std::vector<CgroupMount> mounts = parseCgroupMounts(kHybridMountinfo);
  ASSERT_EQ(mounts.size(), 7u);  // sysfs and tmpfs are not cgroups
  EXPECT_EQ(mounts[0].mountPoint, "/sys/fs/cgroup/cpu");
  EXPECT_EQ(mounts[0].root, "/");
  EXPECT_FALSE(mounts[0].unified);
  EXPECT_EQ(mounts[0].controllers, std::vector<std::string>{"cpu"});
  EXPECT_TRUE(mounts[5].controllers.empty()) << "name=systemd is not a controller";
  EXPECT_TRUE(mounts[6].unified);
  EXPECT_EQ(mounts[6].mountPoint, "/sys/fs/cgroup/unified");
}

TEST(CgroupDetection, ParsesCoMountedControllersAndEscapedPaths) {
  std::vector<CgroupMount> mounts = parseCgroupMounts(
      "31 25 0:27 /docker/abc /sys/fs/cgroup/cpu\\040and\\134more rw,nosuid shared:13 "
      "master:4 - cgroup cgroup rw,xattr,cpu,cpuacct\n");
  ASSERT_EQ(mounts.size(), 1u);
  EXPECT_EQ(mounts[0].mountPoint, "/sys/fs/cgroup/cpu and\\more");
  EXPECT_EQ(mounts[0].root, "/docker/abc");
  EXPECT_EQ(mounts[0].controllers, (std::vector<std::string>{"cpu", "cpuacct"}));
}

TEST(CgroupDetection, ParsesProcCgroup) {
  std::vector<CgroupMembership> own = parseProcCgroup("4:cpu,cpuacct:/a:b\n0::/c\n");
  ASSERT_EQ(own.size(), 2u);
  EXPECT_EQ(own[0].controllers, (std::vector<std::string>{"cpu", "cpuacct"}));
  EXPECT_EQ(own[0].path, "/a:b");
  EXPECT_TRUE(own[1].controllers.empty());
  EXPECT_EQ(own[1].path, "/c");
}

TEST(CgroupDetection, PrefersV1OnThisHostsHybridLayout) {
  CgroupPlan plan =
      planCgroups(kHybridMountinfo, kHybridProcCgroup, controllersFile("hugetlb\n"), "thatch", "");
  ASSERT_EQ(plan.version, CgroupPlan::Version::kV1);
  EXPECT_EQ(plan.v1.memoryParent, "/sys/fs/cgroup/memory/process_api/e085b8c5/thatch");
  EXPECT_EQ(plan.v1.pidsParent, "/sys/fs/cgroup/pids/thatch");
  EXPECT_EQ(plan.v1.cpuParent, "/sys/fs/cgroup/cpu/thatch");
  EXPECT_EQ(plan.v1.freezerParent, "/sys/fs/cgroup/freezer/thatch");
}

TEST(CgroupDetection, ParentOverrideIsRelativeToEachHierarchysRoot) {
  CgroupPlan plan = planCgroups(kHybridMountinfo, kHybridProcCgroup, controllersFile("hugetlb\n"),
                                "thatch", "/thatch-pool/");
  ASSERT_EQ(plan.version, CgroupPlan::Version::kV1);
  EXPECT_EQ(plan.v1.memoryParent, "/sys/fs/cgroup/memory/thatch-pool");
  EXPECT_EQ(plan.v1.pidsParent, "/sys/fs/cgroup/pids/thatch-pool");
  EXPECT_EQ(plan.v1.cpuParent, "/sys/fs/cgroup/cpu/thatch-pool");
}

TEST(CgroupDetection, UsesV2OnAPureV2SystemdHost) {
  std::vector<std::string> reads;
  CgroupPlan plan = planCgroups(
      kPureV2Mountinfo, kPureV2ProcCgroup,
      controllersFile("cpuset cpu io memory hugetlb pids rdma misc\n", &reads), "thatch", "");
  ASSERT_EQ(plan.version, CgroupPlan::Version::kV2);
  EXPECT_EQ(plan.v2Parent, "/sys/fs/cgroup/system.slice/thatchd.service/thatch");
  EXPECT_EQ(reads, std::vector<std::string>{"/sys/fs/cgroup/cgroup.controllers"});
}

TEST(CgroupDetection, PlacesUnderAMountOfASubtree) {
  // A container sees only its own part of the hierarchy mounted.
  CgroupPlan plan = planCgroups(
      "40 30 0:31 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
      "41 30 0:35 /docker/abc /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
      "42 30 0:28 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
      "5:pids:/docker/abc\n3:memory:/docker/abc/job\n2:cpu,cpuacct:/docker/abc\n",
      controllersFile(""), "thatch", "");
  ASSERT_EQ(plan.version, CgroupPlan::Version::kV1);
  EXPECT_EQ(plan.v1.memoryParent, "/sys/fs/cgroup/memory/job/thatch");
  EXPECT_EQ(plan.v1.pidsParent, "/sys/fs/cgroup/pids/thatch");
  EXPECT_EQ(plan.v1.cpuParent, "/sys/fs/cgroup/cpu,cpuacct/thatch");
  EXPECT_EQ(plan.v1.freezerParent, "") << "no freezer mounted: sandboxes cannot be frozen";
}

std::string planError(std::string_view mountinfo, std::string_view procCgroup,
                      const std::string& v2Controllers) {
  try {
    planCgroups(mountinfo, procCgroup, controllersFile(v2Controllers), "thatch", "");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(CgroupDetection, NamesWhatIsMissingWhenPidsIsNowhere) {
  std::string mountinfo =
      "31 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
      "34 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
      "40 30 0:37 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
  std::string error = planError(mountinfo, "4:memory:/\n1:cpu:/\n0::/\n", "pids\n");
  EXPECT_EQ(error,
            "no usable cgroup hierarchy for memory, pids and cpu: cgroup v1 lacks pids; "
            "cgroup v2 at /sys/fs/cgroup/unified lacks memory, cpu (it offers: pids)");
}

TEST(CgroupDetection, NamesWhatIsMissingWithoutAnyCgroupMount) {
  EXPECT_EQ(planError("22 1 0:21 / /sys rw - sysfs sysfs rw\n", "0::/\n", ""),
            "no usable cgroup hierarchy for memory, pids and cpu: cgroup v1 lacks memory, "
            "pids, cpu; cgroup v2 is not mounted");
}

TEST(CgroupDetection, RejectsV2WhenItOffersNoControllers) {
  std::string error = planError(kPureV2Mountinfo, kPureV2ProcCgroup, "");
  EXPECT_NE(error.find("cgroup v2 at /sys/fs/cgroup lacks memory, pids, cpu (it offers: none)"),
            std::string::npos)
      << error;
}

// ---- helpers ---------------------------------------------------------------

TEST(CgroupFiles, KeyedValue) {
  std::string oomControl = "oom_kill_disable 0\nunder_oom 0\noom_kill 7\n";
  EXPECT_EQ(cgroupfs::keyedValue(oomControl, "oom_kill"), 7u);
  EXPECT_EQ(cgroupfs::keyedValue(oomControl, "oom"), 0u) << "whole keys only";
  EXPECT_EQ(cgroupfs::keyedValue("", "max"), 0u);
  EXPECT_THROW(cgroupfs::keyedValue("max lots\n", "max"), std::runtime_error);
}

TEST(CgroupFiles, CpuQuota) {
  EXPECT_EQ(cgroupfs::cpuQuotaMicros(0), -1);
  EXPECT_EQ(cgroupfs::cpuQuotaMicros(0.5), 50000);
  EXPECT_EQ(cgroupfs::cpuQuotaMicros(3), 300000);
  EXPECT_THROW(cgroupfs::cpuQuotaMicros(0.005), std::invalid_argument);
  EXPECT_THROW(cgroupfs::cpuQuotaMicros(-1), std::invalid_argument);
  EXPECT_THROW(cgroupfs::cpuQuotaMicros(NAN), std::invalid_argument);
  EXPECT_THROW(cgroupfs::cpuQuotaMicros(INFINITY), std::invalid_argument);
}

TEST(CgroupFiles, JoinPath) {
  EXPECT_EQ(cgroupfs::joinPath("/sys/fs/cgroup/", "/a/"), "/sys/fs/cgroup/a");
  EXPECT_EQ(cgroupfs::joinPath("/sys/fs/cgroup", "/"), "/sys/fs/cgroup");
  EXPECT_EQ(cgroupfs::joinPath("/", "a"), "/a");
}

// thatchd under systemd with Delegate=yes on a pure v2 host: its service's
// cgroup is the one to leave for a leaf, so that controllers can be enabled
// for the sandboxes' cgroups below it.
TEST(CgroupLeaf, AV2DaemonLeavesItsServiceCgroup) {
  EXPECT_EQ(cgroupToLeave(kPureV2Mountinfo, kPureV2ProcCgroup,
                          controllersFile("cpuset cpu io memory hugetlb pids rdma misc\n")),
            "/system.slice/thatchd.service");
  // The sandboxes' parent is then that cgroup, not the leaf it moved to.
  CgroupPlan plan =
      planCgroups(kPureV2Mountinfo, "0::/system.slice/thatchd.service/thatchd-daemon\n",
                  controllersFile("cpuset cpu io memory hugetlb pids rdma misc\n"), "thatchd",
                  "/system.slice/thatchd.service/thatchd");
  ASSERT_EQ(plan.version, CgroupPlan::Version::kV2);
  EXPECT_EQ(plan.v2Parent, "/sys/fs/cgroup/system.slice/thatchd.service/thatchd");
}

TEST(CgroupLeaf, NothingToLeaveUnderV1OrInTheRootCgroup) {
  EXPECT_EQ(cgroupToLeave(kHybridMountinfo, kHybridProcCgroup, controllersFile("hugetlb\n")), "");
  EXPECT_EQ(cgroupToLeave(kPureV2Mountinfo, "0::/\n",
                          controllersFile("cpuset cpu io memory hugetlb pids rdma misc\n")),
            "");
}

// A program that starts thatch in process a second time is already in the
// leaf: it stays there, and its sandboxes go beside it again.
TEST(CgroupLeaf, AProcessAlreadyInTheLeafStaysThere) {
  EXPECT_EQ(parentIfInLeaf("/system.slice/app.service/thatchd-daemon", "thatchd-daemon"),
            "/system.slice/app.service");
  EXPECT_EQ(parentIfInLeaf("/thatchd-daemon", "thatchd-daemon"), "/");
  EXPECT_EQ(parentIfInLeaf("/system.slice/app.service", "thatchd-daemon"), "");
  EXPECT_EQ(parentIfInLeaf("/system.slice/not-thatchd-daemon", "thatchd-daemon"), "");
}

TEST(CgroupLeaf, TheMoveWritesThePidIntoTheLeafsProcs) {
  TempDir service("thatch-cgroup-leaf");
  moveIntoLeaf(service.path(), "thatchd-daemon", 4242);
  EXPECT_EQ(readFile(service.path() + "/thatchd-daemon/cgroup.procs"), "4242");
  // Again (a restart into the same leaf): the directory is reused.
  moveIntoLeaf(service.path(), "thatchd-daemon", 4343);
  EXPECT_EQ(readFile(service.path() + "/thatchd-daemon/cgroup.procs"), "4343");
}

}  // namespace
}  // namespace sandbox
