#include "supervisor/zygote_slots.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "base/units.h"
#include "supervisor/messages.h"
#include "supervisor/spawn_request.h"

namespace supervisor {

namespace {

StderrTaskErrors taskErrors("zygote watch failed");

// A replacement zygote that has not said it is ready by then is killed and
// replaced in turn (as ZygoteOptions::startTimeout is for the first).
constexpr std::chrono::seconds kStartTimeout{60};

kj::Duration toKj(Duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count() * kj::NANOSECONDS;
}

// The cgroup directory of a runtime's `index`th zygote, below the subdir.
std::string zygoteDir(const std::string& runtime, unsigned index) {
  return index == 0 ? runtime : runtime + "." + std::to_string(index);
}

// A runtime's zygotes (at least one, whatever a config built in code says).
unsigned zygoteCount(const RuntimeConfig& runtime) {
  return std::max(1u, runtime.zygotes);
}

// Whether `dir` is (or was, under a predecessor with more zygotes) one of
// `runtime`'s zygotes' directories.
bool isZygoteDir(const std::string& dir, const std::string& runtime) {
  if (dir == runtime) return true;
  if (dir.size() <= runtime.size() + 1 || dir.compare(0, runtime.size() + 1, runtime + ".") != 0)
    return false;
  return dir.find_first_not_of("0123456789", runtime.size() + 1) == std::string::npos;
}

}  // namespace

struct ZygoteSlots::Slot {
  RuntimeConfig config;
  unsigned index = 0;                      // among its runtime's zygotes
  std::string dir;                         // its cgroup directory, below the subdir
  size_t starting = 0;                     // spawn requests not answered yet
  std::unordered_set<uint64_t> sandboxes;  // asked of it, not exited yet
  Duration backoff = std::chrono::seconds(1);
  std::unique_ptr<runtime::Zygote> zygote;  // null while it is not running
  kj::Own<kj::UnixEventPort::FdObserver> observer;
  bool restarting = false;                // a replacement, not ready yet
  uint64_t generation = 0;                // of replacements, for their start timeouts
  uint64_t replies = 0;                   // spawn replies read, for watchSpawns()
  bool spawnsWatched = false;             // watchSpawns() has a timer set
  kj::Promise<void> watchTask = nullptr;  // watch(): after the observer, destroyed first
  bool flushing = false;                  // flushTask is under way
  kj::Promise<void> flushTask = nullptr;  // after the observer: destroyed first
};

ZygoteSlots::ZygoteSlots(const Config& config, Options options, EventLog& log, kj::Timer& timer,
                         kj::UnixEventPort& eventPort, Listener& listener)
    : config_(config),
      options_(std::move(options)),
      log_(log),
      timer_(timer),
      eventPort_(eventPort),
      listener_(listener),
      tasks_(kj::heap<kj::TaskSet>(taskErrors)) {
  // What a predecessor that was killed left: its sandboxes' cgroups, and the
  // processes in them (its zygotes took the rest down with PR_SET_PDEATHSIG).
  try {
    auto top = cgroupsAt("");
    removeZygoteDirs(*top);
    for (const std::string& name : top->removeStale())
      log_.write("leftover_cgroup_removed", {{"cgroup", name}});
  } catch (const std::exception& e) {
    fprintf(stderr, "thatchd: cannot remove leftover cgroups: %s\n", e.what());
  }
  for (const RuntimeConfig& runtime : config_.runtimes) {
    std::vector<std::unique_ptr<Slot>>& slots = slots_[runtime.name];
    for (unsigned i = 0; i < zygoteCount(runtime); ++i) {
      auto slot = std::make_unique<Slot>();
      slot->config = runtime;
      slot->index = i;
      slot->dir = zygoteDir(runtime.name, i);
      start(*slot, true);  // at start-up a failure is fatal: the config is wrong
      slots.push_back(std::move(slot));
    }
  }
}

ZygoteSlots::~ZygoteSlots() {
  stopWatching();
  slots_.clear();
  // A zygote that did not end within its grace (thousands of sandboxes to
  // reap) was killed: what it could not remove is removed here.
  try {
    removeZygoteDirs(*cgroupsAt(""));
  } catch (const std::exception& e) {
    fprintf(stderr, "thatchd: cannot remove the zygotes' cgroups: %s\n", e.what());
  }
}

void ZygoteSlots::stopWatching() {
  tasks_ = nullptr;  // first: its promises watch the zygotes' sockets
  for (auto& [name, slots] : slots_)
    for (auto& slot : slots) {
      slot->watchTask = nullptr;
      slot->flushTask = nullptr;
      slot->flushing = false;
      slot->observer = nullptr;
    }
}

ZygoteSlots::Slot* ZygoteSlots::readySlot(const std::string& runtime) const {
  auto it = slots_.find(runtime);
  if (it == slots_.end()) return nullptr;
  Slot* best = nullptr;
  for (const std::unique_ptr<Slot>& slot : it->second) {
    if (!slot->zygote || !slot->zygote->ready()) continue;
    if (!best || std::pair(slot->starting, slot->sandboxes.size()) <
                     std::pair(best->starting, best->sandboxes.size()))
      best = slot.get();
  }
  return best;
}

ZygoteSlots::Slot* ZygoteSlots::ownerOf(uint64_t id) const {
  auto it = owners_.find(id);
  if (it == owners_.end() || !it->second->zygote || !it->second->zygote->ready()) return nullptr;
  return it->second;
}

void ZygoteSlots::forget(uint64_t id) {
  auto it = owners_.find(id);
  if (it == owners_.end()) return;
  it->second->sandboxes.erase(id);
  owners_.erase(it);
}

runtime::Zygote* ZygoteSlots::running(const std::string& runtime) {
  Slot* slot = readySlot(runtime);
  return slot ? slot->zygote.get() : nullptr;
}

ZygoteSlots::Slot& ZygoteSlots::runningSlot(const std::string& runtime) {
  Slot* slot = readySlot(runtime);
  if (!slot) throw std::runtime_error("runtime '" + runtime + "' is not running");
  return *slot;
}

void ZygoteSlots::requestSpawn(const std::string& runtime, uint64_t id,
                               const runtime::SpawnParams& params,
                               runtime::SandboxChannel::SandboxEnds ends) {
  Slot& slot = runningSlot(runtime);
  slot.zygote->requestSpawn(id, params, std::move(ends));
  owners_[id] = &slot;
  slot.sandboxes.insert(id);
  slot.starting++;
  flush(slot);
  if (!slot.spawnsWatched) watchSpawns(slot);
}

void ZygoteSlots::watchSpawns(Slot& slot) {
  if (!tasks_) return;  // stopWatching()
  slot.spawnsWatched = true;
  uint64_t replies = slot.replies, generation = slot.generation;
  tasks_->add(
      timer_.afterDelay(toKj(config_.host.spawnTimeout)).then([this, &slot, replies, generation]() {
        slot.spawnsWatched = false;
        if (!slot.zygote || slot.generation != generation || slot.starting == 0) return;
        if (slot.replies != replies) return watchSpawns(slot);
        // Stopped, looping or stuck in the kernel: it is not
        // coming back. SIGKILL first, so that died() does not
        // wait on a graceful shutdown.
        syscall(SYS_pidfd_send_signal, slot.zygote->pidfd(), SIGKILL, nullptr, 0);
        slot.watchTask = nullptr;  // not from within it: died() drops its observer
        died(slot, "hung: it answered none of its " + std::to_string(slot.starting) +
                       " spawn requests in " + base::formatDuration(config_.host.spawnTimeout) +
                       " ([host] spawn_timeout); killed");
      }));
}

bool ZygoteSlots::withdrawSpawn(uint64_t id) {
  Slot* slot = ownerOf(id);
  if (!slot || !slot->zygote->withdrawSpawn(id)) return false;
  slot->starting--;
  forget(id);
  return true;
}

void ZygoteSlots::kill(uint64_t id) {
  Slot* slot = ownerOf(id);
  if (!slot) return;
  slot->zygote->kill(id);
  flush(*slot);
}

void ZygoteSlots::flush(Slot& slot) {
  if (slot.flushing || !slot.zygote->sending()) return;
  slot.flushing = true;
  slot.flushTask = flushWhenWritable(slot).eagerlyEvaluate([](kj::Exception&& e) {
    fprintf(stderr, "thatchd: zygote flush failed: %s\n", e.getDescription().cStr());
  });
}

// kj's observer is edge-triggered: it waits for room after a send that
// found none (the zygote's queue tried already).
kj::Promise<void> ZygoteSlots::flushWhenWritable(Slot& slot) {
  return slot.observer->whenBecomesWritable().then([this, &slot]() -> kj::Promise<void> {
    try {
      if (!slot.zygote->flush()) return flushWhenWritable(slot);
    } catch (const std::exception& e) {
      // Its end is gone: watch() hears it close and handles the death.
      fprintf(stderr, "thatchd: cannot write to the %s zygote: %s\n", slot.config.name.c_str(),
              e.what());
    }
    slot.flushing = false;
    return kj::READY_NOW;
  });
}

pid_t ZygoteSlots::pid(const std::string& runtime, unsigned index) const {
  auto it = slots_.find(runtime);
  if (it == slots_.end() || index >= it->second.size()) return -1;
  const Slot& slot = *it->second[index];
  return slot.zygote && slot.zygote->ready() ? slot.zygote->pid() : -1;
}

void ZygoteSlots::start(Slot& slot, bool waitUntilReady) {
  const RuntimeConfig& runtime = slot.config;
  runtime::ZygoteOptions zygoteOptions;
  zygoteOptions.binary = options_.zygoteBinary;
  zygoteOptions.runtime = runtime.name;
  zygoteOptions.waitUntilReady = waitUntilReady;
  // Each zygote has a cgroup directory of its own: when one dies, what it
  // could not remove is exactly what is under it.
  zygoteOptions.extraArgs = {"--cgroup-subdir", cgroupPath(slot.dir)};
  if (config_.testing.zygoteStopsAfterFork)
    zygoteOptions.extraArgs.push_back("--testing-stop-after-fork");
  if (!options_.cgroupParent.empty()) {
    zygoteOptions.extraArgs.push_back("--cgroup-parent");
    zygoteOptions.extraArgs.push_back(options_.cgroupParent + "/" + cgroupPath(slot.dir));
  }
  for (const std::string& module : runtime.imports) {
    zygoteOptions.extraArgs.push_back("--import");
    zygoteOptions.extraArgs.push_back(module);
  }
  for (const std::string& dir : runtime.packageDirs) {
    zygoteOptions.extraArgs.push_back("--path");
    zygoteOptions.extraArgs.push_back(dir);
  }
  slot.zygote = std::make_unique<runtime::Zygote>(zygoteOptions);
  // The runtime's stem cells shared out among its zygotes.
  unsigned zygotes = zygoteCount(runtime);
  unsigned stems = runtime.stemCells / zygotes + (slot.index < runtime.stemCells % zygotes ? 1 : 0);
  if (stems > 0)
    slot.zygote->startStemCells(stems, stemCellTemplate(config_), options_.idSlotDir, options_.ids);
  slot.observer = kj::heap<kj::UnixEventPort::FdObserver>(
      eventPort_, slot.zygote->controlFd(),
      kj::UnixEventPort::FdObserver::OBSERVE_READ | kj::UnixEventPort::FdObserver::OBSERVE_WRITE);
  flush(slot);  // the stem cell configuration, if the socket did not take it
  slot.watchTask = watch(slot).eagerlyEvaluate([](kj::Exception&& e) {
    fprintf(stderr, "thatchd: zygote watch failed: %s\n", e.getDescription().cStr());
  });
}

// Its runtime answers start_failed until a replacement is up.
void ZygoteSlots::restart(Slot& slot) {
  restarts_++;
  tasks_->add(timer_.afterDelay(toKj(slot.backoff)).then([this, &slot]() {
    try {
      start(slot, false);  // watch() hears when it is ready
      slot.restarting = true;
      uint64_t generation = ++slot.generation;
      tasks_->add(timer_.afterDelay(toKj(kStartTimeout)).then([this, &slot, generation]() {
        if (slot.generation == generation && slot.restarting && slot.zygote)
          died(slot, "it did not become ready in " + std::to_string(kStartTimeout.count()) + " s");
      }));
    } catch (const std::exception& e) {
      log_.write("zygote_restart_failed", {{"runtime", slot.config.name}, {"error", e.what()}});
      slot.backoff = std::min<Duration>(slot.backoff * 2, std::chrono::seconds(30));
      restart(slot);
    }
  }));
}

kj::Promise<void> ZygoteSlots::watch(Slot& slot) {
  return slot.observer->whenBecomesReadable().then([this, &slot]() -> kj::Promise<void> {
    runtime::ZygoteEvents events;
    try {
      events = slot.zygote->readAvailable();
    } catch (const std::exception& e) {
      died(slot, e.what());
      return kj::READY_NOW;
    }
    if (slot.restarting && slot.zygote->ready()) {
      slot.restarting = false;
      slot.backoff = std::chrono::seconds(1);
      log_.write("zygote_restarted",
                 {{"runtime", slot.config.name}, {"pid", uint64_t(slot.zygote->pid())}});
    }
    for (const runtime::SpawnReply& reply : events.replies) {
      slot.replies++;
      if (auto owner = owners_.find(reply.id); owner != owners_.end() && owner->second == &slot) {
        slot.starting--;
        if (reply.failed) forget(reply.id);  // no exit event follows
      }
      listener_.spawnReplied(reply);
    }
    for (const runtime::ExitEvent& exit : events.exits) {
      forget(exit.id);
      listener_.sandboxExited(exit);
    }
    return watch(slot);
  });
}

void ZygoteSlots::died(Slot& slot, const std::string& error) {
  if (slot.restarting) {  // a replacement that never became ready
    slot.restarting = false;
    log_.write("zygote_restart_failed", {{"runtime", slot.config.name}, {"error", error}});
    slot.backoff = std::min<Duration>(slot.backoff * 2, std::chrono::seconds(30));
  } else {
    log_.write("zygote_died", {{"runtime", slot.config.name}, {"error", error}});
  }
  slot.flushTask = nullptr;
  slot.flushing = false;
  slot.observer = nullptr;
  slot.zygote.reset();
  removeCgroupsOf(slot.dir);
  std::vector<uint64_t> gone(slot.sandboxes.begin(), slot.sandboxes.end());
  for (uint64_t id : gone) owners_.erase(id);
  slot.sandboxes.clear();
  slot.starting = 0;
  listener_.zygoteDied(gone, error);
  if (restarting_) restart(slot);
}

void ZygoteSlots::removeZygoteDirs(sandbox::CgroupManager& top) {
  for (const std::string& dir : top.list())
    for (const RuntimeConfig& runtime : config_.runtimes)
      if (isZygoteDir(dir, runtime.name)) {
        removeCgroupsOf(dir);
        top.remove(dir);
      }
}

// Kills what is left in a zygote's cgroups and removes them (blocking for
// at most the kernel's teardown of what it kills).
void ZygoteSlots::removeCgroupsOf(const std::string& dir) {
  try {
    for (const std::string& name : cgroupsAt(dir)->removeStale())
      log_.write("leftover_cgroup_removed", {{"cgroup", dir + "/" + name}});
  } catch (const std::exception& e) {
    fprintf(stderr, "thatchd: cannot remove the cgroups of %s: %s\n", dir.c_str(), e.what());
  }
}

sandbox::CgroupManager& ZygoteSlots::sandboxCgroups(const std::string& dir) {
  std::unique_ptr<sandbox::CgroupManager>& cgroups = sandboxCgroups_[dir];
  if (!cgroups) cgroups = cgroupsAt(dir);
  return *cgroups;
}

sandbox::CgroupManager& ZygoteSlots::cgroupsOf(uint64_t id) {
  auto it = owners_.find(id);
  if (it == owners_.end())
    throw std::runtime_error("sandbox " + std::to_string(id) + " belongs to no running zygote");
  return sandboxCgroups(it->second->dir);
}

std::string ZygoteSlots::cgroupPath(const std::string& path) const {
  return path.empty() ? config_.cgroupSubdir : config_.cgroupSubdir + "/" + path;
}

std::unique_ptr<sandbox::CgroupManager> ZygoteSlots::cgroupsAt(const std::string& path) const {
  std::string relative = cgroupPath(path);
  return sandbox::detectCgroups(
      relative, options_.cgroupParent.empty() ? "" : options_.cgroupParent + "/" + relative);
}

}  // namespace supervisor
