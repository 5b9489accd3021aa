#include "runtime/channel_messages.h"

#include <kj/exception.h>

#include "runtime/runtime.capnp.h"

namespace runtime {

void buildInvocation(capnp::MallocMessageBuilder& message, const InvocationRequest& request) {
  auto invocation = message.initRoot<wire::Invocation>();
  invocation.setRequestId(request.requestId);
  auto bytes = kj::arrayPtr(reinterpret_cast<const kj::byte*>(request.payload.data()),
                            request.payload.size());
  // Referenced, not copied, when it fills whole words: capnp writes a
  // referenced blob up to its next word boundary, and the bytes past a
  // string's end may be anyone's (this process's heap, sent to a sandbox).
  if (bytes.size() % sizeof(capnp::word) == 0 &&
      reinterpret_cast<uintptr_t>(bytes.begin()) % alignof(capnp::word) == 0)
    invocation.adoptPayload(message.getOrphanage().referenceExternalData(bytes));
  else
    invocation.setPayload(bytes);
  invocation.setDeadlineNs(request.deadlineNs);
  invocation.setBusyPollNs(request.busyPollNs);
  invocation.setTimeoutNs(request.timeoutNs);
  invocation.setAnswerShared(request.answerInPage);
}

std::string describe(const LoadError& error) {
  std::string text = error.type() + ": " + error.message();
  if (!error.traceback().empty()) text += "\n" + error.traceback();
  return text;
}

ReadyInfo parseReady(capnp::MessageReader& message) {
  try {
    auto root = message.getRoot<wire::SandboxMessage>();
    if (root.isLoadFailed()) {
      auto e = root.getLoadFailed();
      throw LoadError(e.getType(), e.getMessage(), e.getTraceback());
    }
    if (!root.isReady()) throw ChannelClosed("the sandbox did not start with `ready`");
    ReadyInfo info;
    auto ready = root.getReady();
    info.startNs = ready.getStartNs();
    for (auto t : ready.getTimings())
      info.timings.push_back({t.getStep(), t.getNs(), t.getMinorFaults()});
    info.minorFaults = ready.getMinorFaults();
    return info;
  } catch (const kj::Exception& e) {
    throw ChannelClosed(std::string("the sandbox sent garbage: ") + e.getDescription().cStr());
  }
}

namespace {

AnswerStatus fromWire(wire::InvocationResult::Status status) {
  using Wire = wire::InvocationResult::Status;
  switch (status) {
    case Wire::OK:
      return AnswerStatus::kOk;
    case Wire::HANDLER_ERROR:
      return AnswerStatus::kHandlerError;
    case Wire::BAD_PAYLOAD:
      return AnswerStatus::kBadPayload;
    case Wire::RESULT_NOT_SERIALIZABLE:
      return AnswerStatus::kNotSerializable;
    case Wire::RUNTIME_ERROR:
      return AnswerStatus::kRuntimeError;
  }
  return AnswerStatus::kRuntimeError;  // a number no runtime of ours writes
}

}  // namespace

InvocationOutcome parseResult(capnp::MessageReader& message) {
  try {
    auto root = message.getRoot<wire::SandboxMessage>();
    if (!root.isResult()) throw ChannelClosed("the sandbox answered out of turn");
    auto result = root.getResult();
    InvocationOutcome outcome;
    outcome.status = fromWire(result.getStatus());
    auto bytes = result.getPayload();
    outcome.payload.assign(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
    if (result.hasError()) {
      outcome.errorType = result.getError().getType();
      outcome.errorMessage = result.getError().getMessage();
      outcome.traceback = result.getError().getTraceback();
    }
    auto logs = result.getLogs();
    outcome.logs.assign(reinterpret_cast<const char*>(logs.begin()), logs.size());
    outcome.logsTruncated = result.getLogsTruncated();
    outcome.runNs = result.getRunNs();
    outcome.minorFaults = result.getMinorFaults();
    outcome.cpu = result.getCpu();
    outcome.overran = result.getOverran();
    return outcome;
  } catch (const kj::Exception& e) {
    throw ChannelClosed(std::string("the sandbox sent garbage: ") + e.getDescription().cStr());
  }
}

}  // namespace runtime
