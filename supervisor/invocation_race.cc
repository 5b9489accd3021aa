// An invocation's run in its sandbox: its request goes into the channel
// (unless it was sent ahead), then its answer races its deadline and its
// sandbox's death; whichever comes first decides the result.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // see supervisor.cc

#include "supervisor/invocation_race.h"

#include <kj/debug.h>
#include <sched.h>

#include "supervisor/supervisor.h"

namespace supervisor {

namespace {

using Ending = runtime::Answer::Ending;
using State = SandboxState;

// A sandbox whose channel broke has usually died: its exit event says how
// (OOM, pids, signal) and comes within milliseconds.
constexpr auto kDeathReportWait = std::chrono::seconds(2);
// An answer already in a sandbox's channel at its deadline or death is read
// first, for at most this long: it tells whether the sandbox went on to a
// request sent ahead.
constexpr auto kAnswerGrace = std::chrono::milliseconds(100);

kj::Duration toKj(Duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count() * kj::NANOSECONDS;
}

uint64_t monotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// An answer due from a sandbox, for busy polling: counted from the dispatch
// until it comes or the invocation ends without it (a cancel included).
struct DueAnswer {
  DueAnswer(BusyPoll& busyPoll, bool awake)
      : busyPoll(busyPoll), awake(awake), sandboxPollNs(busyPoll.dispatched(awake)) {}
  ~DueAnswer() { close(); }
  void close() {
    if (open) busyPoll.answered(awake);
    open = false;
  }
  BusyPoll& busyPoll;
  bool awake;
  uint64_t sandboxPollNs;
  bool open = true;
};

// What came first.
struct Race {
  enum class First { kAnswer, kDeadline, kDeath };
  First first;
  runtime::Answer answer;  // kAnswer: how reading it ended
};

Status statusOfAnswer(runtime::AnswerStatus status) {
  switch (status) {
    case runtime::AnswerStatus::kOk:
      return Status::kOk;
    case runtime::AnswerStatus::kBadPayload:
      return Status::kBadRequest;
    case runtime::AnswerStatus::kHandlerError:
    case runtime::AnswerStatus::kNotSerializable:
      return Status::kHandlerError;
    case runtime::AnswerStatus::kRuntimeError:
      return Status::kCrashed;
  }
  return Status::kCrashed;
}

}  // namespace

InvokeResult resultOfAnswer(runtime::InvocationOutcome outcome, uint64_t maxResultBytes) {
  InvokeResult result;
  result.status = statusOfAnswer(outcome.status);
  result.run = std::chrono::nanoseconds(outcome.runNs);
  result.logs = std::move(outcome.logs);
  result.logsTruncated = outcome.logsTruncated;
  result.errorType = std::move(outcome.errorType);
  result.errorMessage = std::move(outcome.errorMessage);
  result.traceback = std::move(outcome.traceback);
  if (outcome.payload.size() > maxResultBytes) {
    result.status = Status::kResultTooLarge;
    result.errorMessage = "the result is " + std::to_string(outcome.payload.size()) +
                          " bytes, over the limit of " + std::to_string(maxResultBytes);
  } else {
    result.payload = std::move(outcome.payload);
  }
  return result;
}

Status statusOfDeath(const runtime::ExitEvent& exit) {
  switch (exit.kind) {
    case runtime::ExitKind::kOutOfMemory:
      return Status::kOutOfMemory;
    case runtime::ExitKind::kPidsLimit:
      return Status::kTooManyProcesses;
    case runtime::ExitKind::kTimeout:
      return Status::kTimeout;
    case runtime::ExitKind::kExited:
    case runtime::ExitKind::kSignaled:
    case runtime::ExitKind::kKilled:
      return Status::kCrashed;
  }
  return Status::kCrashed;
}

std::string describeDeath(const runtime::ExitEvent& exit) {
  switch (exit.kind) {
    case runtime::ExitKind::kExited:
      return "the sandbox exited with status " + std::to_string(exit.code);
    case runtime::ExitKind::kSignaled:
      return "the sandbox was killed by signal " + std::to_string(exit.code);
    case runtime::ExitKind::kOutOfMemory:
      return "the sandbox ran out of memory";
    case runtime::ExitKind::kPidsLimit:
      return "the sandbox hit its process limit";
    case runtime::ExitKind::kTimeout:
    case runtime::ExitKind::kKilled:
      return "the sandbox was killed";
  }
  return "the sandbox was killed";
}

InvokeResult timedOut(Duration timeout) {
  return statusOnly(
      Status::kTimeout,
      "the invocation exceeded its timeout of " +
          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
          " ms");
}

Duration Supervisor::timeoutOf(const Invocation& inv) const {
  return inv.version.config.timeout.count() ? Duration(inv.version.config.timeout)
                                            : Duration(options_.config.limits.timeout);
}

kj::Promise<InvokeResult> Supervisor::execute(Invocation& inv) {
  kj::Own<LiveSandbox> box = kj::addRef(*inv.sandbox);
  LiveSandbox& sandbox = *box;
  Duration timeout = timeoutOf(inv);
  uint64_t now = monotonicNs();
  uint64_t deadlineNs = now + std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
  // Its request is in the channel already (sendAhead(), then handOver()).
  bool sentAhead = std::exchange(inv.sentAheadTo, 0) != 0;
  sandbox.runningSince = clock_.now();
  sandbox.deadline = sandbox.runningSince + timeout;
  sandbox.answerFrom = sandbox.channel->bytesRead();
  // Polling on another core since its last answer (its window is not over).
  bool awake = now < sandbox.pollingUntilNs && sandbox.cpu != sched_getcpu();
  auto due = kj::heap<DueAnswer>(busyPoll_, awake);
  // A request sent ahead asked the sandbox not to poll after it.
  if (sentAhead) due->sandboxPollNs = 0;
  // While the loop polls for it, the answer of a polling sandbox comes
  // through its shared answer page (runtime/shared_answer.h).
  kj::Maybe<kj::Promise<bool>> inPage;
  runtime::SharedAnswer* page = sandbox.channel->page();
  bool pageWanted = busyPoll_.pageAlways() || (awake && busyPoll_.pagesWatched());
  if (!sentAhead && page && pageWanted) {
    page->watch();
    inPage = busyPoll_.watch(*page);
  }
  kj::Promise<void> sent = kj::READY_NOW;
  if (!sentAhead) {
    // Not if it died since it was claimed: the race below finds that out.
    if (sandbox.state() == State::kClaimed) sandbox.moveTo(State::kRunning);
    runtime::InvocationRequest request;
    request.requestId = "inv-" + std::to_string(inv.id);
    request.payload = inv.payload;
    request.deadlineNs = deadlineNs;
    request.busyPollNs = due->sandboxPollNs;
    request.answerInPage = inPage != nullptr;
    sandbox.answerInPage = request.answerInPage;
    sent = sandbox.channel->send(request).then([this, function = inv.version.name]() {
      if (admission_.queued(function) > 0) sendAhead(function);
    });
  }
  kj::Promise<Race> answered = sent.then(
      [&sandbox, inPage = kj::mv(inPage)]() mutable {
        return sandbox.channel->nextAnswer(kj::mv(inPage)).then([](runtime::Answer answer) {
          return Race{Race::First::kAnswer, std::move(answer)};
        });
      },
      [](kj::Exception&& e) {
        runtime::Answer broken;
        broken.ending = Ending::kClosed;
        broken.error = e.getDescription().cStr();
        return Race{Race::First::kAnswer, std::move(broken)};
      });
  // At the deadline or the death, an answer already in the channel came
  // first: it is read (the sandbox may have gone on to a request sent ahead),
  // unless it has not arrived whole within kAnswerGrace.
  auto unlessAnswerWaits = [this, &sandbox](Race::First first) -> kj::Promise<Race> {
    if (!sandbox.answerWaiting()) return Race{first, {}};
    return timer_.afterDelay(toKj(kAnswerGrace)).then([first]() { return Race{first, {}}; });
  };
  kj::Promise<Race> deadline = timer_.afterDelay(toKj(timeout)).then([unlessAnswerWaits]() {
    return unlessAnswerWaits(Race::First::kDeadline);
  });
  kj::Promise<Race> died = sandbox.whenExited().then(
      [unlessAnswerWaits](runtime::ExitEvent) { return unlessAnswerWaits(Race::First::kDeath); },
      [unlessAnswerWaits](kj::Exception&&) { return unlessAnswerWaits(Race::First::kDeath); });

  return answered.exclusiveJoin(kj::mv(deadline))
      .exclusiveJoin(kj::mv(died))
      .then([this, &inv, box = kj::mv(box), timeout,
             due = kj::mv(due)](Race race) mutable -> kj::Promise<InvokeResult> {
        due->close();
        box->answerInPage = false;
        InvokeResult result;
        if (race.first == Race::First::kDeadline) {
          result = timedOut(timeout);
          release(inv, result, /*answered=*/false);
          return result;
        }
        if (race.first == Race::First::kDeath) return afterDeath(inv, kj::mv(box), "");
        runtime::Answer& answer = race.answer;
        if (answer.fromPage) stats_.answeredInPage++;
        switch (answer.ending) {
          case Ending::kAnswered: {
            runtime::InvocationOutcome& outcome = answer.outcome;
            box->cpu = outcome.cpu;
            box->pollingUntilNs = due->sandboxPollNs ? monotonicNs() + due->sandboxPollNs : 0;
            box->lastRun = std::chrono::nanoseconds(outcome.runNs);
            if (outcome.overran) {
              // It ended past its deadline, just before thatchd's timer: a
              // timeout all the same, and the sandbox exits after this answer.
              result = timedOut(timeout);
              result.run = std::chrono::nanoseconds(outcome.runNs);
              release(inv, result, /*answered=*/false);
              return result;
            }
            result = resultOfAnswer(std::move(outcome), options_.config.limits.resultBytes);
            release(inv, result, /*answered=*/true);
            return result;
          }
          case Ending::kGarbled:
            // Not an answer this runtime wrote; in the page, the sandbox lives
            // on and no exit event is coming to explain it.
            result = statusOnly(Status::kCrashed, answer.error);
            release(inv, result, /*answered=*/false);
            return result;
          case Ending::kTooLarge:
            // The rest of it is still in the channel: the sandbox cannot
            // serve again.
            result = statusOnly(Status::kResultTooLarge,
                                "the result and its logs exceed " +
                                    std::to_string(options_.config.limits.resultBytes) + " bytes");
            release(inv, result, /*answered=*/false);
            return result;
          case Ending::kClosed:
            break;
        }
        return afterDeath(inv, kj::mv(box), answer.error);
      });
}

// A broken channel or a death: the exit event tells which limit, if any.
kj::Promise<InvokeResult> Supervisor::afterDeath(Invocation& inv, kj::Own<LiveSandbox> box,
                                                 std::string why) {
  LiveSandbox& sandbox = *box;
  return sandbox.whenExited()
      .then([](runtime::ExitEvent exit) -> kj::Maybe<runtime::ExitEvent> { return exit; },
            [](kj::Exception&&) -> kj::Maybe<runtime::ExitEvent> { return nullptr; })
      .exclusiveJoin(
          timer_.afterDelay(toKj(kDeathReportWait)).then([]() -> kj::Maybe<runtime::ExitEvent> {
            return nullptr;
          }))
      .then([this, &inv, box = kj::mv(box), why](kj::Maybe<runtime::ExitEvent> exit) {
        InvokeResult result;
        KJ_IF_MAYBE (e, exit) {
          result = statusOnly(statusOfDeath(*e), describeDeath(*e));
          if (!box->killedFor.empty() && draining_)
            result = statusOnly(Status::kShuttingDown, "killed: thatchd's drain grace ran out");
        } else {
          result = statusOnly(Status::kCrashed, why);
        }
        release(inv, result, /*answered=*/false);
        return result;
      });
}

}  // namespace supervisor
