// What the host must allow for the configured caps: limits that grow with
// the number of sandboxes (open files of thatchd and of each zygote,
// memory maps, pids and threads, namespaces), derived from
// host.max_sandboxes and the runtimes' stem cells. thatchd raises what a
// process may raise for itself (RLIMIT_NOFILE, inherited by its zygotes)
// and refuses to start when a host-wide setting is short, naming it and
// the fix.
#pragma once

#include <sys/resource.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "supervisor/config.h"

namespace supervisor {

struct HostLimit {
  std::string name;  // "RLIMIT_NOFILE" or a sysctl, e.g. "vm.max_map_count"
  uint64_t needed = 0;
  std::string why;  // what grows with the sandboxes
  std::string fix;
  uint64_t current = 0;  // what the host allows (filled in by the check)
  // Short costs speed, not correctness: check-host warns, thatchd starts.
  bool advisory = false;
};

// Where the figures come from: this host, or a test's.
struct HostLimitProbe {
  // A sysctl's value (/proc/sys/...); nullopt if the kernel has none.
  std::function<std::optional<uint64_t>(const std::string& name)> sysctl;
  std::function<rlimit()> openFiles;
  // Sets this process's RLIMIT_NOFILE; false if it may not.
  std::function<bool(const rlimit&)> setOpenFiles;

  // Sysctls read from `root`/proc/sys ("" for this host's).
  static HostLimitProbe thisHost(const std::string& root = "");
};

// Every limit the configuration needs, with the figure it needs (the
// advisory ones too).
std::vector<HostLimit> neededLimits(const Config& config);

// Raises RLIMIT_NOFILE (soft, then hard where allowed) to what the caps
// need, and returns the limits still short but advisory ones (empty: all
// is well).
std::vector<HostLimit> ensureHostLimits(const Config& config, const HostLimitProbe& probe);

// One line per limit: what it is, what is needed and why, and the fix.
std::string describeShortLimits(const std::vector<HostLimit>& shortLimits);

}  // namespace supervisor
