// Idle warm sandboxes seen through their cgroups: what each costs the
// host's warm-memory cap (what it uses, read as it goes idle), and, with
// [pool] freeze_idle, the freezer (docs/thatching.md, "Freezing idle
// sandboxes"). The cgroups are the zygote's (it creates and removes them);
// thatchd finds them by name under the zygote's directory and writes a
// control file or reads one: small, bounded writes and reads on the loop.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // see supervisor.cc

#include "supervisor/supervisor.h"

namespace supervisor {

namespace {

using State = SandboxState;

// Frozen once idle this long, on the housekeeping tick (so 100-200 ms after
// it went idle): a sandbox called again sooner is not frozen and thawed
// between calls, each costing a write to cgroupfs.
constexpr auto kFreezeAfter = std::chrono::milliseconds(100);

}  // namespace

void Supervisor::prepareFreezer() {
  for (const RuntimeConfig& runtime : options_.config.runtimes)
    if (sandbox::CgroupManager& cgroups = zygotes_->sandboxCgroups(runtime.name);
        !cgroups.canFreeze())
      throw std::runtime_error("pool.freeze_idle: this host has no cgroup freezer (" +
                               cgroups.describe() + ")");
  // The v1 freezer of Linux 6.1 and later is a static key in the kernel's
  // text, patched on when the host's first cgroup freezes and off when the
  // last thaws: 3-5 ms a write (measured on 6.18), where a write costs
  // 16-23 µs while any cgroup is frozen. One empty cgroup kept frozen keeps
  // it on, so that neither the first idle sandbox's freeze nor the last
  // one's thaw pays it (on the loop, the thaw in a warm start).
  try {
    freezerOn_ = zygotes_->sandboxCgroups("").create("freezer-on", {});
    freezerOn_->freeze();
  } catch (const std::exception& e) {
    freezerOn_.reset();  // only a cost: each freeze and thaw may pay the switch
    log_.write("freezer_hold_failed", {{"error", e.what()}});
  }
}

void Supervisor::findCgroup(LiveSandbox& box, pid_t pid) {
  try {
    box.cgroupName = zygotes_->cgroupsOf(box.id).nameOf(pid);
  } catch (const std::exception& e) {
    log_.write("sandbox_cgroup_unknown", {{"sandbox", box.id}, {"error", e.what()}});
    return;
  }
  if (box.cgroupName.empty())
    log_.write("sandbox_cgroup_unknown", {{"sandbox", box.id}, {"pid", uint64_t(pid)}});
}

bool Supervisor::keepIdle(LiveSandbox& box) {
  if (box.outdated) {
    destroy(box, "reconfigured");
    return false;
  }
  box.moveTo(State::kIdle);
  box.idleSince = clock_.now();
  // What it uses, not its limit: a warm sandbox is mostly shared with its
  // zygote. Its limit if the cgroup cannot be read (it is dying).
  uint64_t used = box.memoryBytes;
  if (!box.cgroupName.empty()) {
    try {
      used = zygotes_->cgroupsOf(box.id).memoryUsage(box.cgroupName);
    } catch (const std::exception&) {
    }
  }
  bool kept = true;
  for (uint64_t victim : pools_.putIdle(box.function, box.id, used)) {
    kept = kept && victim != box.id;
    destroy(victim, victim == box.id ? "pool_full" : "evicted");
  }
  if (kept && options_.config.pool.freezeIdle && !box.cgroupName.empty())
    toFreeze_.push_back({box.id, box.idleSince});
  return kept;
}

void Supervisor::freezeLongIdle() {
  TimePoint due = clock_.now() - kFreezeAfter;
  while (!toFreeze_.empty() && toFreeze_.front().idleSince <= due) {
    IdleEntry entry = toFreeze_.front();
    toFreeze_.pop_front();
    auto it = sandboxes_.find(entry.sandboxId);
    if (it == sandboxes_.end()) continue;
    LiveSandbox& box = *it->second;
    if (box.state() != State::kIdle || box.idleSince != entry.idleSince) continue;  // stale
    try {
      zygotes_->cgroupsOf(box.id).freeze(box.cgroupName);
    } catch (const std::exception& e) {
      log_.write("sandbox_freeze_failed", {{"sandbox", box.id}, {"error", e.what()}});
      continue;  // it stays idle, not frozen
    }
    box.moveTo(State::kFrozen);
    box.pollingUntilNs = 0;  // not polling for its next request any more
    stats_.freezes++;
  }
}

bool Supervisor::thaw(LiveSandbox& box) {
  if (box.state() != State::kFrozen) return true;
  try {
    zygotes_->cgroupsOf(box.id).thaw(box.cgroupName);
  } catch (const std::exception& e) {
    log_.write("sandbox_thaw_failed", {{"sandbox", box.id}, {"error", e.what()}});
    return false;
  }
  box.moveTo(State::kIdle);
  stats_.thaws++;
  return true;
}

}  // namespace supervisor
