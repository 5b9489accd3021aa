// cgroup v2 backend: one directory per sandbox in the unified hierarchy.
#include <fcntl.h>
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
using base::SysError;
using base::throwSysError;
namespace {

using cgroupfs::joinPath;
using cgroupfs::OwnedDir;
using cgroupfs::writeControl;

constexpr std::string_view kControllers[] = {"memory", "pids", "cpu"};
constexpr std::string_view kEnableControllers = "+memory +pids +cpu";

bool listsAllControllers(const std::string& file) {
  std::vector<std::string> listed = cgroupfs::words(cgroupfs::readControl(file));
  return std::all_of(std::begin(kControllers), std::end(kControllers), [&](std::string_view c) {
    return std::find(listed.begin(), listed.end(), c) != listed.end();
  });
}

std::string parentDir(const std::string& dir) {
  size_t slash = dir.find_last_of('/');
  return slash == 0 || slash == std::string::npos ? "/" : dir.substr(0, slash);
}

// Makes memory, pids and cpu available to the children of `dir`. A cgroup
// offers its children only what its own parent's subtree_control enables, so
// where `dir` lacks them this first enables them in its ancestors, up to the
// mount root (the directory whose parent is no cgroup).
void enableControllers(const std::string& dir) {
  if (!listsAllControllers(joinPath(dir, "cgroup.controllers"))) {
    std::string parent = parentDir(dir);
    if (!cgroupfs::exists(joinPath(parent, "cgroup.controllers")))
      throw std::runtime_error("the cgroup v2 root " + dir +
                               " does not offer memory, pids and cpu");
    enableControllers(parent);
  }
  std::string subtreeControl = joinPath(dir, "cgroup.subtree_control");
  if (listsAllControllers(subtreeControl)) return;
  try {
    writeControl(subtreeControl, kEnableControllers);
  } catch (const SysError& e) {
    if (e.error() != EBUSY) throw;
    // cgroup v2's "no internal processes" rule.
    throwSysError("write \"" + std::string(kEnableControllers) + "\" to " + subtreeControl +
                      " (a cgroup holding processes cannot enable controllers for its children;"
                      " run thatchd in a leaf cgroup, or pass a parent outside its own)",
                  EBUSY);
  }
}

// Opened with O_CREAT for the reason writeControl gives. Kept open because
// kernfs signals POLLPRI per open file, until that file is read again.
Fd openEventFile(const OwnedDir& dir, std::string_view name) {
  std::string path = dir.file(name);
  Fd fd(open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) throwSysError("open " + path);
  return fd;
}

std::string cpuMax(double cpus) {
  long long quota = cgroupfs::cpuQuotaMicros(cpus);
  return (quota < 0 ? "max" : std::to_string(quota)) + " " +
         std::to_string(cgroupfs::kCpuPeriodMicros);
}

// cgroup.kill (Linux 5.14) kills every member at once, including any forked
// while we read cgroup.procs; killAllIn then waits for the cgroup to empty,
// and does the killing itself on older kernels.
void killCgroup(const std::string& dir) {
  std::string kill = joinPath(dir, "cgroup.kill");
  if (cgroupfs::exists(kill)) writeControl(kill, "1");
  cgroupfs::killAllIn({dir});
}

// cgroup.freeze and cgroup.events (cgroup.h, FreezerState). Writing 1
// returns at once; cgroup.events says "frozen 1" once every task has
// stopped. Writing 0 wakes every task before it returns.
void freezeDir(const std::string& dir) {
  writeControl(joinPath(dir, "cgroup.freeze"), "1");
}

void thawDir(const std::string& dir) {
  writeControl(joinPath(dir, "cgroup.freeze"), "0");
}

FreezerState freezerStateOf(const std::string& dir) {
  // Frozen also when an ancestor is; asked for but not there yet otherwise.
  if (cgroupfs::keyedValue(cgroupfs::readControl(joinPath(dir, "cgroup.events")), "frozen") == 1)
    return FreezerState::kFrozen;
  std::vector<std::string> asked =
      cgroupfs::words(cgroupfs::readControl(joinPath(dir, "cgroup.freeze")));
  return !asked.empty() && asked[0] == "1" ? FreezerState::kFreezing : FreezerState::kThawed;
}

uint64_t memoryUsageOf(const std::string& dir) {
  return cgroupfs::readNumber(joinPath(dir, "memory.current"));
}

class CgroupV2 final : public Cgroup {
 public:
  CgroupV2(const std::string& parent, const std::string& name, const CgroupLimits& limits)
      : dir_(joinPath(parent, name)) {
    setLimits(limits);
    memoryEvents_ = openEventFile(dir_, "memory.events");
    pidsEvents_ = openEventFile(dir_, "pids.events");
  }

  // Writes only the controls that change (see CgroupV1::setLimits).
  void setLimits(const CgroupLimits& limits) override {
    if (!applied_) writeControl(dir_.file("memory.swap.max"), "0");
    if (!applied_ || applied_->memoryBytes != limits.memoryBytes)
      writeControl(dir_.file("memory.max"),
                   limits.memoryBytes ? std::to_string(limits.memoryBytes) : "max");
    if (!applied_ || applied_->pids != limits.pids)
      writeControl(dir_.file("pids.max"), limits.pids ? std::to_string(limits.pids) : "max");
    if (!applied_ || applied_->cpus != limits.cpus)
      writeControl(dir_.file("cpu.max"), cpuMax(limits.cpus));
    applied_ = limits;
  }

  // Kills through cgroup.kill; dir_'s destructor then removes the directory.
  ~CgroupV2() override {
    try {
      killAll();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "thatch: cannot kill cgroup %s: %s\n", dir_.path().c_str(), e.what());
    }
  }

  void attach(pid_t pid) override { writeControl(dir_.file("cgroup.procs"), std::to_string(pid)); }

  void freeze() override { freezeDir(dir_.path()); }
  void thaw() override { thawDir(dir_.path()); }
  FreezerState freezerState() const override { return freezerStateOf(dir_.path()); }
  uint64_t memoryUsage() const override { return memoryUsageOf(dir_.path()); }

  // Reads through the held fds: that is what re-arms their POLLPRI.
  CgroupEvents events() const override {
    CgroupEvents events;
    events.oomKills = cgroupfs::keyedValue(
        cgroupfs::readControlFd(memoryEvents_.get(), dir_.file("memory.events")), "oom_kill");
    events.pidsMaxHits = cgroupfs::keyedValue(
        cgroupfs::readControlFd(pidsEvents_.get(), dir_.file("pids.events")), "max");
    return events;
  }

  std::vector<int> eventFds() const override { return {memoryEvents_.get(), pidsEvents_.get()}; }

  void killAll() override { killCgroup(dir_.path()); }

  std::vector<std::string> paths() const override { return {dir_.path()}; }

 private:
  OwnedDir dir_;  // first: destroyed last, after the fds
  Fd memoryEvents_;
  Fd pidsEvents_;
  std::optional<CgroupLimits> applied_;
};

class CgroupV2Manager final : public CgroupManager {
 public:
  explicit CgroupV2Manager(std::string parent) : parent_(std::move(parent)) {
    cgroupfs::makeDirs(parent_);
    enableControllers(parent_);
  }

  std::unique_ptr<Cgroup> create(const std::string& name, const CgroupLimits& limits) override {
    cgroupfs::checkCgroupRequest(name, limits);
    return std::make_unique<CgroupV2>(parent_, name, limits);
  }

  void remove(const std::string& name) override {
    cgroupfs::checkCgroupName(name);
    std::string dir = joinPath(parent_, name);
    if (!cgroupfs::exists(dir)) return;
    killCgroup(dir);
    cgroupfs::removeDir(dir);
  }

  std::vector<std::string> removeStale() override {
    std::vector<std::string> names = list();
    for (const std::string& name : names) remove(name);
    return names;
  }

  std::vector<std::string> list() const override { return cgroupfs::subdirectories(parent_); }

  bool canFreeze() const override { return true; }
  void freeze(const std::string& name) override { freezeDir(dirOf(name)); }
  void thaw(const std::string& name) override { thawDir(dirOf(name)); }
  FreezerState freezerState(const std::string& name) const override {
    return freezerStateOf(dirOf(name));
  }
  uint64_t memoryUsage(const std::string& name) const override {
    return memoryUsageOf(dirOf(name));
  }

  std::string nameOf(pid_t pid) const override { return cgroupfs::childHolding(pid, "", parent_); }

  std::string describe() const override { return "cgroup v2 (memory, pids, cpu) under " + parent_; }

 private:
  std::string dirOf(const std::string& name) const {
    cgroupfs::checkCgroupName(name);
    return joinPath(parent_, name);
  }

  std::string parent_;
};

}  // namespace

std::unique_ptr<CgroupManager> makeCgroupV2(const std::string& parent) {
  return std::make_unique<CgroupV2Manager>(parent);
}

}  // namespace sandbox
