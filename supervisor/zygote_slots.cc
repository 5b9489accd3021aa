#include "supervisor/zygote_slots.h"

#include <cstdio>

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

}  // namespace

struct ZygoteSlots::Slot {
  RuntimeConfig config;
  Duration backoff = std::chrono::seconds(1);
  std::unique_ptr<runtime::Zygote> zygote;  // null while it is not running
  kj::Own<kj::UnixEventPort::FdObserver> observer;
  bool restarting = false;                // a replacement, not ready yet
  uint64_t generation = 0;                // of replacements, for their start timeouts
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
  for (const RuntimeConfig& runtime : config_.runtimes) removeCgroupsOf(runtime.name);
  try {
    auto top = cgroupsAt("");
    for (const RuntimeConfig& runtime : config_.runtimes) top->remove(runtime.name);
    for (const std::string& name : top->removeStale())
      log_.write("leftover_cgroup_removed", {{"cgroup", name}});
  } catch (const std::exception& e) {
    fprintf(stderr, "thatchd: cannot remove leftover cgroups: %s\n", e.what());
  }
  for (const RuntimeConfig& runtime : config_.runtimes) {
    auto slot = std::make_unique<Slot>();
    slot->config = runtime;
    start(*slot, true);  // at start-up a failure is fatal: the config is wrong
    slots_[runtime.name] = std::move(slot);
  }
}

ZygoteSlots::~ZygoteSlots() {
  stopWatching();
  slots_.clear();
  // A zygote that did not end within its grace (thousands of sandboxes to
  // reap) was killed: what it could not remove is removed here.
  for (const RuntimeConfig& runtime : config_.runtimes) removeCgroupsOf(runtime.name);
  try {
    auto top = cgroupsAt("");
    for (const RuntimeConfig& runtime : config_.runtimes) top->remove(runtime.name);
  } catch (const std::exception& e) {
    fprintf(stderr, "thatchd: cannot remove the zygotes' cgroups: %s\n", e.what());
  }
}

void ZygoteSlots::stopWatching() {
  tasks_ = nullptr;  // first: its promises watch the zygotes' sockets
  for (auto& [name, slot] : slots_) {
    slot->flushTask = nullptr;
    slot->flushing = false;
    slot->observer = nullptr;
  }
}

ZygoteSlots::Slot* ZygoteSlots::readySlot(const std::string& runtime) const {
  auto it = slots_.find(runtime);
  if (it == slots_.end() || !it->second->zygote || !it->second->zygote->ready()) return nullptr;
  return it->second.get();
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
  flush(slot);
}

bool ZygoteSlots::withdrawSpawn(const std::string& runtime, uint64_t id) {
  Slot* slot = readySlot(runtime);
  return slot && slot->zygote->withdrawSpawn(id);
}

void ZygoteSlots::kill(const std::string& runtime, uint64_t id) {
  Slot& slot = runningSlot(runtime);
  slot.zygote->kill(id);
  flush(slot);
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

pid_t ZygoteSlots::pid(const std::string& runtime) const {
  Slot* slot = readySlot(runtime);
  return slot ? slot->zygote->pid() : -1;
}

void ZygoteSlots::start(Slot& slot, bool waitUntilReady) {
  const RuntimeConfig& runtime = slot.config;
  runtime::ZygoteOptions zygoteOptions;
  zygoteOptions.binary = options_.zygoteBinary;
  zygoteOptions.runtime = runtime.name;
  zygoteOptions.waitUntilReady = waitUntilReady;
  // Each zygote has a cgroup directory of its own: when one dies, what it
  // could not remove is exactly what is under it.
  zygoteOptions.extraArgs = {"--cgroup-subdir", cgroupPath(runtime.name)};
  if (!options_.cgroupParent.empty()) {
    zygoteOptions.extraArgs.push_back("--cgroup-parent");
    zygoteOptions.extraArgs.push_back(options_.cgroupParent + "/" + cgroupPath(runtime.name));
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
  if (runtime.stemCells > 0)
    slot.zygote->startStemCells(runtime.stemCells, stemCellTemplate(config_), options_.idSlotDir,
                                options_.ids);
  slot.observer = kj::heap<kj::UnixEventPort::FdObserver>(
      eventPort_, slot.zygote->controlFd(),
      kj::UnixEventPort::FdObserver::OBSERVE_READ | kj::UnixEventPort::FdObserver::OBSERVE_WRITE);
  flush(slot);  // the stem cell configuration, if the socket did not take it
  tasks_->add(watch(slot));
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
    for (const runtime::SpawnReply& reply : events.replies) listener_.spawnReplied(reply);
    for (const runtime::ExitEvent& exit : events.exits) listener_.sandboxExited(exit);
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
  removeCgroupsOf(slot.config.name);
  listener_.zygoteDied(slot.config.name);
  if (restarting_) restart(slot);
}

// Kills what is left in a zygote's cgroups and removes them (blocking for
// at most the kernel's teardown of what it kills).
void ZygoteSlots::removeCgroupsOf(const std::string& runtime) {
  try {
    for (const std::string& name : cgroupsAt(runtime)->removeStale())
      log_.write("leftover_cgroup_removed", {{"cgroup", runtime + "/" + name}});
  } catch (const std::exception& e) {
    fprintf(stderr, "thatchd: cannot remove the cgroups of %s: %s\n", runtime.c_str(), e.what());
  }
}

sandbox::CgroupManager& ZygoteSlots::sandboxCgroups(const std::string& runtime) {
  std::unique_ptr<sandbox::CgroupManager>& cgroups = sandboxCgroups_[runtime];
  if (!cgroups) cgroups = cgroupsAt(runtime);
  return *cgroups;
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
