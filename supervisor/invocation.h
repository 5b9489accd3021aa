// One invocation on its way through thatchd: admission, a sandbox, a run.
// Owned by reference count: its promise chain holds it through a Ticket
// (supervisor.h), whose end while the invocation is unfinished is its
// cancellation; the admission queue and a sandbox it was sent ahead to hold
// references of their own, and see a cancelled one in state kCancelled.
#pragma once

#include <kj/refcount.h>

#include <cstdint>
#include <string>

#include "supervisor/clock.h"
#include "supervisor/live_sandbox.h"
#include "supervisor/registry.h"

namespace supervisor {

class Invocation : public kj::Refcounted {
 public:
  enum class State {
    kArrived,    // not admitted yet
    kQueued,     // waiting for admission (perhaps sent ahead to a busy sandbox)
    kRunning,    // admitted: getting a sandbox, or running in it
    kDone,       // answered
    kCancelled,  // its caller went away first
  };

  Invocation(uint64_t id, FunctionVersion version, std::string payload, TimePoint arrived)
      : id(id), version(std::move(version)), payload(std::move(payload)), arrived(arrived) {}

  const uint64_t id;
  const FunctionVersion version;
  const std::string payload;
  const TimePoint arrived;
  TimePoint admittedAt, startedAt;
  State state = State::kArrived;
  bool cold = false;  // a sandbox was started for it
  // Its function's calls are short: it holds one of the host's cores in
  // admission (Admission), as it did when it arrived.
  bool holdsCore = false;
  // The sandbox it holds while running (a reference: the sandbox holds none
  // back to a running invocation, only to those sent ahead to it).
  kj::Own<LiveSandbox> sandbox;
  // While queued: the sandbox its request was sent ahead to (by id; it is
  // in that sandbox's `ahead`). Once handed over it runs there.
  uint64_t sentAheadTo = 0;
};

}  // namespace supervisor
