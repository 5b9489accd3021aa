// Sending ahead (docs/thatching.md#sending-ahead): when a function is at its
// concurrency limit, up to kMaxSentAhead of its waiting invocations are
// written into the channel of a busy sandbox of that function running a
// short invocation, behind it. The sandbox starts each the moment it has
// answered the one before; thatchd hands it over when it reads that answer
// (handOver). Admission keeps them queued but reserved, so that FIFO
// hand-overs pass over them; if the sandbox goes before answering in step,
// they wait again and run elsewhere, once (takeBack).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // see supervisor.cc

#include <algorithm>
#include <vector>

#include "supervisor/supervisor.h"

namespace supervisor {

namespace {

using State = SandboxState;

// Invocations sent ahead into one sandbox at most: enough to keep it from
// sleeping while thatchd reads an answer and hands the next one over.
constexpr size_t kMaxSentAhead = 4;
// As in invocation_race.cc: how long an answer already in the channel at a
// deadline is waited for.
constexpr auto kAnswerGrace = std::chrono::milliseconds(100);

}  // namespace

void Supervisor::sendAhead(const std::string& function) {
  Duration under = options_.config.pool.sendAheadUnder;
  if (under.count() == 0 || draining_) return;
  TimePoint now = clock_.now();
  // The oldest waiting invocation that is not sent ahead yet, if it may go
  // behind `s`'s running invocation and what waits there already: never
  // past its queue deadline (each of those is over, or killed, by its own).
  auto nextFor = [&](const LiveSandbox& s) -> Invocation* {
    std::optional<uint64_t> id = admission_.firstUnreserved(function);
    if (!id) return nullptr;
    auto waiting = queued_.find(*id);
    std::optional<TimePoint> queueDeadline = admission_.queueDeadline(*id);
    if (waiting == queued_.end() || !queueDeadline) return nullptr;
    Invocation& inv = *waiting->second.invocation;
    TimePoint latestStart = s.deadline + timeoutOf(inv) * s.ahead.size() + kAnswerGrace;
    return *queueDeadline > latestStart ? &inv : nullptr;
  };
  for (;;) {
    std::optional<uint64_t> first = admission_.firstUnreserved(function);
    auto waiting = first ? queued_.find(*first) : queued_.end();
    if (waiting == queued_.end()) return;
    uint64_t version = waiting->second.invocation->version.version;
    // The sandbox of its version with the fewest sent ahead, among those
    // running a short invocation (so that what is sent waits little),
    // behind a request already in the channel (never before it). Running,
    // so never a frozen one (kFrozen is thawed to kIdle before a claim).
    LiveSandbox* target = nullptr;
    for (auto& [sandboxId, s] : sandboxes_) {
      bool open = s->state() == State::kRunning && !s->answerInPage && !s->channel->writing() &&
                  s->ahead.size() < kMaxSentAhead && !s->aheadHoldsAbandoned();
      if (open && s->function.name == function && s->function.version == version &&
          s->lastRun < under && now - s->runningSince < under &&
          (!target || s->ahead.size() < target->ahead.size()))
        target = s.get();
    }
    if (!target) return;
    // As many as fit, in one write.
    std::vector<runtime::InvocationRequest> requests;
    while (target->ahead.size() < kMaxSentAhead) {
      Invocation* inv = nextFor(*target);
      if (!inv || inv->version.version != version) break;
      admission_.reserve(inv->id);
      inv->sentAheadTo = target->id;
      target->ahead.push_back(kj::addRef(*inv));
      stats_.sentAhead++;
      runtime::InvocationRequest request;
      request.requestId = "inv-" + std::to_string(inv->id);
      request.payload = inv->payload;
      // Its deadline counts from when the sandbox starts it.
      request.timeoutNs =
          std::chrono::duration_cast<std::chrono::nanoseconds>(timeoutOf(*inv)).count();
      requests.push_back(std::move(request));
    }
    if (requests.empty()) return;
    // The write is the target's own (it goes with the sandbox), so the
    // continuation may refer to it. A failed write leaves the channel
    // refusing more (SandboxChannel::writing()): the running invocation's
    // read finds it broken.
    target->aheadWrite =
        target->channel->sendAll(requests)
            .then(
                [this, function]() {
                  // Not from here: sendAhead() may replace this promise.
                  if (admission_.queued(function) > 0)
                    tasks_->add(kj::evalLater([this, function]() { sendAhead(function); }));
                },
                [](kj::Exception&&) {})
            .eagerlyEvaluate(nullptr);
  }
}

bool Supervisor::handOver(Invocation& done, Invocation& next, bool reusable,
                          const InvokeResult& result) {
  auto waiting = queued_.find(next.id);
  if (waiting == queued_.end() || !admission_.finishInto(done.version.name, next.id)) return false;
  next.holdsCore = done.holdsCore;  // it runs in done's place (Admission::finishInto)
  LiveSandbox& box = *done.sandbox;
  kj::Own<Invocation> handed = kj::mv(box.ahead.front());
  box.ahead.pop_front();
  // Dead or killed since it answered, it is `next`'s end all the same.
  if (box.alive()) box.moveTo(reusable ? State::kRunning : State::kRetiring);
  box.runningSince = clock_.now();
  box.deadline = box.runningSince + timeoutOf(next);
  box.answerFrom = box.channel->bytesRead();
  // `next` runs from now on: a cancel kills the sandbox. execute() finds its
  // request sent (sentAheadTo).
  next.sandbox = kj::mv(done.sandbox);
  moveInvocation(next, Invocation::State::kRunning);
  auto admit = kj::mv(waiting->second.admit);
  queued_.erase(waiting);
  admit->fulfill();
  stats_.sentAheadStarted++;
  countInvocation(done.version.name, statusName(result.status));
  moveInvocation(done, Invocation::State::kDone);
  sendAhead(next.version.name);
  return true;
}

void Supervisor::takeBack(LiveSandbox& sandbox, bool mayHaveStarted) {
  std::deque<kj::Own<Invocation>> ahead = std::exchange(sandbox.ahead, {});
  for (kj::Own<Invocation>& next : ahead) {
    bool started = std::exchange(mayHaveStarted, false);      // only the first can have
    if (next->state != Invocation::State::kQueued) continue;  // cancelled there, or timed out
    next->sentAheadTo = 0;
    auto waiting = queued_.find(next->id);
    if (waiting == queued_.end()) continue;
    if (!started) {
      admission_.unreserve(next->id);  // it waits again, in its place
      continue;
    }
    // Its predecessor was cancelled after (some of) its answer came: the
    // sandbox may have started it, so it is not run a second time.
    auto admit = kj::mv(waiting->second.admit);
    queued_.erase(waiting);
    admit->reject(KJ_EXCEPTION(FAILED,
                               "the sandbox it was sent ahead to was killed when the invocation "
                               "before it there was cancelled; it may have started"));
  }
}

}  // namespace supervisor
