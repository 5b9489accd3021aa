// A sandbox thatchd started and has not yet seen end: its state, named and
// moved only along the allowed transitions, and what it owns (its host id
// lease, its channel, the promise of its exit). Owned by reference count:
// the supervisor's table holds one reference while the sandbox lives, and
// each invocation using it and each promise waiting on it hold their own,
// so none outlives the record by convention.
#pragma once

#include <kj/async.h>
#include <kj/refcount.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "runtime/sandbox_channel.h"
#include "runtime/zygote_control.h"
#include "sandbox/idmap.h"
#include "supervisor/clock.h"
#include "supervisor/keep_alive.h"

namespace supervisor {

class Invocation;

// The moves canMove() allows; besides these, any state but kExited may
// become kExited (death comes at any time):
//   kStarting  → kLoading, kKilled
//   kLoading   → kIdle (a prewarm), kClaimed (the invocation that started
//                it), kKilled
//   kIdle      → kClaimed, kFrozen, kKilled
//   kFrozen    → kIdle (thawed), kKilled (thawed first, docs below)
//   kClaimed   → kRunning, kKilled
//   kRunning   → kIdle, kRunning (handed over to what was sent ahead),
//                kRetiring, kKilled
//   kRetiring  → kRetiring (handed over), kKilled
//   kKilled    → kExited
enum class SandboxState {
  kStarting,  // asked of the zygote, not spawned yet
  kLoading,   // spawned: importing the handler; `ready` not read yet
  kIdle,      // ready, in its function version's warm pool
  // Idle and frozen ([pool] freeze_idle): its cgroup's freezer was asked to
  // stop it (it may still be stopping: nothing waits for that). It is
  // thawed, back to kIdle, before anything else: a claim (so no request,
  // sent ahead or not, and no answer page is ever used with it) or a kill
  // (a frozen v1 task takes no SIGKILL). kFrozen → kKilled stays allowed
  // for a thaw that failed: the zygote's kill thaws again.
  kFrozen,
  kClaimed,   // given to an invocation whose request is not in the channel yet
  kRunning,   // an invocation's request is in the channel (or being written)
  kRetiring,  // running; it goes once what was sent ahead to it is served
  kKilled,    // asked to die (or to be killed once spawned); its exit is due
  kExited,    // its exit event came (or it never spawned): gone from the host
};
const char* stateName(SandboxState state);
// Whether `from` may become `to` (the list above).
bool canMove(SandboxState from, SandboxState to);

class LiveSandbox : public kj::Refcounted {
 public:
  LiveSandbox(uint64_t id, FunctionKey function, std::string runtime,
              std::unique_ptr<sandbox::IdLease> lease, uint64_t memoryBytes);
  LiveSandbox(const LiveSandbox&) = delete;
  LiveSandbox& operator=(const LiveSandbox&) = delete;

  const uint64_t id;
  const FunctionKey function;
  const std::string runtime;  // its zygote's
  const uint64_t memoryBytes;

  SandboxState state() const { return state_; }
  // Throws (a bug) unless canMove(state(), next).
  void moveTo(SandboxState next);
  // Not killed and not exited: it counts against the host's cap.
  bool alive() const { return state_ != SandboxState::kKilled && state_ != SandboxState::kExited; }
  // kRunning or kRetiring.
  bool running() const {
    return state_ == SandboxState::kRunning || state_ == SandboxState::kRetiring;
  }
  // Starting, claimed or running: someone is waiting on it.
  bool busy() const;

  sandbox::IdLease& lease() { return *lease_; }
  // Why thatchd killed it ("" if it did not): its death is that, not a crash.
  std::string killedFor;
  // Set once the spawn is requested.
  kj::Own<runtime::SandboxChannel> channel;
  // Its cgroup's name under its zygote's cgroup directory, once spawned
  // ("" if it could not be found): sbx-<id> for a fresh fork, the stem
  // cell's own for a claimed stem.
  std::string cgroupName;
  TimePoint idleSince;  // when it last went idle
  // A new config changed what it was spawned with (Supervisor::reconfigure):
  // it goes when its invocation ends instead of back to its pool.
  bool outdated = false;

  // The zygote's reply to its spawn: resolves when it spawned, rejects when
  // it could not.
  kj::Promise<void> whenSpawned() { return spawned_.addBranch(); }
  void spawnReplied(const runtime::SpawnReply& reply);

  // Its exit event; fulfilled once (kExited), or rejected when the
  // supervisor goes first.
  kj::Promise<runtime::ExitEvent> whenExited() { return exited_.addBranch(); }
  void exitedWith(const runtime::ExitEvent& exit);
  // Gone without an exit event: it never spawned, or its zygote died.
  void gone(const std::string& why);
  const std::optional<runtime::ExitEvent>& exit() const { return exit_; }

  // --- the running invocation ----------------------------------------------
  TimePoint runningSince, deadline;
  uint64_t answerFrom = 0;             // channel->bytesRead() where its answer starts
  Duration lastRun = Duration::max();  // the previous invocation's run
  // Sending ahead (docs/thatching.md): the queued invocations whose requests
  // wait in the channel behind the running one, in order. One that stops
  // waiting there (cancelled, or timed out in the queue) stays: the sandbox
  // runs it all the same, so nothing may be served after it.
  std::deque<kj::Own<Invocation>> ahead;
  bool aheadHoldsAbandoned() const;
  // The running invocation's answer may come through the shared page:
  // nothing may be sent ahead behind it, or its successor's answer could
  // come through the channel first and be taken for it.
  bool answerInPage = false;
  // The write of what was sent ahead (declared after `channel`: it goes first).
  kj::Promise<void> aheadWrite = nullptr;
  // Busy polling: until when it polls for its next request, and the core it
  // answered from.
  uint64_t pollingUntilNs = 0;
  int cpu = -1;

  // An answer waits to be read, in the channel or the shared page.
  bool answerWaiting() const { return channel && channel->answerWaiting(); }
  // Some of the running invocation's answer has come: the sandbox may have
  // gone on to what was sent ahead.
  bool answerBegun() const {
    return answerWaiting() || (channel && channel->bytesRead() > answerFrom);
  }

 private:
  SandboxState state_ = SandboxState::kStarting;
  std::unique_ptr<sandbox::IdLease> lease_;
  kj::Own<kj::PromiseFulfiller<void>> spawnedFulfiller_;
  kj::ForkedPromise<void> spawned_;
  kj::Own<kj::PromiseFulfiller<runtime::ExitEvent>> exitedFulfiller_;
  kj::ForkedPromise<runtime::ExitEvent> exited_;
  std::optional<runtime::ExitEvent> exit_;
};

}  // namespace supervisor
