// thatchd --check-host: every FAIL path on a fake /proc, /sys and /usr
// with fake syscall probes (each test breaks one thing of a healthy host
// and asserts that line's verdict and fix), then this host's real verdicts
// and the real thatchd --check-host and scripts/check-host.
#include "supervisor/host_check.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>

#include "tests/testing.h"

namespace supervisor {
namespace {

using testing_util::TempDir;

// A hybrid cgroup layout as on this host: v1 memory, pids, cpu and freezer,
// and an empty cgroup2 at /sys/fs/cgroup/unified.
constexpr char kHybridMountinfo[] =
    "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "36 30 0:33 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
    "38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "40 30 0:36 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
constexpr char kHybridCgroup[] = "8:pids:/\n6:freezer:/\n4:memory:/\n1:cpu:/\n0::/\n";

// Debian 12's default: the unified hierarchy alone, thatchd in its service.
constexpr char kUnifiedMountinfo[] =
    "30 22 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw\n";
constexpr char kUnifiedCgroup[] = "0::/system.slice/thatchd.service\n";

class FakeHost {
 public:
  FakeHost() {
    write("proc/sys/kernel/osrelease", "6.1.0-18-amd64\n");
    for (const char* ns : {"user", "pid", "mnt", "ipc", "uts", "cgroup", "net"})
      write(std::string("proc/self/ns/") + ns, "");
    write("proc/sys/kernel/seccomp/actions_avail",
          "kill_process kill_thread trap errno user_notif trace log allow\n");
    write("proc/self/mountinfo", kHybridMountinfo);
    write("proc/self/cgroup", kHybridCgroup);
    write("sys/fs/cgroup/unified/cgroup.controllers", "");
    write("proc/meminfo", "MemTotal:        8142452 kB\nMemFree:         6021320 kB\n");
    write("proc/filesystems", "nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\nnodev\toverlay\n\text4\n");
    write("usr/lib/python3.11/os.py", "");
    write("usr/lib/python3.11/json/__init__.py", "");
    std::filesystem::create_directories(dir_.path() + "/usr/lib/python3.11/lib-dynload");
    write("usr/lib/python3/dist-packages/numpy/__init__.py", "");
    std::map<std::string, std::string> sysctls = {{"kernel/pid_max", "4194304"},
                                                  {"kernel/threads-max", "192734"},
                                                  {"fs/nr_open", "1048576"},
                                                  {"fs/file-max", "9223372036854775807"},
                                                  {"vm/max_map_count", "262144"},
                                                  {"net/unix/max_dgram_qlen", "512"},
                                                  {"user/max_user_namespaces", "96367"},
                                                  {"user/max_pid_namespaces", "96367"},
                                                  {"user/max_mnt_namespaces", "96367"},
                                                  {"user/max_ipc_namespaces", "96367"},
                                                  {"user/max_uts_namespaces", "96367"},
                                                  {"user/max_net_namespaces", "96367"},
                                                  {"user/max_cgroup_namespaces", "96367"}};
    for (const auto& [name, value] : sysctls) write("proc/sys/" + name, value + "\n");
  }

  void write(const std::string& path, const std::string& contents) {
    std::string full = dir_.path() + "/" + path;
    std::filesystem::create_directories(std::filesystem::path(full).parent_path());
    testing_util::writeFile(full, contents);
  }
  void remove(const std::string& path) { std::filesystem::remove_all(dir_.path() + "/" + path); }

  // The fake tree's files and sysctls; the fake syscalls below.
  HostProbes probes() const {
    HostProbes probes = HostProbes::under(dir_.path());
    probes.kernel.pidfdOpen = [this]() { return pidfdOpen; };
    probes.kernel.clone3 = [this]() { return clone3; };
    probes.kernel.cloneIntoCgroup = [this](const std::string&) { return cloneIntoCgroup; };
    probes.kernel.seccompFilter = [this]() { return seccompFilter; };
    probes.kernel.userNamespace = [this]() { return userNamespace; };
    probes.kernel.privileged = [this]() { return privileged; };
    probes.limits.openFiles = [this]() { return openFiles; };
    return probes;
  }

  int pidfdOpen = 0, clone3 = 0, cloneIntoCgroup = 0, seccompFilter = 0, userNamespace = 0;
  bool privileged = true;
  rlimit openFiles{1024, 524288};

 private:
  TempDir dir_{"thatch-host-check"};
};

HostCheckReport check(const FakeHost& host, const Config& config = defaultConfig()) {
  return checkHost(config, host.probes());
}

// The line named `name` (the first, if several share it).
CheckLine lineNamed(const HostCheckReport& report, const std::string& name) {
  for (const CheckLine& line : report.lines)
    if (line.name == name) return line;
  ADD_FAILURE() << "no line " << name << " in\n" << report.render();
  return {};
}

// `name` FAILs, naming `fix`, and the whole report fails (exit 1).
void expectFail(const HostCheckReport& report, const std::string& name, const std::string& fix) {
  CheckLine line = lineNamed(report, name);
  EXPECT_EQ(line.verdict, Verdict::kFail) << report.render();
  EXPECT_NE(line.fix.find(fix), std::string::npos) << line.fix;
  EXPECT_TRUE(report.failed());
  EXPECT_NE(report.render().find("FAIL  " + name), std::string::npos) << report.render();
  EXPECT_NE(report.render().find("; fix: " + line.fix + "\n"), std::string::npos);
}

// `name` WARNs, naming `fix`, and the report does not fail (exit 0).
void expectWarn(const HostCheckReport& report, const std::string& name, const std::string& fix) {
  CheckLine line = lineNamed(report, name);
  EXPECT_EQ(line.verdict, Verdict::kWarn) << report.render();
  EXPECT_NE(line.fix.find(fix), std::string::npos) << line.fix;
  EXPECT_FALSE(report.failed()) << report.render();
}

TEST(HostCheck, AHealthyFakeHostPassesEveryCheck) {
  FakeHost host;
  HostCheckReport report = check(host);
  EXPECT_FALSE(report.failed()) << report.render();
  for (const CheckLine& line : report.lines)
    EXPECT_EQ(line.verdict, Verdict::kOk) << line.name << ": " << line.detail;
  EXPECT_GE(report.lines.size(), 30u) << report.render();
}

TEST(HostCheck, AnOldKernelFails) {
  FakeHost host;
  host.write("proc/sys/kernel/osrelease", "5.10.0-28-amd64\n");
  expectFail(check(host), "kernel", "5.12 or later");
  host.write("proc/sys/kernel/osrelease", "5.12.0\n");
  EXPECT_EQ(lineNamed(check(host), "kernel").verdict, Verdict::kOk);
}

TEST(HostCheck, EachMissingNamespaceFails) {
  const std::map<std::string, std::string> options = {
      {"user", "CONFIG_USER_NS"}, {"pid", "CONFIG_PID_NS"}, {"mnt", "CONFIG_NAMESPACES"},
      {"ipc", "CONFIG_IPC_NS"},   {"uts", "CONFIG_UTS_NS"}, {"cgroup", "CONFIG_CGROUPS"},
      {"net", "CONFIG_NET_NS"}};
  for (const auto& [ns, option] : options) {
    FakeHost host;
    host.remove("proc/self/ns/" + ns);
    expectFail(check(host), "namespace: " + ns, option);
  }
}

TEST(HostCheck, EachUserNamespaceSwitchFailsAnUnprivilegedThatchdAndWarnsRoot) {
  struct Case {
    const char* sysctl;
    const char* disabled;
    const char* enabled;
  };
  for (const Case& c : {Case{"kernel/unprivileged_userns_clone", "0", "1"},
                        Case{"kernel/apparmor_restrict_unprivileged_userns", "1", "0"}}) {
    std::string name = c.sysctl;
    name.replace(name.find('/'), 1, ".");
    FakeHost host;
    host.write(std::string("proc/sys/") + c.sysctl, c.enabled);
    EXPECT_EQ(lineNamed(check(host), name).verdict, Verdict::kOk);
    host.write(std::string("proc/sys/") + c.sysctl, c.disabled);
    host.privileged = false;
    expectFail(check(host), name, "sysctl -w " + name + "=" + c.enabled);
    host.privileged = true;
    HostCheckReport asRoot = check(host);
    EXPECT_EQ(lineNamed(asRoot, name).verdict, Verdict::kWarn) << asRoot.render();
    EXPECT_FALSE(asRoot.failed()) << asRoot.render();
  }
}

TEST(HostCheck, UserNamespacesThatCannotBeCreatedFail) {
  FakeHost host;
  host.userNamespace = ENOSPC;  // what unshare says when user.max_user_namespaces is 0
  expectFail(check(host), "user namespace creation", "user.max_user_namespaces");
  EXPECT_NE(lineNamed(check(host), "user namespace creation").detail.find(strerror(ENOSPC)),
            std::string::npos);
}

TEST(HostCheck, NoSeccompFails) {
  FakeHost host;
  host.remove("proc/sys/kernel/seccomp");
  host.seccompFilter = EINVAL;
  HostCheckReport report = check(host);
  expectFail(report, "seccomp actions", "CONFIG_SECCOMP_FILTER");
  expectFail(report, "seccomp filter", "CONFIG_SECCOMP_FILTER");
}

TEST(HostCheck, ASeccompActionMissingFails) {
  FakeHost host;
  host.write("proc/sys/kernel/seccomp/actions_avail", "kill_thread trap errno trace allow\n");
  expectFail(check(host), "seccomp actions", "4.14");
  EXPECT_NE(lineNamed(check(host), "seccomp actions").detail.find("kill_process"),
            std::string::npos);
}

TEST(HostCheck, AMissingCgroupControllerFails) {
  FakeHost host;
  std::string mountinfo = kHybridMountinfo;
  size_t memory = mountinfo.find("34 30");
  mountinfo.erase(memory, mountinfo.find('\n', memory) + 1 - memory);
  host.write("proc/self/mountinfo", mountinfo);
  HostCheckReport report = check(host);
  expectFail(report, "cgroup controller: memory", "cgroup_enable=memory");
  expectFail(report, "cgroup layout", "cgroup_enable=memory");
  EXPECT_EQ(lineNamed(report, "cgroup controller: pids").verdict, Verdict::kOk);
}

TEST(HostCheck, NoV1FreezerIsAWarning) {
  FakeHost host;
  std::string mountinfo = kHybridMountinfo;
  size_t freezer = mountinfo.find("36 30");
  mountinfo.erase(freezer, mountinfo.find('\n', freezer) + 1 - freezer);
  host.write("proc/self/mountinfo", mountinfo);
  expectWarn(check(host), "cgroup freezer", "-o freezer");
}

TEST(HostCheck, CgroupV2ControllersDelegatedPass) {
  FakeHost host;
  host.write("proc/self/mountinfo", kUnifiedMountinfo);
  host.write("proc/self/cgroup", kUnifiedCgroup);
  host.write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n");
  host.write("sys/fs/cgroup/system.slice/thatchd.service/cgroup.controllers", "cpu memory pids\n");
  HostCheckReport report = check(host);
  EXPECT_FALSE(report.failed()) << report.render();
  EXPECT_EQ(lineNamed(report, "cgroup delegation").verdict, Verdict::kOk);
  EXPECT_NE(lineNamed(report, "cgroup layout").detail.find("cgroup v2"), std::string::npos);
}

TEST(HostCheck, CgroupV2ControllersNotDelegatedFail) {
  FakeHost host;
  host.write("proc/self/mountinfo", kUnifiedMountinfo);
  host.write("proc/self/cgroup", kUnifiedCgroup);
  host.write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n");
  host.write("sys/fs/cgroup/system.slice/thatchd.service/cgroup.controllers", "memory\n");
  HostCheckReport report = check(host);
  expectFail(report, "cgroup delegation", "Delegate=yes");
  EXPECT_NE(lineNamed(report, "cgroup delegation").detail.find("pids cpu"), std::string::npos);
}

TEST(HostCheck, TheRunningServicesCgroupIsTheOneJudged) {
  FakeHost host;
  host.write("proc/self/mountinfo", kUnifiedMountinfo);
  host.write("proc/self/cgroup", "0::/user.slice/user-0.slice/session-1.scope\n");
  host.write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n");
  host.write("sys/fs/cgroup/user.slice/user-0.slice/session-1.scope/cgroup.controllers",
             "memory pids\n");
  expectFail(check(host), "cgroup delegation", "Delegate=yes");
  host.write("sys/fs/cgroup/system.slice/thatchd.service/cgroup.controllers", "cpu memory pids\n");
  HostCheckReport report = check(host);
  EXPECT_EQ(lineNamed(report, "cgroup delegation").verdict, Verdict::kOk) << report.render();
  EXPECT_NE(lineNamed(report, "cgroup delegation").detail.find("thatchd.service"),
            std::string::npos);
}

TEST(HostCheck, CgroupV2BeforeCgroupKillFails) {
  FakeHost host;
  host.write("proc/self/mountinfo", kUnifiedMountinfo);
  host.write("proc/self/cgroup", kUnifiedCgroup);
  host.write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n");
  host.write("sys/fs/cgroup/system.slice/thatchd.service/cgroup.controllers", "cpu memory pids\n");
  host.write("proc/sys/kernel/osrelease", "5.13.19\n");
  expectFail(check(host), "cgroup layout", "5.14");
  EXPECT_EQ(lineNamed(check(host), "kernel").verdict, Verdict::kOk) << "enough for cgroup v1";
}

TEST(HostCheck, CgroupV2WithoutControllersFails) {
  FakeHost host;
  host.write("proc/self/mountinfo", kUnifiedMountinfo);
  host.write("proc/self/cgroup", kUnifiedCgroup);
  host.write("sys/fs/cgroup/cgroup.controllers", "cpuset io\n");
  HostCheckReport report = check(host);
  expectFail(report, "cgroup layout", "systemd.unified_cgroup_hierarchy=1");
  expectFail(report, "cgroup controller: cpu", "systemd.unified_cgroup_hierarchy=1");
}

TEST(HostCheck, EachMissingSyscallFails) {
  FakeHost host;
  host.pidfdOpen = ENOSYS;
  expectFail(check(host), "pidfd_open", "5.3");
  host.pidfdOpen = 0;
  host.clone3 = ENOSYS;
  expectFail(check(host), "clone3", "5.3");
}

TEST(HostCheck, NoCloneIntoCgroupIsAWarningAsThatchDoesNotUseIt) {
  FakeHost host;
  host.cloneIntoCgroup = EINVAL;
  expectWarn(check(host), "CLONE_INTO_CGROUP", "5.7");
}

TEST(HostCheck, NoTmpfsFailsAndNoOverlayWarns) {
  FakeHost host;
  host.write("proc/filesystems", "nodev\tsysfs\nnodev\tproc\n\text4\n");
  HostCheckReport report = check(host);
  expectFail(report, "filesystem: tmpfs", "CONFIG_TMPFS");
  CheckLine overlay = lineNamed(report, "filesystem: overlay");
  EXPECT_EQ(overlay.verdict, Verdict::kWarn);
  EXPECT_NE(overlay.fix.find("modprobe overlay"), std::string::npos);
}

TEST(HostCheck, AMissingStdlibFails) {
  FakeHost host;
  host.remove("usr/lib/python3.11/json");
  expectFail(check(host), "runtime python3.11: stdlib packages",
             "apt-get install libpython3.11-stdlib");
  host.remove("usr/lib/python3.11/os.py");
  expectFail(check(host), "runtime python3.11: stdlib", "apt-get install libpython3.11-minimal");
}

TEST(HostCheck, MissingNumpyWarnsOnlyWhenItsRuntimeIsConfigured) {
  FakeHost host;
  host.remove("usr/lib/python3/dist-packages/numpy");
  HostCheckReport report = check(host);
  EXPECT_EQ(lineNamed(report, "runtime python3.11-numpy: numpy").verdict, Verdict::kWarn);
  EXPECT_NE(lineNamed(report, "runtime python3.11-numpy: numpy").fix.find("python3-numpy"),
            std::string::npos);
  Config plain = defaultConfig();
  plain.runtimes.resize(1);
  for (const CheckLine& line : check(host, plain).lines)
    EXPECT_NE(line.name, "runtime python3.11-numpy: numpy");
}

// One short of what 2,000 sandboxes need: FAIL for those caps, OK for the
// default ones (512), which need less.
TEST(HostCheck, EachDensityLimitBelowTheCapsFails) {
  Config config = defaultConfig();
  config.host.maxSandboxes = 2000;
  for (const HostLimit& limit : neededLimits(config)) {
    if (limit.name == "RLIMIT_NOFILE" || limit.advisory) continue;
    std::string path = limit.name;
    std::replace(path.begin(), path.end(), '.', '/');
    FakeHost host;
    host.write("proc/sys/" + path, std::to_string(limit.needed - 1) + "\n");
    expectFail(check(host, config), limit.name, "sysctl -w " + limit.name + "=");
    EXPECT_EQ(lineNamed(check(host), limit.name).verdict, Verdict::kOk) << limit.name;
  }
}

TEST(HostCheck, AShortDatagramQueueIsAWarning) {
  FakeHost host;
  host.write("proc/sys/net/unix/max_dgram_qlen", "10\n");
  expectWarn(check(host), "net.unix.max_dgram_qlen", "sysctl -w net.unix.max_dgram_qlen=512");
}

TEST(HostCheck, WarmMemoryBeyondTheHostsIsAWarning) {
  FakeHost host;
  host.write("proc/meminfo", "MemTotal:        2014452 kB\nMemFree:         1021320 kB\n");
  expectWarn(check(host), "memory", "host.max_warm_memory");  // 4 GiB by default, on 2 GiB
  Config small = defaultConfig();
  small.host.maxWarmMemoryBytes = 1ull << 30;
  EXPECT_EQ(lineNamed(check(host, small), "memory").verdict, Verdict::kOk);
}

TEST(HostCheck, OpenFilesFailOnlyWhenThatchdCannotRaiseThem) {
  Config config = defaultConfig();
  config.host.maxSandboxes = 2000;  // 9,128 files
  FakeHost host;
  host.openFiles = {1024, 4096};
  host.privileged = true;  // may raise its hard limit up to fs.nr_open
  EXPECT_EQ(lineNamed(check(host, config), "RLIMIT_NOFILE").verdict, Verdict::kOk);
  host.privileged = false;
  expectFail(check(host, config), "RLIMIT_NOFILE", "LimitNOFILE=");
  host.openFiles = {1024, 65536};  // its soft limit it raises itself
  EXPECT_EQ(lineNamed(check(host, config), "RLIMIT_NOFILE").verdict, Verdict::kOk);
}

TEST(HostCheck, TheTuningIsWhatTheChecksCompareWith) {
  Config config = defaultConfig();
  config.host.maxSandboxes = 2000;
  std::string tuning = hostTuning(config);
  for (const HostLimit& limit : neededLimits(config)) {
    std::string key = limit.name == "RLIMIT_NOFILE" ? "LimitNOFILE" : limit.name;
    EXPECT_NE(tuning.find("\n" + key + " = " + std::to_string(limit.needed) + "\n"),
              std::string::npos)
        << key << " in\n"
        << tuning;
  }
  // A host tuned to exactly those figures passes.
  FakeHost host;
  for (const HostLimit& limit : neededLimits(config)) {
    if (limit.name == "RLIMIT_NOFILE") continue;
    std::string path = limit.name;
    std::replace(path.begin(), path.end(), '.', '/');
    host.write("proc/sys/" + path, std::to_string(limit.needed));
  }
  HostCheckReport report = check(host, config);
  EXPECT_FALSE(report.failed()) << report.render();
}

// This host, as any Debian 12 machine that runs thatch's tests has it.
TEST(HostCheckThisHost, HasWhatThatchNeeds) {
  HostCheckReport report = checkHost(defaultConfig(), HostProbes::thisHost());
  for (const char* name :
       {"kernel", "namespace: user", "namespace: pid", "namespace: mnt", "namespace: net",
        "namespace: cgroup", "seccomp actions", "seccomp filter", "cgroup layout", "pidfd_open",
        "clone3", "filesystem: tmpfs", "runtime python3.11: stdlib",
        "runtime python3.11: stdlib packages", "runtime python3.11: extension modules"})
    EXPECT_EQ(lineNamed(report, name).verdict, Verdict::kOk) << name << "\n" << report.render();
  if (geteuid() == 0) {
    EXPECT_EQ(lineNamed(report, "user namespace creation").verdict, Verdict::kOk);
  }
}

TEST(HostCheckThisHost, TheProbesMakeTheRealCallsAndReportTheirErrno) {
  KernelProbe probe = KernelProbe::thisHost();
  EXPECT_EQ(probe.pidfdOpen(), 0);
  EXPECT_EQ(probe.clone3(), 0);
  EXPECT_EQ(probe.seccompFilter(), 0);
  EXPECT_EQ(probe.cloneIntoCgroup("/nonexistent-thatch-cgroup"), ENOENT);
  EXPECT_EQ(probe.privileged(), geteuid() == 0);
}

// The exit status is 1 exactly when a line FAILs; a line every host has.
void expectACheckHostRun(const testing_util::CommandResult& result) {
  EXPECT_NE(result.out.find("\nOK    namespace: user "), std::string::npos) << result.out;
  bool failed =
      result.out.rfind("FAIL  ", 0) == 0 || result.out.find("\nFAIL  ") != std::string::npos;
  EXPECT_EQ(result.exitCode, failed ? 1 : 0) << result.out << result.err;
}

TEST(HostCheckThisHost, ThatchdCheckHostAndTheScriptReport) {
  std::string thatchd = testing_util::testBinDir() + "/../bin/thatchd";
  std::string config = testing_util::repoRoot() + "/scripts/thatchd.toml";
  expectACheckHostRun(testing_util::run({thatchd, "--check-host", "--config", config}));
  testing_util::CommandResult script = testing_util::run(
      {"/usr/bin/env", "PATH=/usr/bin:/bin", testing_util::repoRoot() + "/scripts/check-host"});
  expectACheckHostRun(script);
  testing_util::CommandResult tuning = testing_util::run({thatchd, "--host-tuning"});
  EXPECT_EQ(tuning.exitCode, 0);
  EXPECT_EQ(tuning.out, hostTuning(defaultConfig()));
}

TEST(HostCheckThisHost, ABadConfigIsRefusedBeforeChecking) {
  TempDir dir("thatch-host-check");
  std::string config = dir.path() + "/bad.toml";
  testing_util::writeFile(config, "[host]\nmax_sandboxes = \"many\"\n");
  testing_util::CommandResult result = testing_util::run(
      {testing_util::testBinDir() + "/../bin/thatchd", "--check-host", "--config", config});
  EXPECT_EQ(result.exitCode, 2);
  EXPECT_NE(result.err.find("max_sandboxes"), std::string::npos) << result.err;
  EXPECT_EQ(result.out, "");
}

}  // namespace
}  // namespace supervisor
