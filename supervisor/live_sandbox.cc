#include "supervisor/live_sandbox.h"

#include <kj/debug.h>

#include <algorithm>

#include "base/kj_errors.h"
#include "supervisor/invocation.h"

namespace supervisor {

using State = SandboxState;

const char* stateName(SandboxState state) {
  switch (state) {
    case State::kStarting:
      return "starting";
    case State::kLoading:
      return "loading";
    case State::kIdle:
      return "idle";
    case State::kFrozen:
      return "frozen";
    case State::kClaimed:
      return "claimed";
    case State::kRunning:
      return "running";
    case State::kRetiring:
      return "retiring";
    case State::kKilled:
      return "killed";
    case State::kExited:
      return "exited";
  }
  return "unknown";
}

bool canMove(SandboxState from, SandboxState to) {
  if (to == State::kExited) return from != State::kExited;  // death comes at any time
  switch (from) {
    case State::kStarting:
      return to == State::kLoading || to == State::kKilled;
    case State::kLoading:
      // Ready: into its pool (a prewarm) or to the invocation that started it.
      return to == State::kIdle || to == State::kClaimed || to == State::kKilled;
    case State::kIdle:
      return to == State::kClaimed || to == State::kFrozen || to == State::kKilled;
    case State::kFrozen:
      // Thawed before it is claimed; a kill thaws it first (see the header).
      return to == State::kIdle || to == State::kKilled;
    case State::kClaimed:
      return to == State::kRunning || to == State::kKilled;
    case State::kRunning:
      // Back to its pool; on to what was sent ahead (kRunning again); that,
      // and then no more (kRetiring).
      return to == State::kIdle || to == State::kRunning || to == State::kRetiring ||
             to == State::kKilled;
    case State::kRetiring:
      return to == State::kRetiring || to == State::kKilled;
    case State::kKilled:
    case State::kExited:
      return false;
  }
  return false;
}

LiveSandbox::LiveSandbox(uint64_t id, FunctionKey function, std::string runtime,
                         std::unique_ptr<sandbox::IdLease> lease, uint64_t memoryBytes)
    : id(id),
      function(std::move(function)),
      runtime(std::move(runtime)),
      memoryBytes(memoryBytes),
      lease_(std::move(lease)),
      spawned_(nullptr),
      exited_(nullptr) {
  auto spawned = kj::newPromiseAndFulfiller<void>();
  spawnedFulfiller_ = kj::mv(spawned.fulfiller);
  spawned_ = spawned.promise.fork();
  auto exited = kj::newPromiseAndFulfiller<runtime::ExitEvent>();
  exitedFulfiller_ = kj::mv(exited.fulfiller);
  exited_ = exited.promise.fork();
}

void LiveSandbox::moveTo(SandboxState next) {
  KJ_REQUIRE(canMove(state_, next), "a sandbox cannot move so", id, stateName(state_),
             stateName(next));
  state_ = next;
}

bool LiveSandbox::busy() const {
  switch (state_) {
    case State::kStarting:
    case State::kLoading:
    case State::kClaimed:
    case State::kRunning:
    case State::kRetiring:
      return true;
    case State::kIdle:
    case State::kFrozen:
    case State::kKilled:
    case State::kExited:
      return false;
  }
  return false;
}

void LiveSandbox::spawnReplied(const runtime::SpawnReply& reply) {
  if (!spawnedFulfiller_->isWaiting()) return;
  if (reply.failed) {
    spawnedFulfiller_->reject(
        base::failure(kj::Exception::Type::FAILED,
                      "confinement step '" + reply.step + "' failed: " + reply.message));
  } else {
    spawnedFulfiller_->fulfill();
  }
}

void LiveSandbox::exitedWith(const runtime::ExitEvent& exit) {
  if (state_ == State::kExited) return;
  moveTo(State::kExited);
  exit_ = exit;
  if (spawnedFulfiller_->isWaiting())
    spawnedFulfiller_->reject(
        base::failure(kj::Exception::Type::FAILED, "the sandbox ended before it spawned"));
  if (exitedFulfiller_->isWaiting()) exitedFulfiller_->fulfill(runtime::ExitEvent(exit));
}

void LiveSandbox::gone(const std::string& why) {
  if (state_ == State::kExited) return;
  moveTo(State::kExited);
  kj::Exception reason = base::failure(kj::Exception::Type::DISCONNECTED, why);
  if (spawnedFulfiller_->isWaiting()) spawnedFulfiller_->reject(kj::cp(reason));
  if (exitedFulfiller_->isWaiting()) exitedFulfiller_->reject(kj::mv(reason));
}

bool LiveSandbox::aheadHoldsAbandoned() const {
  return std::any_of(ahead.begin(), ahead.end(), [](const kj::Own<Invocation>& invocation) {
    return invocation->state != Invocation::State::kQueued;
  });
}

}  // namespace supervisor
