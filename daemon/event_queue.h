// Asynchronous invocations (Lambda's `X-Amz-Invocation-Type: Event`): a
// bounded queue, persisted one file per event in a directory of its own, so
// that what was accepted runs at least once though thatchd is killed (-9)
// and restarted. An event is accepted once it is durable; writes, fsyncs
// and removals happen on threads of the queue's, the rest on thatchd's loop
// (which reads an event's file, bounded, when it is about to run).
//
// Events run in the order of acceptance, a retry (once its delay is over)
// before younger events.
//
// At least once, as Lambda's: an event that was running, or done but not yet
// removed, when thatchd stopped runs again at the next start. Attempts are
// counted in memory only: after a restart an event gets maxAttempts again.
//
// On disk, DIR/<20-digit sequence>.event, the sequence continuing across
// restarts so that the names' order is the order of acceptance: a 48-byte
// header (magic, CRC-32C of the header with the names and of the payload,
// accepted time, version, sizes), the function's name, the request id, the
// payload. A file whose checksums or size do not match is reported and
// removed, never run; a `.event.tmp` is a write a crash interrupted (its
// enqueue was never answered) and is removed at start.
#pragma once

#include <kj/async-unix.h>
#include <kj/timer.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "base/fd.h"
#include "supervisor/event_log.h"
#include "thatch/types.h"

namespace thatchd {

struct EventQueueLimits {
  size_t maxEvents = 10000;              // accepted (or being stored) and not yet done, in all
  uint64_t maxPayloadBytes = 256 << 10;  // Lambda's limit for asynchronous invocations
  // Payloads handed to the thread and not yet written: past it the disk is
  // behind, and enqueue() refuses (OVERLOADED) rather than hold them in memory.
  uint64_t maxUnstoredBytes = 64 << 20;
  unsigned concurrency = 16;  // events being invoked at once (0: none, they only accumulate)
  unsigned maxAttempts = 3;   // Lambda's default: the first try and 2 retries
  // After a failed try, doubled with each further one, up to 5 minutes; the
  // same after an overloaded or shutting_down answer, which counts no attempt.
  std::chrono::milliseconds retryDelay{1000};
  std::chrono::seconds maxAge{6 * 3600};  // Lambda's maximum event age: then dropped, logged
};

class EventQueue {
 public:
  struct Event {
    std::string function;
    uint64_t version = 0;  // 0: the latest
    std::string payload;
    std::string requestId;
  };
  // The supervisor's invoke: how the invocation ended. A rejection counts as
  // a failed attempt.
  using Invoke = std::function<kj::Promise<thatch::Status>(Event event)>;
  using Limits = EventQueueLimits;

  // Opens `dir` (creating it in its parent, locking it against a second queue): removes
  // the partial writes a crash left, reports and removes damaged files, and
  // queues every event found there, oldest first. Throws if the directory
  // cannot be opened or another queue holds it.
  EventQueue(std::string dir, kj::UnixEventPort& eventPort, kj::Timer& timer, Invoke invoke,
             Limits limits = {}, supervisor::EventLog log = supervisor::EventLog());
  // Cancels the invocations under way (their events stay on disk: the next
  // start runs them again) and waits for the write under way; an enqueue not
  // yet answered is answered now (stored, or DISCONNECTED if never written).
  ~EventQueue();
  EventQueue(const EventQueue&) = delete;
  EventQueue& operator=(const EventQueue&) = delete;

  // Resolves once the event is durable in the directory (written, fsync'd,
  // renamed into place, the directory fsync'd). Rejects with OVERLOADED when
  // the queue is full (maxEvents) or the disk is behind (maxUnstoredBytes),
  // with FAILED for a payload over maxPayloadBytes, a name over 1 KiB, or a
  // failure of the host (the disk full, say). Dropping the promise does not
  // withdraw the event.
  kj::Promise<void> enqueue(Event event);

  // Told of each event's end, once it is out of the queue: `succeeded`, or
  // dropped (attempts used up, too old, not retryable, damaged). One
  // listener (a schedule's runs: daemon/scheduler.h); in memory only.
  using Ended = std::function<void(const std::string& requestId, bool succeeded)>;
  void setEnded(Ended ended) { ended_ = std::move(ended); }

  size_t pending() const { return entries_.size() - storing_; }  // accepted, not done; running too
  size_t running() const { return running_; }
  // Whether the event of `requestId` is accepted and not done (a scheduler
  // finds its run a predecessor queued). Linear in the events held.
  bool holds(const std::string& requestId) const;

 private:
  enum class State {
    kStoring,    // on its way to the disk; enqueue() not yet answered
    kReady,      // durable, waiting for a free slot
    kRunning,    // handed to invoke
    kRetryWait,  // waiting for its retry delay
  };
  // What the queue keeps of an event in memory; its payload stays on disk
  // until it runs.
  struct Entry {
    State state = State::kStoring;
    std::string function;
    uint64_t version = 0;
    std::string requestId;
    uint64_t payloadBytes = 0;
    kj::TimePoint acceptedAt = kj::origin<kj::TimePoint>();  // on timer_'s clock
    unsigned attempts = 0;                                   // failed ones
    unsigned deferrals = 0;                      // overloaded or shutting_down answers in a row
    std::string lastOutcome;                     // for the log: the last status, or the rejection
    kj::Own<kj::PromiseFulfiller<void>> stored;  // kStoring: enqueue()'s answer
  };
  struct Store;  // an event on its way to the disk
  class Writer;  // the threads that write, fsync and remove files

  void openDirectory();
  void load();  // what the directory holds, at start
  void loadEvent(uint64_t seq);
  kj::Promise<void> watchWriter();
  void writerDone();
  void stored(Store& store);  // answers its enqueue()
  void dispatch();
  void start(uint64_t seq, Event event);
  void ended(uint64_t seq, std::optional<thatch::Status> status, std::string error);
  void retryLater(uint64_t seq, unsigned nth);
  // Done or dropped: out of memory, its file removed, ended_ told.
  void forget(uint64_t seq, bool succeeded);
  void logDropped(const Entry& entry, const char* reason);
  kj::Duration age(const Entry& entry) const;

  std::string dir_;
  kj::UnixEventPort& eventPort_;
  kj::Timer& timer_;
  Invoke invoke_;
  Ended ended_;
  Limits limits_;
  supervisor::EventLog log_;
  base::Fd dirFd_;                     // flock'ed while the queue is open
  std::map<uint64_t, Entry> entries_;  // by sequence: the order of acceptance
  std::set<uint64_t> ready_;           // kReady ones: the lowest runs first
  size_t storing_ = 0;
  size_t running_ = 0;
  uint64_t unstoredBytes_ = 0;
  uint64_t nextSeq_ = 1;
  std::unique_ptr<Writer> writer_;
  kj::Own<kj::UnixEventPort::FdObserver> writerObserver_;
  kj::Own<kj::TaskSet> tasks_;  // invocations, retry delays, the writer's watch: first to go
};

}  // namespace thatchd
