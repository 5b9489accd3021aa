// Admission of invocations per function: at most `concurrency` running;
// beyond that a bounded FIFO wait queue, each entry with its own deadline;
// beyond that fail fast (`overloaded`). And host-wide: at most
// `hostConcurrency` invocations that hold a core (short calls, which only
// fight over the cores when more run than there are) of all functions
// together, the others of them waiting in their functions' queues (and
// sent ahead into busy sandboxes from there); room on the host goes first
// to the function that made it (its sandbox is warm), then to the oldest
// waiter. Invocations that do not hold a core (long ones, which may well
// wait on the network) are bounded by their function's limit only.
// Pure bookkeeping of invocation ids on the supervisor's event loop.
// Semantics: docs/thatching.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "supervisor/clock.h"

namespace supervisor {

struct AdmissionLimits {
  unsigned concurrency = 8;   // 0 pauses the function: arrivals queue or are refused
  unsigned queueLength = 64;  // 0: fail fast as soon as `concurrency` run
  Duration queueTimeout = std::chrono::seconds(10);  // queued this long (or longer) = timed out
};

// Each invocation id is, from arrive() until it is handed back, in exactly
// one state: running (kRun, or handed back by finish()/admitWaiting()) or
// queued. It leaves through finish() (running), cancel() or expireQueued()
// (queued); kOverloaded means it never entered.
class Admission {
 public:
  // hostConcurrency 0: no host-wide bound.
  explicit Admission(const Clock& clock, unsigned hostConcurrency = 0);
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;

  // Defaults apply until set. Lowering concurrency never kills running ones:
  // nothing more starts until fewer than the new limit run. Lowering
  // queueLength keeps those queued; queueTimeout applies to later arrivals
  // (each entry keeps the deadline it got). After raising concurrency, call
  // admitWaiting() to start queued ones in the new room.
  void setLimits(const std::string& function, AdmissionLimits limits);
  AdmissionLimits limits(const std::string& function) const;

  enum class Decision { kRun, kQueued, kOverloaded };
  // kRun only if nothing unreserved is queued (FIFO: no overtaking) and,
  // for one that holds a core, the host has one free. Throws
  // std::logic_error if `invocationId` is already queued.
  Decision arrive(const std::string& function, uint64_t invocationId, bool holdsCore = false);

  // A running invocation ended (`holdsCore` as it arrived): the next
  // queued one, of this function or, with a core freed, the oldest of any,
  // now counted as running; or none. Throws std::logic_error if none was
  // running.
  std::optional<uint64_t> finish(const std::string& function, bool holdsCore = false);
  // A running invocation gives back the core it held (it starts a sandbox:
  // the zygote, not the cores, bounds cold starts) and runs on without:
  // the oldest waiter that holds one starts, if any. Throws
  // std::logic_error if no core is held.
  std::optional<uint64_t> releaseCore();

  // Queued ones that fit under the concurrency limit now (after it was
  // raised), in FIFO order, now counted as running.
  std::vector<uint64_t> admitWaiting(const std::string& function);

  // A queued invocation whose caller went away; false if not queued (it may
  // be running: then the caller cancels the run and calls finish()).
  bool cancel(const std::string& function, uint64_t invocationId);

  // Reserving a queued invocation (its request was sent ahead to a busy
  // sandbox) keeps it queued, in its place and under its deadline, but
  // finish() and admitWaiting() pass over it: it starts only through
  // finishInto(), or after unreserve(). False if it is not queued.
  bool reserve(uint64_t invocationId);
  void unreserve(uint64_t invocationId);
  // The oldest queued invocation that is not reserved, and a queued one's
  // deadline.
  std::optional<uint64_t> firstUnreserved(const std::string& function) const;
  std::optional<TimePoint> queueDeadline(uint64_t invocationId) const;
  // A running invocation ended and the queued `next` runs in its place (in
  // the same sandbox, where it was sent ahead). False, and nothing done, if
  // `next` is not queued or nothing of `function` is running. `next` holds
  // the core (or not) that the one that ended held: the caller carries it
  // over.
  bool finishInto(const std::string& function, uint64_t next);

  // Queued for their whole queueTimeout: the caller answers them
  // `overloaded` (queue timeout). Earliest deadline first.
  std::vector<uint64_t> expireQueued();

  // When expireQueued() next has work: at that instant. None if none queued.
  std::optional<TimePoint> nextQueueDeadline() const;

  unsigned running(const std::string& function) const;
  unsigned queued(const std::string& function) const;
  unsigned runningOnHost() const { return hostRunning_; }
  unsigned hostConcurrency() const { return hostConcurrency_; }

  struct Counters {
    // arrive()'s decisions: admitted + queued + overloaded = arrivals.
    uint64_t admitted = 0, queued = 0, overloaded = 0;
    // How queued ones left: startedFromQueue + queueTimeouts + cancelled
    // + those still queued = queued.
    uint64_t startedFromQueue = 0, queueTimeouts = 0, cancelled = 0;
  };
  const Counters& counters() const { return counters_; }

 private:
  struct Waiter {
    uint64_t invocationId;
    TimePoint deadline;
    uint64_t arrival = 0;
    bool holdsCore = false;
    bool reserved = false;
  };
  struct FunctionState {
    std::optional<AdmissionLimits> limits;  // none: the defaults
    unsigned running = 0;
    std::list<Waiter> queue;  // arrival order
  };
  using Functions = std::map<std::string, FunctionState, std::less<>>;
  using Deadlines = std::multimap<TimePoint, uint64_t>;  // -> invocationId
  struct QueuedAt {
    Functions::iterator function;
    std::list<Waiter>::iterator waiter;
    Deadlines::iterator deadline;
  };

  static AdmissionLimits limitsOf(const FunctionState& state) {
    return state.limits.value_or(AdmissionLimits{});
  }
  // Takes a queued invocation out of every index; erases its function's
  // state if that holds nothing worth keeping.
  void unqueue(std::unordered_map<uint64_t, QueuedAt>::iterator queued);
  // The oldest unreserved queued one starts running, if there is room for
  // it (in its function, and a core if it holds one).
  std::optional<uint64_t> startNext(Functions::iterator function);
  // Of every function with room, the oldest unreserved waiter that holds a
  // core starts (one was freed).
  std::optional<uint64_t> startOldest();
  bool hostHasRoom() const { return hostConcurrency_ == 0 || hostRunning_ < hostConcurrency_; }
  void forgetIfUnused(Functions::iterator function);

  const Clock& clock_;
  const unsigned hostConcurrency_;
  unsigned hostRunning_ = 0;
  uint64_t nextArrival_ = 0;  // orders waiters across functions
  Functions functions_;
  Deadlines deadlines_;
  std::unordered_map<uint64_t, QueuedAt> queuedById_;
  Counters counters_;
};

}  // namespace supervisor
