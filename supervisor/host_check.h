// thatchd --check-host: whether this host has what thatch needs (kernel,
// namespaces, seccomp, cgroups, the syscalls it makes, filesystems, the
// runtime's stdlib, the limits the configured caps need), one line per
// check with OK, WARN or FAIL and, for the last two, the fix. In the
// manner of lxc-checkconfig and Docker's check-config.sh.
//
// Files are read under HostProbes::root, so that a test can hand the checks
// a fake /proc, /sys and /usr; the syscalls are probed through
// KernelProbe, which a test replaces.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "supervisor/config.h"
#include "supervisor/host_limits.h"

namespace supervisor {

enum class Verdict { kOk, kWarn, kFail };
const char* verdictName(Verdict verdict);

struct CheckLine {
  Verdict verdict = Verdict::kOk;
  std::string name;    // e.g. "namespace: user"
  std::string detail;  // what was found
  std::string fix;     // WARN and FAIL: the sysctl, package or boot parameter
};

// Real syscalls on the real host; each returns 0 when the kernel did what
// was asked, else the errno it answered with.
struct KernelProbe {
  std::function<int()> pidfdOpen;
  std::function<int()> clone3;
  // clone3(CLONE_INTO_CGROUP) into the cgroup v2 directory `dir`.
  std::function<int(const std::string& dir)> cloneIntoCgroup;
  // A one-instruction (allow) seccomp filter in a child.
  std::function<int()> seccompFilter;
  // unshare(CLONE_NEWUSER) in a child.
  std::function<int()> userNamespace;
  // Whether this process may do what root may: distributions' switches
  // against unprivileged user namespaces do not apply to it, and it may
  // raise its own hard open-file limit.
  std::function<bool()> privileged;

  static KernelProbe thisHost();
};

struct HostProbes {
  std::string root;  // prefix of every file read: "" for this host
  KernelProbe kernel;
  HostLimitProbe limits;  // sysctls read under root

  static HostProbes thisHost();
  // This host's syscalls, files and sysctls read under `root`.
  static HostProbes under(const std::string& root);
};

struct HostCheckReport {
  std::vector<CheckLine> lines;
  bool failed() const;
  // One line per check: "VERDICT  NAME  DETAIL[; fix: FIX]".
  std::string render() const;
};

HostCheckReport checkHost(const Config& config, const HostProbes& probes);

// `key = value` lines for scripts/tune-host: each sysctl the configuration
// needs, at the figure check-host compares it with, and LimitNOFILE.
std::string hostTuning(const Config& config);

}  // namespace supervisor
