// 1,000 sandboxes back to back leave no process, mount, cgroup, network
// namespace or host interface behind.

#include <dirent.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include "tests/testing.h"

namespace {

using testing_util::run;

std::set<std::string> directoryEntries(const std::string& path) {
  std::set<std::string> names;
  if (DIR* dir = opendir(path.c_str())) {
    while (dirent* e = readdir(dir))
      if (e->d_name[0] != '.') names.insert(e->d_name);
    closedir(dir);
  }
  return names;
}

struct HostState {
  size_t mounts = 0;
  std::set<ino_t> netns;
  std::set<std::string> sandboxProcesses;  // pids running as a sandbox uid
  std::set<std::string> cgroups;
  std::set<std::string> links;

  bool operator==(const HostState&) const = default;
};

// The v1 memory hierarchy's thatch directory for children of this process.
std::string thatchCgroupDir(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    size_t first = line.find(':'), second = line.find(':', first + 1);
    std::string controllers = line.substr(first + 1, second - first - 1);
    if (controllers == controller) {
      std::string own = line.substr(second + 1);
      if (own == "/") own.clear();
      return "/sys/fs/cgroup/" + controller + own + "/thatch";
    }
  }
  return "";
}

HostState snapshot() {
  HostState state;
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mountinfo, line)) ++state.mounts;
  for (const std::string& pid : directoryEntries("/proc")) {
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    struct stat st;
    if (stat(("/proc/" + pid + "/ns/net").c_str(), &st) == 0) state.netns.insert(st.st_ino);
    if (stat(("/proc/" + pid).c_str(), &st) == 0 && st.st_uid >= 1000000000u)
      state.sandboxProcesses.insert(pid);
  }
  for (const char* controller : {"memory", "pids", "cpu"})
    for (const std::string& name : directoryEntries(thatchCgroupDir(controller)))
      if (name.find('.') == std::string::npos)
        state.cgroups.insert(std::string(controller) + "/" + name);
  if (struct if_nameindex* list = if_nameindex()) {
    for (struct if_nameindex* i = list; i->if_index; ++i) state.links.insert(i->if_name);
    if_freenameindex(list);
  }
  return state;
}

TEST(Leaks, AThousandSandboxesLeaveNothingBehind) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  const std::string thatchRun = testing_util::testBinDir() + "/../bin/thatch-run";
  const std::string probeDir = testing_util::testBinDir() + ":/probe";
  // One run first, so that lazily created parents (the cgroup parent
  // directories, the id slot directory) exist in both snapshots.
  ASSERT_EQ(run({thatchRun, "--ro-bind", probeDir, "--", "/probe/thatch-probe", "true"}).exitCode,
            0);
  HostState before = snapshot();
  int failures = 0;
  for (int i = 0; i < 1000; ++i) {
    auto r = run({thatchRun, "--ro-bind", probeDir, "--", "/probe/thatch-probe", "exit",
                  std::to_string(i % 7)});
    if (r.exitCode != i % 7 && ++failures < 5) ADD_FAILURE() << "run " << i << ": " << r.err;
  }
  EXPECT_EQ(failures, 0);
  HostState after = snapshot();
  EXPECT_EQ(after.mounts, before.mounts);
  EXPECT_EQ(after.netns, before.netns);
  EXPECT_TRUE(after.sandboxProcesses.empty()) << *after.sandboxProcesses.begin();
  EXPECT_EQ(after.cgroups, before.cgroups);
  EXPECT_EQ(after.links, before.links);
}

}  // namespace
