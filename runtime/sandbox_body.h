// What a sandbox forked from the zygote does once confined: load the
// function's handler, say ready (or why not), then serve invocations one at
// a time over its channel until the supervisor closes it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/interpreter.h"
#include "runtime/runtime.capnp.h"
#include "runtime/shared_answer.h"
#include "sandbox/confine.h"

namespace runtime {

struct FunctionMeta {
  std::string name;
  std::string version;
  uint32_t memoryLimitMb = 0;
  std::string invokedFunctionArn;
  std::string logGroupName;
  std::string logStreamName;
  bool raw = false;
  uint64_t logLimitBytes = 64 << 10;
};

struct SandboxParams {
  std::string handler;  // "module.func"
  std::vector<std::string> env;
  FunctionMeta function;
  uint64_t maxMessageBytes = 8 << 20;
};

// The parameters a spawn request carries for the sandbox itself.
SandboxParams decodeSandboxParams(wire::SpawnRequest::Reader request);

// Runs in the child of a stem cell, after sandbox::confine(): warms up,
// says so on `stemFd` (one byte), waits there for its claim (a SpawnRequest
// packet with the invocation channel's fd and optionally the shared answer
// page's), then serves like serveSandbox.
// Exits 0 if the zygote discards it unclaimed.
int serveStemCell(const Interpreter& interpreter, const sandbox::ChildChannel& channel, int stemFd);

// The niceness of a stem cell until it is claimed.
constexpr int kStemNice = 19;

// Runs in the child, after sandbox::confine(). `channelFd` is the sandbox's
// end of its invocation channel; `sharedAnswer` its shared answer page (may
// be null); `requestNs` when the zygote received the spawn request. Returns
// the process's exit status.
int serveSandbox(const Interpreter& interpreter, const SandboxParams& params,
                 const sandbox::ChildChannel& channel, int channelFd, SharedAnswer* sharedAnswer,
                 uint64_t requestNs);

// The page passed as `fd` (none: null), or null with a line on stderr if it
// cannot be mapped (the sandbox answers through its channel).
std::unique_ptr<SharedAnswer> mapSharedAnswer(const base::Fd& fd);

}  // namespace runtime
