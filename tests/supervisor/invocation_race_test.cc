// What an invocation's outcome means (supervisor/invocation_race.h): the
// answer's status, the result cap, and the death of a sandbox told by its
// exit event.
#include "supervisor/invocation_race.h"

#include <gtest/gtest.h>

namespace supervisor {
namespace {

using runtime::AnswerStatus;
using runtime::ExitKind;

runtime::InvocationOutcome outcome(AnswerStatus status, std::string payload = {}) {
  runtime::InvocationOutcome out;
  out.status = status;
  out.payload = std::move(payload);
  out.runNs = 2'000'000;
  out.logs = "printed\n";
  return out;
}

TEST(ResultOfAnswer, EachAnswerStatusIsAnInvocationStatus) {
  EXPECT_EQ(resultOfAnswer(outcome(AnswerStatus::kOk), 10).status, Status::kOk);
  EXPECT_EQ(resultOfAnswer(outcome(AnswerStatus::kHandlerError), 10).status, Status::kHandlerError);
  EXPECT_EQ(resultOfAnswer(outcome(AnswerStatus::kNotSerializable), 10).status,
            Status::kHandlerError);
  EXPECT_EQ(resultOfAnswer(outcome(AnswerStatus::kBadPayload), 10).status, Status::kBadRequest);
  EXPECT_EQ(resultOfAnswer(outcome(AnswerStatus::kRuntimeError), 10).status, Status::kCrashed);
}

TEST(ResultOfAnswer, KeepsThePayloadLogsAndRunTime) {
  InvokeResult result = resultOfAnswer(outcome(AnswerStatus::kOk, "{}"), 10);
  EXPECT_EQ(result.payload, "{}");
  EXPECT_EQ(result.logs, "printed\n");
  EXPECT_EQ(result.run, std::chrono::milliseconds(2));
}

TEST(ResultOfAnswer, APayloadOverTheCapIsTooLargeAndNotKept) {
  InvokeResult exact = resultOfAnswer(outcome(AnswerStatus::kOk, std::string(10, 'x')), 10);
  EXPECT_EQ(exact.status, Status::kOk);
  InvokeResult over = resultOfAnswer(outcome(AnswerStatus::kOk, std::string(11, 'x')), 10);
  EXPECT_EQ(over.status, Status::kResultTooLarge);
  EXPECT_EQ(over.payload, "");
  EXPECT_EQ(over.errorMessage, "the result is 11 bytes, over the limit of 10");
}

TEST(DeathOfASandbox, TheExitEventTellsTheLimitItHit) {
  auto exit = [](ExitKind kind, int code = 0) { return runtime::ExitEvent{1, kind, code, {}}; };
  EXPECT_EQ(statusOfDeath(exit(ExitKind::kOutOfMemory)), Status::kOutOfMemory);
  EXPECT_EQ(statusOfDeath(exit(ExitKind::kPidsLimit)), Status::kTooManyProcesses);
  EXPECT_EQ(statusOfDeath(exit(ExitKind::kTimeout)), Status::kTimeout);
  EXPECT_EQ(statusOfDeath(exit(ExitKind::kSignaled, 11)), Status::kCrashed);
  EXPECT_EQ(statusOfDeath(exit(ExitKind::kExited, 3)), Status::kCrashed);
  EXPECT_EQ(statusOfDeath(exit(ExitKind::kKilled)), Status::kCrashed);
  EXPECT_EQ(describeDeath(exit(ExitKind::kSignaled, 11)), "the sandbox was killed by signal 11");
  EXPECT_EQ(describeDeath(exit(ExitKind::kExited, 3)), "the sandbox exited with status 3");
  EXPECT_EQ(describeDeath(exit(ExitKind::kOutOfMemory)), "the sandbox ran out of memory");
}

TEST(TimedOut, SaysTheTimeout) {
  InvokeResult result = timedOut(std::chrono::milliseconds(1500));
  EXPECT_EQ(result.status, Status::kTimeout);
  EXPECT_EQ(result.errorMessage, "the invocation exceeded its timeout of 1500 ms");
}

}  // namespace
}  // namespace supervisor
