// thatchd's core: invocations of registered functions, each in a warm
// sandbox of its function version when there is one (thatching) or in a new
// one from the runtime's zygote, under admission control, deadlines and
// limits. All state lives on one kj event loop; nothing here blocks on a
// sandbox.
//
// The parts, each in a file of its own:
//   supervisor.cc      the front door (admission), sandboxes taken and given
//                      back, prewarming, draining, statistics;
//   invocation_race.cc an invocation's run: its answer against its deadline
//                      and its sandbox's death, and what the outcome means;
//   send_ahead.cc      queued invocations written ahead into busy sandboxes;
//   idle_sandboxes.cc  what an idle sandbox costs the memory cap, and the
//                      freezing and thawing of idle ones;
//   reconfigure.cc     a new config taken while running (SIGHUP);
//   live_sandbox.h     a sandbox's states and what it owns;
//   invocation.h       an invocation's record;
//   zygote_slots.h     the zygotes and their cgroups;
//   spawn_request.h    what a zygote is asked for.
#pragma once

#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <kj/timer.h>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "sandbox/idmap.h"
#include "supervisor/admission.h"
#include "supervisor/busy_poll.h"
#include "supervisor/clock.h"
#include "supervisor/config.h"
#include "supervisor/event_log.h"
#include "supervisor/invocation.h"
#include "supervisor/live_sandbox.h"
#include "supervisor/registry.h"
#include "supervisor/stats.h"
#include "supervisor/warm_pools.h"
#include "supervisor/zygote_slots.h"

namespace supervisor {

struct SupervisorOptions {
  Config config;
  std::string zygoteBinary;                   // thatch-zygote
  std::string idSlotDir = "/run/thatch/ids";  // host uid leases (flock'd slots)
  sandbox::IdRange ids;
  EventLog::Sink logSink;  // one line per event; stderr when empty
  // The cgroup (relative to the v2 hierarchy) under which config.cgroupSubdir
  // goes, when not this process's own: thatchd's former cgroup after
  // sandbox::moveIntoLeafCgroup().
  std::string cgroupParent;
};

class Supervisor final : private ZygoteSlots::Listener {
 public:
  // Removes what a killed predecessor left, then starts one zygote per
  // configured runtime (blocking until each is ready).
  Supervisor(SupervisorOptions options, Registry& registry, const Clock& clock, kj::Timer& timer,
             kj::UnixEventPort& eventPort, kj::LowLevelAsyncIoProvider& io);
  ~Supervisor();  // kills every sandbox and stops the zygotes
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Always resolves, with a result or an explicit status. Dropping the
  // promise cancels the invocation: a sandbox running it is killed.
  // `version` 0: the function's latest; else that version, if still stored.
  kj::Promise<InvokeResult> invoke(const std::string& function, std::string payload,
                                   uint64_t version = 0);

  // The pid of the runtime's zygote, -1 if it is not running (for tests and
  // the operator's logs).
  // The runtime's `index`th zygote's pid, -1 unless it is running and ready.
  pid_t zygotePid(const std::string& runtime, unsigned index = 0) const;

  // Refuses new invocations, lets the running and queued ones finish for up
  // to `grace` (then kills them: shutting_down), then destroys every sandbox.
  kj::Promise<void> drain(Duration grace = std::chrono::seconds(30));

  Stats stats() const;
  bool draining() const { return draining_; }

  // Starts sandboxes of `function`'s latest version until `count` are warm
  // (at most its pool's max_warm, within the host's caps); resolves to how
  // many it started and kept. Throws if there is no such function.
  kj::Promise<unsigned> prewarm(const std::string& function, unsigned count);

  // Removes every version of `function` from the registry and kills its
  // warm sandboxes; running invocations finish, and their sandboxes are not
  // kept. False if there was no such function.
  bool remove(const std::string& function);

  // A deploy's last step: Registry::commit, keeping the versions of `name`
  // that invocations (queued, or admitted and waiting for a sandbox) or
  // sandboxes (starting, loading or running) use; then the warm sandboxes
  // of older versions retire. Throws as Registry::commit does.
  FunctionVersion commit(const std::string& name, const FunctionConfig& config, StagedCode& staged);

  // Takes a new config while running (thatchd's SIGHUP), which
  // compareConfigs() found to change only reloadable keys: the pools' and
  // the host's limits follow it, and the sandboxes of function versions
  // whose SandboxSettings it changes retire (idle ones now, busy ones when
  // their invocation ends), so that the next call starts one under the new
  // settings; the others stay warm.
  void reconfigure(const Config& next);
  const Config& config() const { return options_.config; }

  // The configured runtimes' names, in order.
  std::vector<std::string> runtimeNames() const;

  // For an event loop that polls while answers are due (supervisor::runUntil).
  BusyPoll& busyPoll() { return busyPoll_; }

 private:
  class Ticket;

  // --- supervisor.cc ---------------------------------------------------------
  kj::Promise<InvokeResult> queued(Invocation& invocation);
  kj::Promise<InvokeResult> admitted(Invocation& invocation);
  // Gives the invocation a sandbox (invocation.sandbox, kClaimed): a warm
  // one, the one it was handed over in, or a new one.
  kj::Promise<void> acquire(Invocation& invocation);
  // A new sandbox of `version`, in `started` (kStarting) as soon as it
  // exists, so that a caller that gives up can have it destroyed; resolves
  // once it is ready (kLoading).
  kj::Promise<void> startSandbox(const FunctionVersion& version, kj::Own<LiveSandbox>& started);
  kj::Promise<bool> startWarm(const FunctionVersion& version);
  void prewarm();  // every pool up to its minimum
  void track(const FunctionVersion& version);
  // What the config's [pool] gives a function version's warm pool.
  PoolLimits poolLimits() const;
  // The invocation is over: its sandbox goes on to what was sent ahead to
  // it, or back to its pool if it is fit to serve again, or is killed.
  // answered: the sandbox answered in step (a whole message, not past its
  // deadline), so it may serve again and has started what was sent ahead.
  void release(Invocation& invocation, InvokeResult& result, bool answered);
  // Its caller went away before it was answered.
  void cancel(Invocation& invocation);
  void moveInvocation(Invocation& invocation, Invocation::State next);
  void destroy(LiveSandbox& sandbox, const char* reason);
  void askZygoteToKill(const LiveSandbox& sandbox);
  void destroy(uint64_t sandboxId, const char* reason);
  void admit(uint64_t invocationId);
  void finished(const Invocation& invocation, const char* outcome);
  // An invocation's end in the statistics, by status and by function.
  void countInvocation(const std::string& function, std::string_view status);
  bool callsAreShort(const std::string& function) const;
  size_t countLiveSandboxes() const;
  void logResult(const std::string& function, const InvokeResult& result);
  kj::Promise<void> housekeeping();
  kj::Promise<void> finishInFlight(TimePoint deadline);

  // ZygoteSlots::Listener
  void spawnReplied(const runtime::SpawnReply& reply) override;
  void sandboxExited(const runtime::ExitEvent& exit) override;
  void zygoteDied(const std::vector<uint64_t>& sandboxes, const std::string& why) override;

  // --- invocation_race.cc ----------------------------------------------------
  Duration timeoutOf(const Invocation& invocation) const;
  kj::Promise<InvokeResult> execute(Invocation& invocation);
  kj::Promise<InvokeResult> afterDeath(Invocation& invocation, kj::Own<LiveSandbox> sandbox,
                                       std::string why);

  // --- idle_sandboxes.cc -----------------------------------------------------
  // Into its pool (kIdle) at what its cgroup uses now, and, with
  // freeze_idle, queued to be frozen; false if the pool did not keep it.
  bool keepIdle(LiveSandbox& sandbox, WarmPools::From from = WarmPools::From::kInvocation);
  // [pool] freeze_idle, on the housekeeping tick: freezes the sandboxes
  // idle for kFreezeAfter or longer (kIdle → kFrozen).
  void freezeLongIdle();
  // kFrozen → kIdle; false (and still kFrozen) if the thaw failed.
  bool thaw(LiveSandbox& sandbox);
  // Its cgroup's name, from its pid (a claimed stem cell keeps its own).
  void findCgroup(LiveSandbox& sandbox, pid_t pid);
  // With freeze_idle: checks every runtime's cgroups can freeze (throws if
  // not), and keeps the kernel's freezer switched on.
  void prepareFreezer();

  // --- send_ahead.cc ---------------------------------------------------------
  // Sends queued invocations of `function` ahead into busy sandboxes' channels.
  void sendAhead(const std::string& function);
  // `done` ended and its sandbox started `next`, which was sent ahead: `next`
  // takes over the sandbox and `done`'s place under the concurrency limit.
  bool handOver(Invocation& done, Invocation& next, bool reusable, const InvokeResult& result);
  // What was sent ahead leaves a sandbox that is going: back to waiting in
  // the queue, or answered `crashed` if the sandbox may have started it.
  void takeBack(LiveSandbox& sandbox, bool mayHaveStarted);

  SupervisorOptions options_;
  Registry& registry_;
  const Clock& clock_;
  kj::Timer& timer_;
  kj::UnixEventPort& eventPort_;
  kj::LowLevelAsyncIoProvider& io_;
  sandbox::IdAllocator ids_;
  EventLog log_;
  std::unique_ptr<ZygoteSlots> zygotes_;
  std::map<uint64_t, kj::Own<LiveSandbox>> sandboxes_;  // until their exit, by id
  WarmPools pools_;
  Admission admission_;
  // Invocations waiting for admission, by id: the fulfiller admits
  // (rejected: overloaded, shutting_down or crashed).
  struct Waiting {
    kj::Own<kj::PromiseFulfiller<void>> admit;
    kj::Own<Invocation> invocation;
  };
  std::map<uint64_t, Waiting> queued_;
  unsigned running_ = 0;                        // invocations in kRunning
  std::map<FunctionKey, unsigned> prewarming_;  // sandboxes starting for a pool's minimum
  // Idle sandboxes to freeze, in the order they went idle (an entry whose
  // sandbox went idle again since is stale and dropped).
  struct IdleEntry {
    uint64_t sandboxId;
    TimePoint idleSince;
  };
  std::deque<IdleEntry> toFreeze_;
  // With freeze_idle: an empty cgroup kept frozen (idle_sandboxes.cc).
  std::unique_ptr<sandbox::Cgroup> freezerOn_;
  std::map<std::string, uint64_t> currentVersion_;  // the newest version seen, by name
  std::map<FunctionKey, unsigned> invocationsOf_;   // invocations not done, by version
  std::map<std::string, Duration> lastRun_;         // of its latest answered call, by name
  uint64_t nextId_ = 0;
  bool draining_ = false;
  Stats stats_;
  BusyPoll busyPoll_;
  kj::Own<kj::TaskSet> tasks_;
  kj::Promise<void> housekeeper_ = nullptr;
  unsigned vethTag_;  // random, in this thatchd's egress veth names
};

}  // namespace supervisor
