#include "supervisor/host_check.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "sandbox/cgroup.h"

namespace supervisor {
namespace {

using Lines = std::vector<CheckLine>;

// The newest call thatch makes: mount_setattr (5.12), which makes a
// function's code read-only as it is bound into a claimed stem cell
// (sandbox::bindIntoSandbox); clone3, pidfd_open (5.3) and close_range
// (5.9) are older. cgroup v2's cgroup.kill (5.14) is checked with it.
constexpr int kMinKernel[2] = {5, 12};

// What a check sees of the host: files under the probes' root, sysctls,
// syscall probes, and the configuration whose needs it judges.
struct HostView {
  const Config& config;
  const HostProbes& probes;

  std::optional<std::string> read(const std::string& path) const {
    std::ifstream in(probes.root + path);
    if (!in) return std::nullopt;
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  bool exists(const std::string& path) const {
    struct stat st;
    return lstat((probes.root + path).c_str(), &st) == 0;
  }
};

CheckLine ok(std::string name, std::string detail) {
  return {Verdict::kOk, std::move(name), std::move(detail), ""};
}
CheckLine warn(std::string name, std::string detail, std::string fix) {
  return {Verdict::kWarn, std::move(name), std::move(detail), std::move(fix)};
}
CheckLine fail(std::string name, std::string detail, std::string fix) {
  return {Verdict::kFail, std::move(name), std::move(detail), std::move(fix)};
}

std::string trimmed(std::string text) {
  while (!text.empty() && isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

std::string errnoText(int error) {
  return std::strerror(error);
}

// The running kernel's major and minor version, if /proc says.
std::optional<std::pair<int, int>> kernelVersion(const HostView& host) {
  std::optional<std::string> release = host.read("/proc/sys/kernel/osrelease");
  int major = 0, minor = 0;
  if (!release || sscanf(release->c_str(), "%d.%d", &major, &minor) != 2) return std::nullopt;
  return std::make_pair(major, minor);
}

Lines checkKernel(const HostView& host) {
  const std::string minimum =
      std::to_string(kMinKernel[0]) + "." + std::to_string(kMinKernel[1]) + " or later";
  const std::string fix = "boot a kernel " + minimum + " (Debian 12's linux-image-amd64 is 6.1)";
  std::optional<std::pair<int, int>> version = kernelVersion(host);
  if (!version) return {fail("kernel", "cannot read /proc/sys/kernel/osrelease", fix)};
  std::string detail = trimmed(host.read("/proc/sys/kernel/osrelease").value_or("")) + " (" +
                       minimum + " needed: mount_setattr)";
  if (*version >= std::make_pair(kMinKernel[0], kMinKernel[1])) return {ok("kernel", detail)};
  return {fail("kernel", detail, fix)};
}

Lines checkNamespaces(const HostView& host) {
  struct Namespace {
    const char* name;
    const char* kernelOption;
  };
  static const Namespace kNamespaces[] = {
      {"user", "CONFIG_USER_NS"}, {"pid", "CONFIG_PID_NS"}, {"mnt", "CONFIG_NAMESPACES"},
      {"ipc", "CONFIG_IPC_NS"},   {"uts", "CONFIG_UTS_NS"}, {"cgroup", "CONFIG_CGROUPS"},
      {"net", "CONFIG_NET_NS"},
  };
  Lines lines;
  for (const Namespace& ns : kNamespaces) {
    std::string path = std::string("/proc/self/ns/") + ns.name;
    std::string name = std::string("namespace: ") + ns.name;
    if (host.exists(path))
      lines.push_back(ok(name, path));
    else
      lines.push_back(
          fail(name, "no " + path, std::string("a kernel built with ") + ns.kernelOption + "=y"));
  }
  return lines;
}

// The distributions' switches against user namespaces for unprivileged
// users: root (thatchd as a service) is exempt, a thatchd without it is not.
Lines checkUserNamespaces(const HostView& host) {
  struct Switch {
    const char* sysctl;
    uint64_t disabling;
    const char* fix;
  };
  static const Switch kSwitches[] = {
      {"kernel.unprivileged_userns_clone", 0, "sysctl -w kernel.unprivileged_userns_clone=1"},
      {"kernel.apparmor_restrict_unprivileged_userns", 1,
       "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile "
       "granting thatchd userns"},
  };
  Lines lines;
  bool privileged = host.probes.kernel.privileged();
  for (const Switch& flag : kSwitches) {
    std::string name = flag.sysctl;
    std::optional<uint64_t> value = host.probes.limits.sysctl(name);
    if (!value) {
      lines.push_back(ok(name, "not in this kernel"));
    } else if (*value != flag.disabling) {
      lines.push_back(ok(name, std::to_string(*value)));
    } else {
      std::string detail = std::to_string(*value) + ": only root may create user namespaces";
      if (privileged)
        lines.push_back(warn(name, detail + " (thatchd as root is exempt)", flag.fix));
      else
        lines.push_back(fail(name, detail + ", and this process is not root", flag.fix));
    }
  }
  int error = host.probes.kernel.userNamespace();
  if (error == 0)
    lines.push_back(ok("user namespace creation", "unshare(CLONE_NEWUSER) works"));
  else
    lines.push_back(fail("user namespace creation", "unshare(CLONE_NEWUSER): " + errnoText(error),
                         "user.max_user_namespaces above 0 and the switches above"));
  return lines;
}

Lines checkSeccomp(const HostView& host) {
  Lines lines;
  const std::string fix = "a kernel built with CONFIG_SECCOMP_FILTER=y";
  std::optional<std::string> actions = host.read("/proc/sys/kernel/seccomp/actions_avail");
  if (!actions) {
    lines.push_back(fail("seccomp actions", "no /proc/sys/kernel/seccomp/actions_avail", fix));
  } else {
    std::vector<std::string> offered = sandbox::cgroupfs::words(*actions);
    std::string missing;
    for (const char* action : {"allow", "errno", "kill_process"})
      if (std::find(offered.begin(), offered.end(), action) == offered.end())
        missing += std::string(missing.empty() ? "" : ", ") + action;
    if (missing.empty())
      lines.push_back(ok("seccomp actions", "allow, errno, kill_process available"));
    else
      lines.push_back(fail("seccomp actions", "lacks " + missing, "a kernel 4.14 or later"));
  }
  int error = host.probes.kernel.seccompFilter();
  if (error == 0)
    lines.push_back(ok("seccomp filter", "seccomp(SECCOMP_SET_MODE_FILTER) works"));
  else
    lines.push_back(
        fail("seccomp filter", "seccomp(SECCOMP_SET_MODE_FILTER): " + errnoText(error), fix));
  return lines;
}

// The host's cgroup files, read under the probes' root.
struct CgroupFiles {
  std::string mountinfo;
  std::string procCgroup;
  std::vector<sandbox::CgroupMount> mounts;

  const sandbox::CgroupMount* unified() const {
    for (const sandbox::CgroupMount& mount : mounts)
      if (mount.unified) return &mount;
    return nullptr;
  }
  // This process's cgroup in the unified hierarchy ("/" when none is listed).
  std::string ownUnified() const {
    for (const sandbox::CgroupMembership& member : sandbox::parseProcCgroup(procCgroup))
      if (member.controllers.empty()) return member.path;
    return "/";
  }
  bool v1Has(const std::string& controller) const {
    for (const sandbox::CgroupMount& mount : mounts)
      if (std::find(mount.controllers.begin(), mount.controllers.end(), controller) !=
          mount.controllers.end())
        return true;
    return false;
  }
};

CgroupFiles readCgroupFiles(const HostView& host) {
  CgroupFiles files;
  files.mountinfo = host.read("/proc/self/mountinfo").value_or("");
  files.procCgroup = host.read("/proc/self/cgroup").value_or("");
  files.mounts = sandbox::parseCgroupMounts(files.mountinfo);
  return files;
}

std::vector<std::string> unifiedWords(const HostView& host, const CgroupFiles& files,
                                      const std::string& cgroup, const char* file) {
  const sandbox::CgroupMount* unified = files.unified();
  if (!unified) return {};
  std::string dir = sandbox::cgroupfs::joinPath(unified->mountPoint, cgroup);
  return sandbox::cgroupfs::words(host.read(sandbox::cgroupfs::joinPath(dir, file)).value_or(""));
}

bool contains(const std::vector<std::string>& words, const std::string& word) {
  return std::find(words.begin(), words.end(), word) != words.end();
}

const char kServiceCgroup[] = "/system.slice/thatchd.service";

const char kCgroupFix[] =
    "mount the memory, pids and cpu controllers as cgroup v1, or boot with "
    "systemd.unified_cgroup_hierarchy=1 for cgroup v2 (cgroup_enable=memory where the "
    "memory controller is off)";

Lines checkCgroupControllers(const HostView& host, const CgroupFiles& files) {
  Lines lines;
  std::vector<std::string> v2 = unifiedWords(host, files, "/", "cgroup.controllers");
  for (const char* controller : {"memory", "pids", "cpu"}) {
    std::string where;
    if (files.v1Has(controller)) where = "cgroup v1";
    if (contains(v2, controller)) where += std::string(where.empty() ? "" : ", ") + "cgroup v2";
    std::string name = std::string("cgroup controller: ") + controller;
    if (where.empty())
      lines.push_back(fail(name, "in no hierarchy", kCgroupFix));
    else
      lines.push_back(ok(name, where));
  }
  return lines;
}

// Where thatchd will run under cgroup v2: its service's cgroup when the
// service is running, else this process's own (thatchd started from here).
std::string thatchdUnified(const HostView& host, const CgroupFiles& files) {
  const sandbox::CgroupMount* unified = files.unified();
  if (unified && host.exists(sandbox::cgroupfs::joinPath(unified->mountPoint, kServiceCgroup)))
    return kServiceCgroup;
  return files.ownUnified();
}

// cgroup v2: thatchd enables the controllers in its own cgroup's
// subtree_control, which it may only do if its parent delegated them.
CheckLine checkDelegation(const HostView& host, const CgroupFiles& files) {
  std::string own = thatchdUnified(host, files);
  std::vector<std::string> delegated = unifiedWords(host, files, own, "cgroup.controllers");
  std::string missing;
  for (const char* controller : {"memory", "pids", "cpu"})
    if (!contains(delegated, controller))
      missing += std::string(missing.empty() ? "" : " ") + controller;
  if (missing.empty()) return ok("cgroup delegation", "memory pids cpu delegated to " + own);
  return fail("cgroup delegation", own + " lacks " + missing + " in its cgroup.controllers",
              "Delegate=yes in thatchd's unit (systemctl edit thatchd), or echo +memory +pids "
              "+cpu > the parent's cgroup.subtree_control");
}

Lines checkCgroups(const HostView& host) {
  CgroupFiles files = readCgroupFiles(host);
  Lines lines;
  auto readFile = [&host](const std::string& path) { return host.read(path).value_or(""); };
  std::optional<sandbox::CgroupPlan> plan;
  try {
    plan = sandbox::planCgroups(files.mountinfo, files.procCgroup, readFile,
                                host.config.cgroupSubdir, "");
  } catch (const std::exception& e) {
    lines.push_back(fail("cgroup layout", e.what(), kCgroupFix));
  }
  for (CheckLine& line : checkCgroupControllers(host, files)) lines.push_back(std::move(line));
  if (!plan) return lines;
  if (plan->version == sandbox::CgroupPlan::Version::kV1) {
    lines.push_back(ok("cgroup layout", "cgroup v1, sandboxes under " + plan->v1.memoryParent));
    lines.push_back(ok("cgroup delegation", "cgroup v1: nothing to delegate"));
    if (plan->v1.freezerParent.empty())
      lines.push_back(warn("cgroup freezer", "no v1 freezer hierarchy: idle sandboxes not frozen",
                           "mount -t cgroup -o freezer freezer /sys/fs/cgroup/freezer"));
    else
      lines.push_back(ok("cgroup freezer", "cgroup v1 freezer"));
    return lines;
  }
  // Sandboxes are killed through cgroup.kill.
  std::optional<std::pair<int, int>> version = kernelVersion(host);
  if (version && *version < std::make_pair(5, 14))
    lines.push_back(fail("cgroup layout", "cgroup v2 without cgroup.kill (Linux 5.14)",
                         "a kernel 5.14 or later, or cgroup v1 controllers"));
  else
    lines.push_back(ok("cgroup layout", "cgroup v2, sandboxes under " + plan->v2Parent));
  lines.push_back(checkDelegation(host, files));
  lines.push_back(ok("cgroup freezer", "cgroup v2 cgroup.freeze"));
  return lines;
}

CheckLine syscallLine(const char* name, int error, const char* since) {
  if (error == 0) return ok(name, "works");
  return fail(name, errnoText(error), std::string("a kernel ") + since + " or later");
}

Lines checkSyscalls(const HostView& host) {
  const KernelProbe& kernel = host.probes.kernel;
  Lines lines;
  lines.push_back(syscallLine("pidfd_open", kernel.pidfdOpen(), "5.3"));
  lines.push_back(syscallLine("clone3", kernel.clone3(), "5.3"));
  // Not used by thatch yet (it attaches after the clone): a warning at most.
  CgroupFiles files = readCgroupFiles(host);
  const sandbox::CgroupMount* unified = files.unified();
  if (!unified) {
    lines.push_back(warn("CLONE_INTO_CGROUP", "no cgroup2 mount to probe it in",
                         "mount -t cgroup2 none /sys/fs/cgroup/unified"));
    return lines;
  }
  std::string dir =
      host.probes.root + sandbox::cgroupfs::joinPath(unified->mountPoint, files.ownUnified());
  int error = kernel.cloneIntoCgroup(dir);
  if (error == 0)
    lines.push_back(ok("CLONE_INTO_CGROUP", "works"));
  else
    lines.push_back(warn("CLONE_INTO_CGROUP", errnoText(error) + " (not used by thatch yet)",
                         "a kernel 5.7 or later"));
  return lines;
}

Lines checkFilesystems(const HostView& host) {
  std::string filesystems = host.read("/proc/filesystems").value_or("");
  auto has = [&filesystems](const std::string& type) {
    return contains(sandbox::cgroupfs::words(filesystems), type);
  };
  Lines lines;
  if (has("tmpfs"))
    lines.push_back(ok("filesystem: tmpfs", "in /proc/filesystems"));
  else
    lines.push_back(fail("filesystem: tmpfs", "not in /proc/filesystems: no sandbox root",
                         "a kernel built with CONFIG_TMPFS=y"));
  if (has("overlay"))
    lines.push_back(ok("filesystem: overlay", "in /proc/filesystems"));
  else
    lines.push_back(warn("filesystem: overlay",
                         "not in /proc/filesystems: functions with two or more layers fail",
                         "modprobe overlay, and overlay in /etc/modules-load.d/thatch.conf"));
  return lines;
}

// The interpreter's home is /usr (runtime/interpreter.cc), its stdlib the
// host's /usr/lib/python3.11, which the sandboxes see read-only.
Lines checkRuntimes(const HostView& host) {
  struct Need {
    const char* runtime;
    const char* what;
    const char* path;
    const char* package;
    Verdict missing;
  };
  static const Need kNeeds[] = {
      {"python3.11", "stdlib", "/usr/lib/python3.11/os.py", "libpython3.11-minimal",
       Verdict::kFail},
      {"python3.11", "stdlib packages", "/usr/lib/python3.11/json/__init__.py",
       "libpython3.11-stdlib", Verdict::kFail},
      {"python3.11", "extension modules", "/usr/lib/python3.11/lib-dynload", "libpython3.11-stdlib",
       Verdict::kFail},
      {"python3.11-numpy", "numpy", "/usr/lib/python3/dist-packages/numpy/__init__.py",
       "python3-numpy", Verdict::kWarn},
  };
  // A runtime "python3.11-numpy" needs python3.11's stdlib too.
  auto configured = [&host](const std::string& wanted) {
    return std::any_of(host.config.runtimes.begin(), host.config.runtimes.end(),
                       [&wanted](const RuntimeConfig& runtime) {
                         return runtime.name == wanted || runtime.name.rfind(wanted + "-", 0) == 0;
                       });
  };
  Lines lines;
  for (const Need& need : kNeeds) {
    if (!configured(need.runtime)) continue;
    std::string name = std::string("runtime ") + need.runtime + ": " + need.what;
    if (host.exists(need.path))
      lines.push_back(ok(name, need.path));
    else
      lines.push_back({need.missing, name, std::string("no ") + need.path,
                       std::string("apt-get install ") + need.package});
  }
  return lines;
}

CheckLine openFilesLine(const HostView& host, const HostLimit& limit) {
  rlimit files = host.probes.limits.openFiles();
  auto shown = [](rlim_t value) {
    return value == RLIM_INFINITY ? std::string("unlimited") : std::to_string(value);
  };
  std::string detail = "soft " + shown(files.rlim_cur) + ", hard " + shown(files.rlim_max) + " (" +
                       std::to_string(limit.needed) + " needed: " + limit.why + ")";
  if (files.rlim_max == RLIM_INFINITY || files.rlim_max >= limit.needed)
    return ok(limit.name, detail + "; thatchd raises its soft limit");
  std::optional<uint64_t> nrOpen = host.probes.limits.sysctl("fs.nr_open");
  if (host.probes.kernel.privileged() && nrOpen && *nrOpen >= limit.needed)
    return ok(limit.name, detail + "; thatchd, as root, raises both");
  return fail(limit.name, detail, limit.fix);
}

Lines checkLimits(const HostView& host) {
  Lines lines;
  for (const HostLimit& limit : neededLimits(host.config)) {
    if (limit.name == "RLIMIT_NOFILE") {
      lines.push_back(openFilesLine(host, limit));
      continue;
    }
    std::optional<uint64_t> value = host.probes.limits.sysctl(limit.name);
    if (!value) {
      lines.push_back(ok(limit.name, "not in this kernel: no such limit"));
      continue;
    }
    std::string detail = std::to_string(*value) + " (" + std::to_string(limit.needed) +
                         " needed: " + limit.why + ")";
    if (*value >= limit.needed)
      lines.push_back(ok(limit.name, detail));
    else
      lines.push_back(
          {limit.advisory ? Verdict::kWarn : Verdict::kFail, limit.name, detail, limit.fix});
  }
  return lines;
}

// The warm sandboxes may hold host.max_warm_memory between them: more
// than the host has and the kernel's OOM killer, not the policy, evicts.
Lines checkMemory(const HostView& host) {
  std::optional<std::string> meminfo = host.read("/proc/meminfo");
  unsigned long long totalKiB = 0;
  if (!meminfo || sscanf(meminfo->c_str(), "MemTotal: %llu kB", &totalKiB) != 1)
    return {warn("memory", "cannot read MemTotal in /proc/meminfo", "mount /proc")};
  uint64_t total = uint64_t(totalKiB) * 1024;
  uint64_t warm = host.config.host.maxWarmMemoryBytes;
  std::string detail = std::to_string(total >> 20) + " MiB, host.max_warm_memory " +
                       std::to_string(warm >> 20) + " MiB";
  if (warm < total) return {ok("memory", detail)};
  return {warn("memory", detail + ": warm sandboxes alone may fill the host",
               "lower host.max_warm_memory below the host's memory")};
}

struct Check {
  const char* name;
  const char* reads;
  Lines (*judge)(const HostView&);
};

const Check kChecks[] = {
    {"kernel", "/proc/sys/kernel/osrelease", checkKernel},
    {"namespaces", "/proc/self/ns/*", checkNamespaces},
    {"user namespaces", "kernel.*userns* sysctls, unshare(CLONE_NEWUSER)", checkUserNamespaces},
    {"seccomp", "/proc/sys/kernel/seccomp/actions_avail, seccomp()", checkSeccomp},
    {"cgroups", "/proc/self/mountinfo, /proc/self/cgroup, cgroup.controllers", checkCgroups},
    {"syscalls", "pidfd_open, clone3, CLONE_INTO_CGROUP", checkSyscalls},
    {"filesystems", "/proc/filesystems", checkFilesystems},
    {"runtimes", "/usr/lib/python3.11", checkRuntimes},
    {"limits", "/proc/sys/{kernel,fs,vm,user,net}, RLIMIT_NOFILE", checkLimits},
    {"memory", "/proc/meminfo", checkMemory},
};

}  // namespace

const char* verdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kOk:
      return "OK";
    case Verdict::kWarn:
      return "WARN";
    case Verdict::kFail:
      return "FAIL";
  }
  return "?";
}

bool HostCheckReport::failed() const {
  return std::any_of(lines.begin(), lines.end(),
                     [](const CheckLine& line) { return line.verdict == Verdict::kFail; });
}

std::string HostCheckReport::render() const {
  std::string text;
  for (const CheckLine& line : lines) {
    char head[64];
    snprintf(head, sizeof head, "%-4s  %-44s ", verdictName(line.verdict), line.name.c_str());
    text += head + line.detail;
    if (!line.fix.empty()) text += "; fix: " + line.fix;
    text += "\n";
  }
  return text;
}

HostCheckReport checkHost(const Config& config, const HostProbes& probes) {
  HostView host{config, probes};
  HostCheckReport report;
  for (const Check& check : kChecks) {
    try {
      for (CheckLine& line : check.judge(host)) report.lines.push_back(std::move(line));
    } catch (const std::exception& e) {
      // A check that cannot run says so; the others still do.
      report.lines.push_back(fail(
          check.name, std::string("reading ") + check.reads + ": " + e.what(), "see the message"));
    }
  }
  return report;
}

std::string hostTuning(const Config& config) {
  unsigned stems = 0;
  for (const RuntimeConfig& runtime : config.runtimes) stems += runtime.stemCells;
  std::string text = "# for host.max_sandboxes = " + std::to_string(config.host.maxSandboxes) +
                     " and " + std::to_string(stems) + " stem cells\n";
  for (const HostLimit& limit : neededLimits(config)) {
    std::string key = limit.name == "RLIMIT_NOFILE" ? "LimitNOFILE" : limit.name;
    text += key + " = " + std::to_string(limit.needed) + "\n";
  }
  return text;
}

HostProbes HostProbes::thisHost() {
  return under("");
}

HostProbes HostProbes::under(const std::string& root) {
  HostProbes probes;
  probes.root = root;
  probes.kernel = KernelProbe::thisHost();
  probes.limits = HostLimitProbe::thisHost(root);
  return probes;
}

}  // namespace supervisor
