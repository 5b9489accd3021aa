// cgroup v1 backend: one directory per sandbox in each of the memory, pids and
// cpu hierarchies.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>

#include "base/fd.h"
#include "base/sys_error.h"
#include "sandbox/cgroup.h"

namespace sandbox {

using base::Fd;
using base::throwSysError;
namespace {

using cgroupfs::joinPath;
using cgroupfs::OwnedDir;
using cgroupfs::writeControl;

// The v1 OOM notification: the kernel signals an eventfd registered by writing
// "<eventfd> <fd of memory.oom_control>" to cgroup.event_control. (v1
// pids.events never notifies, checked on 6.18, so there is no fd for it.)
Fd registerOomEventFd(const OwnedDir& memory) {
  Fd event(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!event) throwSysError("eventfd");
  std::string oomControlPath = memory.file("memory.oom_control");
  Fd oomControl(open(oomControlPath.c_str(), O_RDONLY | O_CLOEXEC));
  if (!oomControl) throwSysError("open " + oomControlPath);
  writeControl(memory.file("cgroup.event_control"),
               std::to_string(event.get()) + " " + std::to_string(oomControl.get()));
  return event;  // the registration holds its own reference to oom_control
}

void limitMemory(const OwnedDir& memory, uint64_t bytes) {
  std::string limit = bytes ? std::to_string(bytes) : "-1";
  std::string memoryLimit = memory.file("memory.limit_in_bytes");
  // memsw limits memory + swap, so memsw == limit means no swap at all. It is
  // absent without swap accounting; swappiness=0 is the nearest we can get.
  std::string memsw = memory.file("memory.memsw.limit_in_bytes");
  if (!cgroupfs::exists(memsw)) {
    writeControl(memoryLimit, limit);
    writeControl(memory.file("memory.swappiness"), "0");
    return;
  }
  // The kernel keeps memsw >= limit at every moment: raise memsw first when
  // the limit grows, lower the limit first when it shrinks.
  uint64_t current = std::stoull(cgroupfs::readControl(memoryLimit));
  uint64_t wanted = bytes ? bytes : UINT64_MAX;
  if (wanted > current) {
    writeControl(memsw, limit);
    writeControl(memoryLimit, limit);
  } else {
    writeControl(memoryLimit, limit);
    writeControl(memsw, limit);
  }
}

void limitCpu(const OwnedDir& cpu, double cpus) {
  writeControl(cpu.file("cpu.cfs_period_us"), std::to_string(cgroupfs::kCpuPeriodMicros));
  writeControl(cpu.file("cpu.cfs_quota_us"), std::to_string(cgroupfs::cpuQuotaMicros(cpus)));
}

class CgroupV1 final : public Cgroup {
 public:
  CgroupV1(const CgroupV1Layout& layout, const std::string& name, const CgroupLimits& limits)
      : memory_(joinPath(layout.memoryParent, name)),
        pids_(joinPath(layout.pidsParent, name)),
        cpu_(joinPath(layout.cpuParent, name)),
        oomEvents_(registerOomEventFd(memory_)) {
    // What mkdir made has the kernel's defaults: no cpu quota over the
    // default period, no pids limit. Writing them anyway cost every sandbox
    // 0.1-0.6 ms here, at times several ms (cpu.cfs_* wait for the bandwidth
    // lock). The memory limit is always written: swap goes with it.
    applied_ = CgroupLimits{UINT64_MAX, 0, 0};
    setLimits(limits);
  }

  // Writes only the controls that change: each write is a syscall on the
  // path of claiming a stem cell.
  void setLimits(const CgroupLimits& limits) override {
    if (!applied_ || applied_->memoryBytes != limits.memoryBytes)
      limitMemory(memory_, limits.memoryBytes);
    if (!applied_ || applied_->pids != limits.pids)
      writeControl(pids_.file("pids.max"), limits.pids ? std::to_string(limits.pids) : "max");
    if (!applied_ || applied_->cpus != limits.cpus) limitCpu(cpu_, limits.cpus);
    applied_ = limits;
  }

  // The directories' destructors kill what remains and remove them.
  ~CgroupV1() override = default;

  void attach(pid_t pid) override {
    for (const OwnedDir* dir : {&memory_, &pids_, &cpu_})
      writeControl(dir->file("cgroup.procs"), std::to_string(pid));
  }

  CgroupEvents events() const override {
    drainOomEvents();
    CgroupEvents events;
    events.oomKills =
        cgroupfs::keyedValue(cgroupfs::readControl(memory_.file("memory.oom_control")), "oom_kill");
    events.pidsMaxHits =
        cgroupfs::keyedValue(cgroupfs::readControl(pids_.file("pids.events")), "max");
    return events;
  }

  std::vector<int> eventFds() const override { return {oomEvents_.get()}; }

  void killAll() override { cgroupfs::killAllIn(paths()); }

  std::vector<std::string> paths() const override {
    return {memory_.path(), pids_.path(), cpu_.path()};
  }

 private:
  // Resets the eventfd's counter so that it polls readable again only after
  // the next OOM.
  void drainOomEvents() const {
    uint64_t count;
    if (read(oomEvents_.get(), &count, sizeof count) < 0 && errno != EAGAIN)
      throwSysError("read OOM eventfd of " + memory_.path());
  }

  // Declared before the fd: members are destroyed in reverse order, so the
  // eventfd closes first and the directories go last.
  OwnedDir memory_;
  OwnedDir pids_;
  OwnedDir cpu_;
  std::optional<CgroupLimits> applied_;
  Fd oomEvents_;
};

class CgroupV1Manager final : public CgroupManager {
 public:
  explicit CgroupV1Manager(CgroupV1Layout layout) : layout_(std::move(layout)) {
    for (const std::string& parent : parents()) cgroupfs::makeDirs(parent);
  }

  std::unique_ptr<Cgroup> create(const std::string& name, const CgroupLimits& limits) override {
    cgroupfs::checkCgroupRequest(name, limits);
    return std::make_unique<CgroupV1>(layout_, name, limits);
  }

  void remove(const std::string& name) override {
    cgroupfs::checkCgroupName(name);
    std::vector<std::string> dirs;
    for (const std::string& parent : parents()) dirs.push_back(joinPath(parent, name));
    cgroupfs::killAllIn(dirs);  // a missing directory counts as empty
    for (const std::string& dir : dirs) cgroupfs::removeDir(dir);
  }

  std::vector<std::string> removeStale() override {
    std::vector<std::string> names = list();
    for (const std::string& name : names) remove(name);
    return names;
  }

  // A name that is left in only some hierarchies (a crash mid-create) still counts.
  std::vector<std::string> list() const override {
    std::vector<std::string> names;
    for (const std::string& parent : parents()) {
      std::vector<std::string> here = cgroupfs::subdirectories(parent);
      names.insert(names.end(), here.begin(), here.end());
    }
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    return names;
  }

  std::string describe() const override {
    return "cgroup v1 (memory, pids, cpu) under " + layout_.memoryParent + ", " +
           layout_.pidsParent + ", " + layout_.cpuParent;
  }

 private:
  std::vector<std::string> parents() const {
    return {layout_.memoryParent, layout_.pidsParent, layout_.cpuParent};
  }

  CgroupV1Layout layout_;
};

}  // namespace

std::unique_ptr<CgroupManager> makeCgroupV1(const CgroupV1Layout& layout) {
  return std::make_unique<CgroupV1Manager>(layout);
}

}  // namespace sandbox
