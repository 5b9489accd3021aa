#include "supervisor/host_limits.h"

#include <algorithm>
#include <fstream>

namespace supervisor {

namespace {

// Per sandbox, measured with thousands of idle ones: thatchd holds its
// channel and its id lease (two more while the spawn request waits: the
// sandbox's ends), and maps its shared answer page; its zygote holds its
// pidfd, its setup pipe, its cgroup event fd and, for a claimed stem cell,
// its id lease.
constexpr uint64_t kFilesPerSandbox = 4;
constexpr uint64_t kFilesBase = 1024;  // clients, logs, the state store
constexpr uint64_t kMapsBase = 1024;   // thatchd's own libraries, heap, stacks
// An idle sandbox is one process; a busy one as many as its pids limit
// allows (its cgroup bounds it): twice the sandboxes is a floor.
constexpr uint64_t kTasksPerSandbox = 2;
constexpr uint64_t kTasksBase = 4096;
constexpr uint64_t kNamespacesBase = 64;  // the zygotes', a test's, the host's own
// Spawn requests a zygote's control socket holds before thatchd keeps the
// rest itself (runtime/framing.h's PacketQueue): fewer wake-ups in a burst.
constexpr uint64_t kDatagramQueue = 512;

uint64_t stemCells(const Config& config) {
  uint64_t stems = 0;
  for (const RuntimeConfig& runtime : config.runtimes) stems += runtime.stemCells;
  return stems;
}

std::string sysctlFix(const std::string& name, uint64_t needed) {
  return "sysctl -w " + name + "=" + std::to_string(needed) +
         " (and in /etc/sysctl.d/ to keep it)" + ", or lower host.max_sandboxes";
}

}  // namespace

std::vector<HostLimit> neededLimits(const Config& config) {
  uint64_t sandboxes = uint64_t(config.host.maxSandboxes) + stemCells(config);
  std::vector<HostLimit> limits;
  uint64_t files = kFilesBase + kFilesPerSandbox * sandboxes;
  limits.push_back({"RLIMIT_NOFILE", files, "open files of thatchd and of each zygote",
                    "raise thatchd's open-file limit (LimitNOFILE=" + std::to_string(files) +
                        " in its systemd unit, or ulimit -Hn " + std::to_string(files) +
                        "), or lower host.max_sandboxes"});
  // The hard limit thatchd may raise its own to, as root.
  limits.push_back({"fs.nr_open", files, "the most open files a process may be allowed",
                    sysctlFix("fs.nr_open", files)});
  // Its zygotes' and each sandbox's own (channel, stdio) besides thatchd's.
  limits.push_back({"fs.file-max", 2 * files, "open files of all processes together",
                    sysctlFix("fs.file-max", 2 * files)});
  uint64_t maps = kMapsBase + sandboxes;
  limits.push_back({"vm.max_map_count", maps, "thatchd maps one answer page per sandbox",
                    sysctlFix("vm.max_map_count", maps)});
  uint64_t tasks = kTasksBase + kTasksPerSandbox * sandboxes;
  limits.push_back({"kernel.pid_max", tasks, "every sandbox is at least one process",
                    sysctlFix("kernel.pid_max", tasks)});
  limits.push_back({"kernel.threads-max", tasks, "every sandbox is at least one process",
                    sysctlFix("kernel.threads-max", tasks)});
  // Each sandbox has these of its own (a network namespace only when it has
  // egress, the others sharing an empty one; counted all the same: any
  // function may have egress).
  for (const char* kind : {"user", "pid", "mnt", "ipc", "uts", "net", "cgroup"}) {
    std::string name = std::string("user.max_") + kind + "_namespaces";
    uint64_t needed = kNamespacesBase + sandboxes;
    limits.push_back({name, needed, "each sandbox has its own", sysctlFix(name, needed)});
  }
  HostLimit queue{"net.unix.max_dgram_qlen", kDatagramQueue,
                  "spawn requests a zygote's socket holds in a burst",
                  "sysctl -w net.unix.max_dgram_qlen=" + std::to_string(kDatagramQueue) +
                      " (and in /etc/sysctl.d/ to keep it)"};
  queue.advisory = true;
  limits.push_back(queue);
  return limits;
}

std::vector<HostLimit> ensureHostLimits(const Config& config, const HostLimitProbe& probe) {
  std::vector<HostLimit> shortLimits;
  for (HostLimit& limit : neededLimits(config)) {
    if (limit.advisory) continue;
    if (limit.name == "RLIMIT_NOFILE") {
      rlimit files = probe.openFiles();
      if (files.rlim_cur != RLIM_INFINITY && files.rlim_cur < limit.needed) {
        rlimit raised = files;
        raised.rlim_cur = limit.needed;
        // The hard limit too, where this process may (CAP_SYS_RESOURCE).
        if (raised.rlim_max != RLIM_INFINITY && raised.rlim_max < limit.needed)
          raised.rlim_max = limit.needed;
        if (!probe.setOpenFiles(raised) && files.rlim_max != RLIM_INFINITY) {
          // As far as the hard limit goes: if it is short, it is named.
          raised.rlim_max = files.rlim_max;
          raised.rlim_cur = std::min<uint64_t>(limit.needed, files.rlim_max);
          probe.setOpenFiles(raised);
        }
        files = probe.openFiles();
      }
      limit.current = files.rlim_cur == RLIM_INFINITY ? UINT64_MAX : files.rlim_cur;
    } else {
      std::optional<uint64_t> value = probe.sysctl(limit.name);
      if (!value) continue;  // a kernel without it has no such limit
      limit.current = *value;
    }
    if (limit.current < limit.needed) shortLimits.push_back(limit);
  }
  return shortLimits;
}

std::string describeShortLimits(const std::vector<HostLimit>& shortLimits) {
  std::string text;
  for (const HostLimit& limit : shortLimits) {
    if (!text.empty()) text += "\n";
    text += limit.name + " is " + std::to_string(limit.current) + ", and " +
            std::to_string(limit.needed) +
            " are needed for host.max_sandboxes and the stem cells (" + limit.why +
            "): " + limit.fix;
  }
  return text;
}

HostLimitProbe HostLimitProbe::thisHost(const std::string& root) {
  HostLimitProbe probe;
  probe.sysctl = [root](const std::string& name) -> std::optional<uint64_t> {
    std::string relative = name;
    std::replace(relative.begin(), relative.end(), '.', '/');
    std::ifstream in(root + "/proc/sys/" + relative);
    uint64_t value;
    if (!(in >> value)) return std::nullopt;
    return value;
  };
  probe.openFiles = []() {
    rlimit files{};
    getrlimit(RLIMIT_NOFILE, &files);
    return files;
  };
  probe.setOpenFiles = [](const rlimit& files) { return setrlimit(RLIMIT_NOFILE, &files) == 0; };
  return probe;
}

}  // namespace supervisor
