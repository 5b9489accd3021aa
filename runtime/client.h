// The supervisor's side of the runtime: a running zygote (spawn, kill, exit
// events) and the invocation channel of one sandbox. Blocking calls for
// now; the supervisor's event loop drives the same fds.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <deque>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/fd.h"
#include "runtime/framing.h"
#include "runtime/runtime.capnp.h"
#include "runtime/shared_answer.h"
#include "runtime/spec_codec.h"
#include "sandbox/idmap.h"
#include "sandbox/spec.h"

namespace runtime {

struct ZygoteOptions {
  std::string binary;  // path of thatch-zygote
  std::string runtime = "python3.11";
  std::vector<std::string> extraArgs;
  std::chrono::seconds startTimeout{60};
};

struct FunctionInfo {
  std::string name;
  std::string version = "1";
  uint32_t memoryLimitMb = 128;
  std::string invokedFunctionArn;
  std::string logGroupName;
  std::string logStreamName;
  bool raw = false;
  uint64_t logLimitBytes = 64 << 10;
};

struct SpawnParams {
  sandbox::Spec spec;  // without seccomp: the zygote has its own
  SpawnNames names;
  std::string handler;  // "module.func"
  std::vector<std::string> env;
  FunctionInfo function;
};

// A spawn was refused or a confinement step failed.
class SpawnError : public std::runtime_error {
 public:
  SpawnError(std::string step, int error, const std::string& message)
      : std::runtime_error(message), step_(std::move(step)), error_(error) {}
  const std::string& step() const { return step_; }
  int error() const { return error_; }

 private:
  std::string step_;
  int error_;
};

struct ExitEvent {
  uint64_t id = 0;
  wire::ExitInfo::Kind kind = wire::ExitInfo::Kind::EXITED;
  int code = 0;
  std::chrono::nanoseconds elapsed{0};
};

// What a zygote said since it was last asked (see Zygote::readAvailable).
struct SpawnReply {
  uint64_t id = 0;
  pid_t pid = -1;
  bool failed = false;  // then step, error and message say why
  std::string step;
  int error = 0;
  std::string message;
};
struct ZygoteEvents {
  std::vector<SpawnReply> replies;
  std::vector<ExitEvent> exits;
};

// A thatch-zygote process, started in its own mount, ipc and uts namespaces
// (not user, pid or net: it needs host root to build sandboxes — uid maps,
// cgroups, netlink). A resource: the destructor shuts it down, which kills
// its sandboxes, and reaps it.
class Zygote {
 public:
  static constexpr uint64_t kMaxPacket = 1 << 20;

  explicit Zygote(const ZygoteOptions& options);
  ~Zygote();
  Zygote(const Zygote&) = delete;
  Zygote& operator=(const Zygote&) = delete;

  pid_t pid() const { return pid_; }

  // Sends the request with the sandbox's end of its invocation channel (and
  // optionally its shared answer page, runtime/shared_answer.h) and waits
  // for the zygote's answer: the sandbox's host pid, or SpawnError.
  pid_t spawn(uint64_t id, const SpawnParams& params, int sandboxChannelFd,
              int sharedAnswerFd = -1);
  // For an event loop: the request alone; the reply comes with the events
  // that readAvailable() returns once controlFd() is readable.
  void requestSpawn(uint64_t id, const SpawnParams& params, int sandboxChannelFd,
                    int sharedAnswerFd = -1);
  // Every event the zygote has sent so far, without blocking. Throws when
  // the zygote died or its channel broke.
  ZygoteEvents readAvailable();
  int controlFd() const { return control_.get(); }
  int pidfd() const { return pidfd_.get(); }
  void kill(uint64_t id);
  // Keeps `count` sandboxes forked, confined and warmed up for requests
  // whose spec matches `templateSpec` in all but host ids, limits and the
  // code at /var/task; they lease host ids from `idSlotDir` in `ids`. 0 stops.
  void startStemCells(unsigned count, const sandbox::Spec& templateSpec,
                      const std::string& idSlotDir, sandbox::IdRange ids);
  // The next sandbox that ended, waiting up to `timeout`.
  std::optional<ExitEvent> nextExit(std::chrono::milliseconds timeout);
  // Whether the zygote process itself is still running.
  bool alive();

 private:
  // Reads at most one event (waiting up to timeoutMs) into exits_ or
  // replies_; false if none came. Throws when the zygote died or the
  // channel broke.
  bool readEvent(int timeoutMs);

  pid_t pid_ = -1;
  base::Fd pidfd_;
  base::Fd control_;
  std::deque<ExitEvent> exits_;
  std::deque<SpawnReply> replies_;
};

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

struct InvocationOutcome {
  wire::InvocationResult::Status status = wire::InvocationResult::Status::OK;
  std::string payload;
  std::string errorType, errorMessage, traceback;
  std::string logs;
  bool logsTruncated = false;
  uint64_t runNs = 0;
  uint64_t minorFaults = 0;
  int cpu = -1;          // the core the sandbox answered from
  bool overran = false;  // ended past its deadline: the sandbox serves no more
};

// The invocation channel's messages, for callers that do their own I/O (an
// event loop). parse* throw LoadError or ChannelClosed like SandboxChannel.
ReadyInfo parseReady(capnp::MessageReader& message);
// busyPollNs: how long the sandbox polls for its next request after this
// one before it sleeps (see runtime::MessageStream). timeoutNs, with
// deadlineNs 0: the deadline counts from when the sandbox starts it.
void buildInvocation(capnp::MallocMessageBuilder& message, const std::string& requestId,
                     const std::string& payload, uint64_t deadlineNs, uint64_t busyPollNs = 0,
                     uint64_t timeoutNs = 0);
InvocationOutcome parseResult(capnp::MessageReader& message);

// A socketpair for one sandbox: [supervisor end, sandbox end].
std::pair<base::Fd, base::Fd> makeInvocationChannel();

class SandboxChannel {
 public:
  explicit SandboxChannel(base::Fd fd, uint64_t maxMessageBytes = 8 << 20);
  // Waits for the sandbox's first message. Throws LoadError or ChannelClosed.
  ReadyInfo waitReady(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // One invocation. Throws ChannelClosed if the sandbox dies or misbehaves.
  InvocationOutcome invoke(const std::string& requestId, const std::string& payload,
                           uint64_t deadlineNs = 0,
                           std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // One invocation that asks for its answer in `page`, the sandbox's shared
  // answer page, as thatchd does while it polls: the caller has watch()ed
  // the page (or not); this polls it for `pollFor`, then abandons it and
  // reads the channel. `answeredInPage` says which brought the answer.
  InvocationOutcome invoke(SharedAnswer& page, const std::string& requestId,
                           const std::string& payload, std::chrono::microseconds pollFor,
                           bool* answeredInPage);
  int fd() const { return fd_.get(); }

 private:
  void send(capnp::MessageBuilder& request);
  std::unique_ptr<capnp::MessageReader> readWithin(std::chrono::milliseconds timeout);
  base::Fd fd_;
  uint64_t maxMessageBytes_;
  MessageStream stream_;
};

}  // namespace runtime
