// Busy polling ([host] busy_poll_us). On a virtualised host, being woken is
// the costliest part of a warm invocation: each context switch costs ~10 µs
// here, more than the handler's own call (docs/api.md has the figures). So
// while the host has idle cores, the two waits of a warm invocation poll
// instead of sleeping, each for at most the configured window:
//
//   - thatchd's event loop, while an answer is due from a sandbox that is
//     itself polling (awake, on another core: one that sleeps is woken by
//     the request, often onto thatchd's own core, where polling would only
//     keep it from running);
//   - a sandbox that has answered, for its next request (the window travels
//     with each request, and the sandbox's own CPU quota pays for it, so it
//     is only asked of sandboxes with at least a whole core).
//
// While the loop polls, an answer due from a polling sandbox comes through
// the sandbox's shared answer page (runtime/shared_answer.h) rather than
// its channel: watch() it, and the loop checks the page between its polls;
// before the loop sleeps it stops watching, and the answer goes to the
// channel as without the page.
//
// "Idle cores" is judged by the answers due: polling applies while, at every
// dispatch of the last 10-20 ms, fewer were due than there are cores (so that
// each poller can have one). Under load nothing polls and every wait sleeps,
// as without the option; a moment between two batches does not count as idle.
#pragma once

#include <kj/async.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "runtime/framing.h"
#include "runtime/shared_answer.h"
#include "supervisor/clock.h"

namespace supervisor {

class BusyPoll {
 public:
  // window 0 disables. cores: those this process may run on.
  BusyPoll(const Clock& clock, std::chrono::microseconds window, unsigned cores,
           double sandboxCpus);
  static constexpr std::chrono::milliseconds kEpoch{10};
  static constexpr std::chrono::microseconds kMaxWindow{runtime::kMaxBusyPollNs / 1000};

  // An invocation was written to a sandbox, `awake` if that sandbox is
  // polling on another core. Returns how long it should poll for its next
  // request after answering (ns; 0: sleep).
  uint64_t dispatched(bool awake);
  // Its answer came, or the invocation ended without one.
  void answered(bool awake);

  // How long the event loop should poll now (0: sleep).
  std::chrono::microseconds loopWindow() const;
  uint64_t answers() const { return answers_; }
  // Resolves at the next dispatch that calls for polling.
  kj::Promise<void> whenWanted();
  // Whether sandboxes are asked to poll at all (pages are worth creating).
  bool sandboxesPoll() const { return window_.count() > 0 && sandboxesPoll_; }
  // A new [limits] cpus: for the sandboxes started from now on.
  void setSandboxCpus(double sandboxCpus) { sandboxesPoll_ = sandboxCpus >= 1.0; }

  // Whether an answer due now may come through a shared answer page: the
  // loop is run by runUntil() and polls.
  bool pagesWatched() const { return looping_ && loopApplies(); }

  // For tests ([testing] answer_page_always): every answer that fits comes
  // through its sandbox's page, whatever the load, and runUntil() polls for
  // it as long as it takes (as long as its invocation waits). It spins a
  // core: never for a host that serves.
  void answerPageAlways(bool always) { pageAlways_ = always; }
  bool pageAlways() const { return pageAlways_ && looping_; }
  // A watched page's answer is due and the loop must poll for it, unbounded.
  bool mustPoll();
  // Resolves to true when the answer is in `page` (already set to
  // watching), to false when the loop has stopped watching it and the
  // answer goes to the channel. Dropping the promise stops the watch.
  kj::Promise<bool> watch(runtime::SharedAnswer& page);
  // runUntil()'s: between polls, and before the loop sleeps.
  void checkWatched();
  void abandonWatched();
  void setLooping(bool looping) { looping_ = looping; }

  // The number of cores this process may run on (its affinity mask).
  static unsigned usableCores();

 private:
  bool applies() const;
  bool loopApplies() const { return applies() && awakeDue_ == due_; }

  const Clock& clock_;
  std::chrono::microseconds window_;
  unsigned cores_;
  bool sandboxesPoll_;
  uint64_t due_ = 0, awakeDue_ = 0, answers_ = 0;
  // The most answers due at a dispatch, in this epoch and the one before.
  TimePoint epochStart_{};
  uint64_t peak_ = 0, previousPeak_ = 0;
  kj::Own<kj::PromiseFulfiller<void>> wanted_;
  bool looping_ = false;
  bool pageAlways_ = false;
  struct Watch {
    runtime::SharedAnswer* page;
    kj::Own<kj::PromiseFulfiller<bool>> fulfiller;
  };
  std::vector<Watch> watched_;
};

// Runs the event loop until `stop` resolves, polling rather than sleeping
// while `busyPoll` says so.
void runUntil(kj::Promise<void> stop, kj::WaitScope& waitScope, BusyPoll& busyPoll);

}  // namespace supervisor
