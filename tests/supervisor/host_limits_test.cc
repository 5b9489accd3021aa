// The host limits that grow with the sandboxes, checked against a fake
// host: what the caps need, what is raised, and what is refused by name.

#include "supervisor/host_limits.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace supervisor {
namespace {

struct FakeHost {
  std::map<std::string, uint64_t> sysctls{
      {"vm.max_map_count", 65530},        {"kernel.pid_max", 4194304},
      {"kernel.threads-max", 192734},     {"user.max_user_namespaces", 96367},
      {"user.max_pid_namespaces", 96367}, {"user.max_mnt_namespaces", 96367},
      {"user.max_ipc_namespaces", 96367}, {"user.max_uts_namespaces", 96367},
      {"user.max_net_namespaces", 96367}, {"user.max_cgroup_namespaces", 96367}};
  rlimit files{1024, 4096};
  uint64_t mayRaiseHardTo = 0;  // 0: the hard limit may not be raised

  HostLimitProbe probe() {
    HostLimitProbe probe;
    probe.sysctl = [this](const std::string& name) -> std::optional<uint64_t> {
      auto it = sysctls.find(name);
      if (it == sysctls.end()) return std::nullopt;
      return it->second;
    };
    probe.openFiles = [this]() { return files; };
    probe.setOpenFiles = [this](const rlimit& wanted) {
      if (wanted.rlim_cur > wanted.rlim_max) return false;
      if (wanted.rlim_max > files.rlim_max && wanted.rlim_max > mayRaiseHardTo) return false;
      files = wanted;
      return true;
    };
    return probe;
  }
};

Config withSandboxes(unsigned sandboxes) {
  Config config = defaultConfig();
  config.host.maxSandboxes = sandboxes;
  return config;
}

const HostLimit* named(const std::vector<HostLimit>& limits, const std::string& name) {
  for (const HostLimit& limit : limits)
    if (limit.name == name) return &limit;
  return nullptr;
}

TEST(HostLimits, GrowWithTheSandboxesAndTheStemCells) {
  std::vector<HostLimit> few = neededLimits(withSandboxes(100));
  std::vector<HostLimit> many = neededLimits(withSandboxes(10000));
  for (const char* name :
       {"RLIMIT_NOFILE", "vm.max_map_count", "kernel.pid_max", "user.max_net_namespaces"}) {
    const HostLimit* small = named(few, name);
    const HostLimit* large = named(many, name);
    ASSERT_TRUE(small && large) << name;
    EXPECT_GT(large->needed, small->needed) << name;
    EXPECT_GE(large->needed, 10000u) << name << ": at least one per sandbox";
  }
  Config stems = withSandboxes(100);
  stems.runtimes[0].stemCells += 500;
  std::vector<HostLimit> withStems = neededLimits(stems);
  EXPECT_GT(named(withStems, "RLIMIT_NOFILE")->needed, named(few, "RLIMIT_NOFILE")->needed);
}

TEST(HostLimits, TheOpenFileLimitIsRaisedWithinTheHardLimit) {
  FakeHost host;
  host.files = {1024, 1 << 20};
  Config config = withSandboxes(2000);
  EXPECT_TRUE(ensureHostLimits(config, host.probe()).empty());
  EXPECT_GE(host.files.rlim_cur, named(neededLimits(config), "RLIMIT_NOFILE")->needed);
  EXPECT_EQ(host.files.rlim_max, rlim_t(1 << 20)) << "the hard limit was left as it was";
}

TEST(HostLimits, TheHardLimitIsRaisedWhereAllowed) {
  FakeHost host;
  host.mayRaiseHardTo = 1 << 20;  // as for root (CAP_SYS_RESOURCE)
  Config config = withSandboxes(2000);
  EXPECT_TRUE(ensureHostLimits(config, host.probe()).empty());
  EXPECT_GE(host.files.rlim_max, named(neededLimits(config), "RLIMIT_NOFILE")->needed);
}

TEST(HostLimits, AnOpenFileLimitThatCannotBeRaisedIsNamedWithItsFix) {
  FakeHost host;  // 1024/4096, and no privilege to raise the hard limit
  std::vector<HostLimit> shortLimits = ensureHostLimits(withSandboxes(2000), host.probe());
  ASSERT_EQ(shortLimits.size(), 1u);
  EXPECT_EQ(shortLimits[0].name, "RLIMIT_NOFILE");
  EXPECT_EQ(shortLimits[0].current, 4096u) << "raised as far as it could go";
  std::string text = describeShortLimits(shortLimits);
  EXPECT_NE(text.find("RLIMIT_NOFILE is 4096"), std::string::npos) << text;
  EXPECT_NE(text.find("LimitNOFILE="), std::string::npos) << text;
  EXPECT_NE(text.find("host.max_sandboxes"), std::string::npos) << text;
}

TEST(HostLimits, AShortSysctlIsNamedWithTheValueToSetAndIsNotWritten) {
  FakeHost host;
  host.files = {1 << 20, 1 << 20};
  host.sysctls["vm.max_map_count"] = 65530;
  Config config = withSandboxes(100000);
  std::vector<HostLimit> shortLimits = ensureHostLimits(config, host.probe());
  const HostLimit* maps = named(shortLimits, "vm.max_map_count");
  ASSERT_NE(maps, nullptr);
  EXPECT_EQ(maps->current, 65530u);
  std::string text = describeShortLimits(shortLimits);
  EXPECT_NE(text.find("sysctl -w vm.max_map_count=" + std::to_string(maps->needed)),
            std::string::npos)
      << text;
  EXPECT_EQ(host.sysctls["vm.max_map_count"], 65530u) << "a host-wide setting is the operator's";
  EXPECT_EQ(named(shortLimits, "RLIMIT_NOFILE"), nullptr);
  EXPECT_NE(named(shortLimits, "kernel.threads-max"), nullptr) << "192734 < 2 x 100000";
}

TEST(HostLimits, ALimitTheKernelDoesNotHaveIsNotRequired) {
  FakeHost host;
  host.files = {1 << 20, 1 << 20};
  host.sysctls.erase("user.max_cgroup_namespaces");
  EXPECT_TRUE(ensureHostLimits(withSandboxes(512), host.probe()).empty());
}

TEST(HostLimits, TheDefaultConfigurationFitsThisHost) {
  EXPECT_EQ(describeShortLimits(ensureHostLimits(defaultConfig(), HostLimitProbe::thisHost())), "");
}

}  // namespace
}  // namespace supervisor
