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

using testing_util::HostState;
using testing_util::run;
using testing_util::snapshot;

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
