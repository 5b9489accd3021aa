// The invocation channel's messages (runtime/runtime.capnp) as C++ values:
// a request to build, and the sandbox's `ready`, `loadFailed` and `result`
// to parse. Nothing else in thatch reads or writes runtime::wire types of
// this channel; SandboxChannel (runtime/sandbox_channel.h) carries them.
#pragma once

#include <capnp/message.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace runtime {

// One invocation as the supervisor asks it of a sandbox.
struct InvocationRequest {
  std::string requestId;
  // Referenced, not copied, by buildInvocation() when it fills whole words:
  // it must outlive the message.
  std::string_view payload;
  uint64_t deadlineNs = 0;  // CLOCK_MONOTONIC; 0: none, or see timeoutNs
  // After answering, the sandbox polls this long for its next request before
  // it sleeps (runtime::MessageStream); 0: it sleeps at once.
  uint64_t busyPollNs = 0;
  // With deadlineNs 0: the deadline counts from when the sandbox starts it
  // (a request sent ahead, behind the one it is running). 0: none.
  uint64_t timeoutNs = 0;
  // The answer goes to the shared answer page while the supervisor watches
  // it (runtime/shared_answer.h).
  bool answerInPage = false;
};

void buildInvocation(capnp::MallocMessageBuilder& message, const InvocationRequest& request);

struct ReadyInfo {
  uint64_t startNs = 0;
  struct Timing {
    std::string step;
    uint64_t ns = 0;           // CLOCK_MONOTONIC when the step ended
    uint64_t minorFaults = 0;  // of the sandbox then, 0 if not measured
  };
  std::vector<Timing> timings;
  uint64_t minorFaults = 0;
};

// The handler could not be loaded (import error, missing handler...).
class LoadError : public std::runtime_error {
 public:
  LoadError(std::string type, const std::string& message, std::string traceback)
      : std::runtime_error(type + ": " + message),
        type_(std::move(type)),
        message_(message),
        traceback_(std::move(traceback)) {}
  const std::string& type() const { return type_; }
  const std::string& message() const { return message_; }
  const std::string& traceback() const { return traceback_; }

 private:
  std::string type_, message_, traceback_;
};

// The sandbox went away (or spoke garbage) before answering.
class ChannelClosed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// How the handler's call ended, as the sandbox reports it.
enum class AnswerStatus {
  kOk,
  kHandlerError,     // it raised
  kBadPayload,       // the payload is not JSON (or not what the function takes)
  kNotSerializable,  // it returned what JSON cannot encode
  kRuntimeError,     // the runtime itself failed (a bug)
};

struct InvocationOutcome {
  AnswerStatus status = AnswerStatus::kOk;
  std::string payload;
  std::string errorType, errorMessage, traceback;
  std::string logs;
  bool logsTruncated = false;
  uint64_t runNs = 0;
  uint64_t minorFaults = 0;
  int cpu = -1;          // the core the sandbox answered from
  bool overran = false;  // ended past its deadline: the sandbox serves no more
};

// The handler's load error as one text for the user: "TYPE: MESSAGE", then
// the traceback on its own lines.
std::string describe(const LoadError& error);

// Throw LoadError (parseReady) or ChannelClosed when the message is not the
// one due, or garbage.
ReadyInfo parseReady(capnp::MessageReader& message);
InvocationOutcome parseResult(capnp::MessageReader& message);

}  // namespace runtime
