// cgroup v1 backend: one directory per sandbox in each of the memory, pids and
// cpu hierarchies, and in the freezer hierarchy where it is mounted.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <optional>
#include <stdexcept>

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

// The freezer hierarchy's control file (cgroup.h, FreezerState). Writing
// FROZEN returns at once (the state reads FREEZING until every task has
// stopped); writing THAWED wakes every task before it returns.
void freezeDir(const std::string& dir) {
  writeControl(joinPath(dir, "freezer.state"), "FROZEN");
}

void thawDir(const std::string& dir) {
  writeControl(joinPath(dir, "freezer.state"), "THAWED");
}

FreezerState freezerStateOf(const std::string& dir) {
  std::string path = joinPath(dir, "freezer.state");
  std::string state = cgroupfs::readControl(path);
  while (!state.empty() && state.back() == '\n') state.pop_back();
  if (state == "THAWED") return FreezerState::kThawed;
  if (state == "FREEZING") return FreezerState::kFreezing;
  if (state == "FROZEN") return FreezerState::kFrozen;
  throw std::runtime_error("unexpected state in " + path + ": \"" + state + "\"");
}

uint64_t memoryUsageOf(const std::string& memoryDir) {
  return cgroupfs::readNumber(joinPath(memoryDir, "memory.usage_in_bytes"));
}

class CgroupV1 final : public Cgroup {
 public:
  CgroupV1(const CgroupV1Layout& layout, const std::string& name, const CgroupLimits& limits)
      : memory_(joinPath(layout.memoryParent, name)),
        pids_(joinPath(layout.pidsParent, name)),
        cpu_(joinPath(layout.cpuParent, name)),
        oomEvents_(registerOomEventFd(memory_)) {
    if (!layout.freezerParent.empty()) freezer_.emplace(joinPath(layout.freezerParent, name));
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

  // The directories' destructors kill what remains and remove them, which
  // a frozen task would not let them do.
  ~CgroupV1() override {
    try {
      thaw();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "thatch: cannot thaw cgroup %s: %s\n", memory_.path().c_str(), e.what());
    }
  }

  void attach(pid_t pid) override {
    for (const std::string& dir : paths())
      writeControl(joinPath(dir, "cgroup.procs"), std::to_string(pid));
  }

  void freeze() override {
    if (!freezer_) throw std::runtime_error("no cgroup v1 freezer hierarchy on this host");
    freezeDir(freezer_->path());
  }
  void thaw() override {
    if (freezer_) thawDir(freezer_->path());
  }
  FreezerState freezerState() const override {
    return freezer_ ? freezerStateOf(freezer_->path()) : FreezerState::kThawed;
  }

  uint64_t memoryUsage() const override { return memoryUsageOf(memory_.path()); }

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

  void killAll() override {
    thaw();
    cgroupfs::killAllIn(paths());
  }

  std::vector<std::string> paths() const override {
    std::vector<std::string> all{memory_.path(), pids_.path(), cpu_.path()};
    if (freezer_) all.push_back(freezer_->path());
    return all;
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
  std::optional<OwnedDir> freezer_;  // none without a freezer hierarchy
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
    // A frozen leftover (its thatchd died while it was idle) takes SIGKILL
    // only once thawed.
    if (std::string freezer = freezerDir(name); !freezer.empty() && cgroupfs::exists(freezer))
      thawDir(freezer);
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

  bool canFreeze() const override { return !layout_.freezerParent.empty(); }

  void freeze(const std::string& name) override {
    if (!canFreeze()) throw std::runtime_error("no cgroup v1 freezer hierarchy on this host");
    freezeDir(freezerDir(name));
  }
  void thaw(const std::string& name) override {
    if (canFreeze()) thawDir(freezerDir(name));
  }
  FreezerState freezerState(const std::string& name) const override {
    return canFreeze() ? freezerStateOf(freezerDir(name)) : FreezerState::kThawed;
  }
  uint64_t memoryUsage(const std::string& name) const override {
    cgroupfs::checkCgroupName(name);
    return memoryUsageOf(joinPath(layout_.memoryParent, name));
  }

  std::string nameOf(pid_t pid) const override {
    return cgroupfs::childHolding(pid, "memory", layout_.memoryParent);
  }

  std::string describe() const override {
    std::string text = canFreeze() ? "cgroup v1 (memory, pids, cpu, freezer) under "
                                   : "cgroup v1 (memory, pids, cpu) under ";
    std::vector<std::string> all = parents();
    for (size_t i = 0; i < all.size(); ++i) text += (i ? ", " : "") + all[i];
    return text;
  }

 private:
  std::vector<std::string> parents() const {
    std::vector<std::string> all{layout_.memoryParent, layout_.pidsParent, layout_.cpuParent};
    if (canFreeze()) all.push_back(layout_.freezerParent);
    return all;
  }

  // "" without a freezer hierarchy.
  std::string freezerDir(const std::string& name) const {
    cgroupfs::checkCgroupName(name);
    return canFreeze() ? joinPath(layout_.freezerParent, name) : "";
  }

  CgroupV1Layout layout_;
};

}  // namespace

std::unique_ptr<CgroupManager> makeCgroupV1(const CgroupV1Layout& layout) {
  return std::make_unique<CgroupV1Manager>(layout);
}

}  // namespace sandbox
