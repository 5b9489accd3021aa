// The supervisor's side of a zygote (runtime/fork_server.h is the other):
// the thatch-zygote process, and its control channel — spawn and kill
// requests, stem cells, and the events it reports (spawn replies, exits).
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <chrono>
#include <deque>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/fd.h"
#include "runtime/framing.h"
#include "runtime/sandbox_channel.h"
#include "runtime/spec_codec.h"
#include "sandbox/idmap.h"
#include "sandbox/spec.h"

namespace runtime {

struct ZygoteOptions {
  std::string binary;  // path of thatch-zygote
  std::string runtime = "python3.11";
  std::vector<std::string> extraArgs;
  std::chrono::seconds startTimeout{60};
  // false: the constructor returns once the process is started, and the
  // zygote is ready() once its first event is read (readAvailable()); for
  // an event loop, which must not wait ~0.1-0.5 s for the interpreter.
  bool waitUntilReady = true;
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

// How a sandbox ended, as its zygote saw it (after its cgroup is gone).
enum class ExitKind {
  kExited,       // code: its exit status
  kSignaled,     // code: the signal
  kTimeout,      // the zygote's own deadline (thatch-run's; thatchd keeps its own)
  kOutOfMemory,  // its cgroup's OOM killer
  kPidsLimit,    // its pids limit
  kKilled,       // on request (Zygote::kill), or its zygote died
};

struct ExitEvent {
  uint64_t id = 0;
  ExitKind kind = ExitKind::kExited;
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
  unsigned warmStems = 0;  // stem cells warm and unclaimed as it answered
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
  // Whether it has said it is ready (always, once a waiting constructor
  // returned).
  bool ready() const { return ready_; }

  // For an event loop (nothing here blocks): requests are queued and go as
  // the control socket takes them (flush(); sending() says whether some
  // wait). A spawn request carries the sandbox's ends of its channel
  // (SandboxChannel::open), closed here once sent; its reply comes with the
  // events that readAvailable() returns once controlFd() is readable. Kill
  // requests go before spawn requests still waiting.
  void requestSpawn(uint64_t id, const SpawnParams& params, SandboxChannel::SandboxEnds ends);
  // Takes back a spawn request that has not been sent yet (then no reply
  // will come); false once it has gone.
  bool withdrawSpawn(uint64_t id);
  void kill(uint64_t id);
  // Sends what the control socket takes now; true when nothing waits.
  // Throws when the zygote's end is gone.
  bool flush();
  bool sending() const { return !outgoing_.empty(); }
  // What to poll controlFd() for: input, and room while requests wait.
  short pollEvents() const { return static_cast<short>(POLLIN | (sending() ? POLLOUT : 0)); }
  // Blocking, for tests and benchmarks: the request, then the zygote's
  // answer: the sandbox's host pid, or SpawnError.
  pid_t spawn(uint64_t id, const SpawnParams& params, SandboxChannel::SandboxEnds ends);
  // Every event the zygote has sent so far, without blocking. Throws when
  // the zygote died or its channel broke.
  ZygoteEvents readAvailable();
  int controlFd() const { return control_.get(); }
  int pidfd() const { return pidfd_.get(); }
  // Keeps up to `count` sandboxes forked, confined and warmed up for
  // requests whose spec matches `templateSpec` in all but host ids, limits
  // and the code at /var/task (the zygote sizes the pool to the requests
  // it sees: runtime/stem_policy.h); they lease host ids from `idSlotDir`
  // in `ids`. 0 stops.
  void startStemCells(unsigned count, const sandbox::Spec& templateSpec,
                      const std::string& idSlotDir, sandbox::IdRange ids);
  // The next sandbox that ended, waiting up to `timeout`.
  std::optional<ExitEvent> nextExit(std::chrono::milliseconds timeout);
  // Whether the zygote process itself is still running.
  bool alive();
  // Stem cells warm and unclaimed, as of the last event read (each event
  // says; one turning warm sends an event of its own).
  unsigned warmStems() const { return warmStems_; }

 private:
  // Sends what waits and reads at most one event (waiting up to timeoutMs
  // for either) into exits_ or replies_; false if none came. Throws when
  // the zygote died or the channel broke.
  bool readEvent(int timeoutMs);
  void queue(capnp::MessageBuilder& message, std::vector<base::Fd> fds = {}, uint64_t tag = 0,
             bool urgent = false);

  pid_t pid_ = -1;
  base::Fd pidfd_;
  base::Fd control_;  // non-blocking
  PacketQueue outgoing_;
  std::deque<ExitEvent> exits_;
  std::deque<SpawnReply> replies_;
  unsigned warmStems_ = 0;
  bool ready_ = false;
};

}  // namespace runtime
