#include "supervisor/admission.h"

#include <algorithm>
#include <stdexcept>

namespace supervisor {

Admission::Admission(const Clock& clock, unsigned hostConcurrency)
    : clock_(clock), hostConcurrency_(hostConcurrency) {}

void Admission::setLimits(const std::string& function, AdmissionLimits limits) {
  functions_[function].limits = limits;
}

AdmissionLimits Admission::limits(const std::string& function) const {
  auto it = functions_.find(function);
  return it == functions_.end() ? AdmissionLimits{} : limitsOf(it->second);
}

Admission::Decision Admission::arrive(const std::string& function, uint64_t invocationId,
                                      bool holdsCore) {
  if (queuedById_.count(invocationId) != 0)
    throw std::logic_error("invocation " + std::to_string(invocationId) + " arrived twice");
  auto fn = functions_.try_emplace(function).first;
  FunctionState& state = fn->second;
  AdmissionLimits limits = limitsOf(state);
  // Reserved ones wait for their sandbox, not for room: no overtaking them.
  bool waiting = std::any_of(state.queue.begin(), state.queue.end(),
                             [](const Waiter& w) { return !w.reserved; });
  // With room on the host no function has a waiter that could start (room
  // goes to waiters first): starting this one overtakes nobody.
  if (!waiting && state.running < limits.concurrency && (!holdsCore || hostHasRoom())) {
    ++state.running;
    hostRunning_ += holdsCore;
    ++counters_.admitted;
    return Decision::kRun;
  }
  if (state.queue.size() >= limits.queueLength) {
    ++counters_.overloaded;
    forgetIfUnused(fn);
    return Decision::kOverloaded;
  }
  TimePoint now = clock_.now();
  // Saturates: a timeout of Duration::max() means "wait for ever".
  TimePoint deadline =
      limits.queueTimeout > TimePoint::max() - now ? TimePoint::max() : now + limits.queueTimeout;
  auto waiter = state.queue.insert(state.queue.end(),
                                   Waiter{invocationId, deadline, ++nextArrival_, holdsCore});
  // A multimap keeps equal deadlines in insertion order: FIFO among them.
  auto deadlineAt = deadlines_.emplace(deadline, invocationId);
  queuedById_.emplace(invocationId, QueuedAt{fn, waiter, deadlineAt});
  ++counters_.queued;
  return Decision::kQueued;
}

std::optional<uint64_t> Admission::finish(const std::string& function, bool holdsCore) {
  auto fn = functions_.find(function);
  if (fn == functions_.end() || fn->second.running == 0)
    throw std::logic_error("finish() for " + function + " with nothing running");
  if (holdsCore && hostRunning_ == 0)
    throw std::logic_error("finish() for " + function + " holding a core, with none held");
  --fn->second.running;
  hostRunning_ -= holdsCore;
  std::optional<uint64_t> next = startNext(fn);
  forgetIfUnused(fn);
  if (!next) next = startOldest();
  return next;
}

std::optional<uint64_t> Admission::releaseCore() {
  if (hostRunning_ == 0) throw std::logic_error("releaseCore() with no core held");
  --hostRunning_;
  return startOldest();
}

std::vector<uint64_t> Admission::admitWaiting(const std::string& function) {
  std::vector<uint64_t> started;
  auto fn = functions_.find(function);
  if (fn == functions_.end()) return started;
  while (std::optional<uint64_t> next = startNext(fn)) started.push_back(*next);
  return started;
}

bool Admission::cancel(const std::string& function, uint64_t invocationId) {
  auto queued = queuedById_.find(invocationId);
  if (queued == queuedById_.end() || queued->second.function->first != function) return false;
  unqueue(queued);
  ++counters_.cancelled;
  return true;
}

bool Admission::reserve(uint64_t invocationId) {
  auto queued = queuedById_.find(invocationId);
  if (queued == queuedById_.end()) return false;
  queued->second.waiter->reserved = true;
  return true;
}

void Admission::unreserve(uint64_t invocationId) {
  auto queued = queuedById_.find(invocationId);
  if (queued != queuedById_.end()) queued->second.waiter->reserved = false;
}

std::optional<uint64_t> Admission::firstUnreserved(const std::string& function) const {
  auto fn = functions_.find(function);
  if (fn == functions_.end()) return std::nullopt;
  for (const Waiter& waiter : fn->second.queue)
    if (!waiter.reserved) return waiter.invocationId;
  return std::nullopt;
}

std::optional<TimePoint> Admission::queueDeadline(uint64_t invocationId) const {
  auto queued = queuedById_.find(invocationId);
  if (queued == queuedById_.end()) return std::nullopt;
  return queued->second.waiter->deadline;
}

bool Admission::finishInto(const std::string& function, uint64_t next) {
  auto queued = queuedById_.find(next);
  if (queued == queuedById_.end() || queued->second.function->first != function ||
      queued->second.function->second.running == 0)
    return false;
  // Still counted as running (the one that ended hands over its place).
  unqueue(queued);
  ++counters_.startedFromQueue;
  return true;
}

std::vector<uint64_t> Admission::expireQueued() {
  TimePoint now = clock_.now();
  std::vector<uint64_t> expired;
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    uint64_t id = deadlines_.begin()->second;
    unqueue(queuedById_.find(id));
    expired.push_back(id);
  }
  counters_.queueTimeouts += expired.size();
  return expired;
}

std::optional<TimePoint> Admission::nextQueueDeadline() const {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

unsigned Admission::running(const std::string& function) const {
  auto it = functions_.find(function);
  return it == functions_.end() ? 0 : it->second.running;
}

unsigned Admission::queued(const std::string& function) const {
  auto it = functions_.find(function);
  return it == functions_.end() ? 0 : static_cast<unsigned>(it->second.queue.size());
}

std::optional<uint64_t> Admission::startNext(Functions::iterator fn) {
  FunctionState& state = fn->second;
  if (state.running >= limitsOf(state).concurrency) return std::nullopt;
  auto waiter = std::find_if(state.queue.begin(), state.queue.end(),
                             [](const Waiter& w) { return !w.reserved; });
  if (waiter == state.queue.end() || (waiter->holdsCore && !hostHasRoom())) return std::nullopt;
  uint64_t id = waiter->invocationId;
  // Counted as running before it leaves the queue, so that unqueue() does
  // not find the function unused and erase it.
  ++state.running;
  hostRunning_ += waiter->holdsCore;
  unqueue(queuedById_.find(id));
  ++counters_.startedFromQueue;
  return id;
}

// A core was freed: only a waiter that holds one can have been waiting for
// it (one that does not waits for its function's room alone).
std::optional<uint64_t> Admission::startOldest() {
  if (!hostHasRoom()) return std::nullopt;
  Functions::iterator oldest = functions_.end();
  uint64_t oldestArrival = UINT64_MAX;
  for (auto fn = functions_.begin(); fn != functions_.end(); ++fn) {
    if (fn->second.running >= limitsOf(fn->second).concurrency) continue;
    for (const Waiter& waiter : fn->second.queue) {
      if (waiter.reserved) continue;
      if (waiter.holdsCore && waiter.arrival < oldestArrival) {
        oldestArrival = waiter.arrival;
        oldest = fn;
      }
      break;
    }
  }
  if (oldest == functions_.end()) return std::nullopt;
  return startNext(oldest);
}

void Admission::unqueue(std::unordered_map<uint64_t, QueuedAt>::iterator queued) {
  QueuedAt at = queued->second;
  at.function->second.queue.erase(at.waiter);
  deadlines_.erase(at.deadline);
  queuedById_.erase(queued);
  forgetIfUnused(at.function);
}

void Admission::forgetIfUnused(Functions::iterator fn) {
  // Default limits, nothing running or queued: nothing to remember.
  if (!fn->second.limits && fn->second.running == 0 && fn->second.queue.empty())
    functions_.erase(fn);
}

}  // namespace supervisor
