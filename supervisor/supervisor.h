// thatchd's core: invocations of registered functions, each in a warm
// sandbox of its function version when there is one (thatching) or in a new
// one from the runtime's zygote, under admission control, deadlines and
// limits. All state lives on one kj event loop; nothing here blocks on a
// sandbox.
#pragma once

#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <kj/timer.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "runtime/client.h"
#include "sandbox/cgroup.h"
#include "sandbox/idmap.h"
#include "supervisor/admission.h"
#include "supervisor/busy_poll.h"
#include "supervisor/clock.h"
#include "supervisor/config.h"
#include "supervisor/event_log.h"
#include "supervisor/registry.h"
#include "supervisor/warm_pools.h"
#include "thatch/types.h"

namespace supervisor {

using thatch::Status;
using thatch::statusName;

struct InvokeResult {
  Status status = Status::kOk;
  std::string payload;  // the JSON result (or raw bytes) when kOk
  std::string errorType, errorMessage, traceback;
  std::string logs;
  bool logsTruncated = false;
  bool cold = false;  // a new sandbox was started for it
  uint64_t sandboxId = 0;
  uint64_t version = 0;
  Duration queued{}, start{}, run{};
};

// Durations in power-of-two buckets of microseconds: bucket i counts
// those in [2^i, 2^(i+1)) µs (bucket 0 also takes everything below 1 µs).
struct Histogram {
  static constexpr int kBuckets = 32;  // up to ~71 minutes
  uint64_t counts[kBuckets] = {};
  uint64_t total = 0;
  void record(Duration d);
  // The upper bound of the bucket holding the q-quantile (0 < q <= 1).
  Duration quantile(double q) const;
};

struct Stats {
  std::map<std::string, uint64_t> invocationsByStatus;
  uint64_t coldStarts = 0, warmStarts = 0;
  uint64_t liveSandboxes = 0, idleSandboxes = 0, idleMemoryBytes = 0;
  WarmPools::Counters pools;
  Admission::Counters admission;
  std::map<std::string, uint64_t> killsByReason;
  uint64_t zygoteRestarts = 0;
  Histogram queued, start, run;  // of every invocation that got a sandbox
  uint64_t prewarmed = 0;
  // Queued invocations sent ahead into a busy sandbox's channel; how many
  // of those started there (the rest went back to waiting, or were
  // cancelled there).
  uint64_t sentAhead = 0, sentAheadStarted = 0;
  // Answers that came through a sandbox's shared answer page while the loop
  // polled (supervisor/busy_poll.h), not its channel.
  uint64_t answeredInPage = 0;
};

struct SupervisorOptions {
  Config config;
  std::string zygoteBinary;                   // thatch-zygote
  std::string idSlotDir = "/run/thatch/ids";  // host uid leases (flock'd slots)
  sandbox::IdRange ids;
  EventLog::Sink logSink;  // one line per event; stderr when empty
  // The cgroup (relative to the v2 hierarchy) under which config.cgroupSubdir
  // goes, when not this process's own: thatchd's former cgroup after
  // sandbox::moveIntoLeafCgroup().
  std::string cgroupParent;
};

class Supervisor {
 public:
  // Removes what a killed predecessor left, then starts one zygote per
  // configured runtime (blocking until each is ready).
  Supervisor(SupervisorOptions options, Registry& registry, const Clock& clock, kj::Timer& timer,
             kj::UnixEventPort& eventPort, kj::LowLevelAsyncIoProvider& io);
  ~Supervisor();  // kills every sandbox and stops the zygotes
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Always resolves, with a result or an explicit status. Dropping the
  // promise cancels the invocation: a sandbox running it is killed.
  kj::Promise<InvokeResult> invoke(const std::string& function, std::string payload);

  // The pid of the runtime's zygote, -1 if it is not running (for tests and
  // the operator's logs).
  pid_t zygotePid(const std::string& runtime) const;

  // Refuses new invocations, lets the running and queued ones finish for up
  // to `grace` (then kills them: shutting_down), then destroys every sandbox.
  kj::Promise<void> drain(Duration grace = std::chrono::seconds(30));

  Stats stats() const;

  // Starts sandboxes of `function`'s latest version until `count` are warm
  // (at most its pool's max_warm, within the host's caps); resolves to how
  // many it started and kept. Throws if there is no such function.
  kj::Promise<unsigned> prewarm(const std::string& function, unsigned count);

  // Removes every version of `function` from the registry and kills its
  // warm sandboxes; running invocations finish, and their sandboxes are not
  // kept. False if there was no such function.
  bool remove(const std::string& function);

  // The configured runtimes' names, in order.
  std::vector<std::string> runtimeNames() const;

  // For an event loop that polls while answers are due (supervisor::runUntil).
  BusyPoll& busyPoll() { return busyPoll_; }

 private:
  struct Sandbox;
  struct ZygoteSlot;
  struct Invocation;

  kj::Promise<InvokeResult> admitted(kj::Own<Invocation> invocation);
  kj::Promise<Sandbox*> acquire(Invocation& invocation);
  kj::Promise<Sandbox*> startSandbox(const FunctionVersion& version, uint64_t* sandboxId);
  void prewarm();  // every pool up to its minimum
  kj::Promise<bool> startWarm(const FunctionVersion& version);
  void track(const FunctionVersion& version);
  kj::Promise<InvokeResult> execute(Invocation& invocation, Sandbox& sandbox);
  // Sends queued invocations of `function` ahead into busy sandboxes' channels.
  void sendAhead(const std::string& function);
  // `done` ended and its sandbox started `next`, which was sent ahead: `next`
  // takes over the sandbox and `done`'s place under the concurrency limit.
  bool handOver(Invocation& done, Sandbox& sandbox, Invocation& next, bool reusable,
                const InvokeResult& result);
  // What was sent ahead leaves a sandbox that is going: back to waiting in
  // the queue, or answered `crashed` if the sandbox may have started it.
  void takeBack(Sandbox& sandbox, bool mayHaveStarted);
  Duration timeoutOf(const Invocation& invocation) const;
  kj::Promise<InvokeResult> classifyDeath(Invocation& invocation, Sandbox& sandbox);
  // answered: the sandbox answered in step (a whole message, not past its
  // deadline), so it may serve again and has started what was sent ahead.
  void release(Invocation& invocation, Sandbox* sandbox, InvokeResult& result, bool answered);
  void destroy(uint64_t sandboxId, const char* reason);
  void startQueued(uint64_t invocationId);
  size_t countLiveSandboxes() const;  // not being killed
  void logResult(const std::string& function,
                 const InvokeResult& result);  // admitted now: its promise continues
  void finished(const std::string& function, const char* outcome);
  kj::Promise<void> watchZygote(ZygoteSlot& slot);
  kj::Promise<void> housekeeping();
  kj::Promise<void> finishInFlight(TimePoint deadline);
  ZygoteSlot* zygoteFor(const std::string& runtime);
  void startZygote(ZygoteSlot& slot);
  void restartZygote(ZygoteSlot& slot);
  void removeCgroupsOf(const std::string& runtime);
  // The cgroups at `path` below the configured subdirectory ("" for itself).
  std::unique_ptr<sandbox::CgroupManager> cgroupsAt(const std::string& path) const;
  std::string cgroupPath(const std::string& path) const;

  SupervisorOptions options_;
  Registry& registry_;
  const Clock& clock_;
  kj::Timer& timer_;
  kj::UnixEventPort& eventPort_;
  kj::LowLevelAsyncIoProvider& io_;
  sandbox::IdAllocator ids_;
  std::map<std::string, std::unique_ptr<ZygoteSlot>> zygotes_;  // by runtime name
  std::map<uint64_t, std::unique_ptr<Sandbox>> sandboxes_;      // live, by id
  WarmPools pools_;
  Admission admission_;
  EventLog log_;
  struct Waiting {
    kj::Own<kj::PromiseFulfiller<void>> admit;  // rejected: overloaded, shutting_down or crashed
    Invocation* invocation;
  };
  std::map<uint64_t, Waiting> queued_;              // by invocation id
  std::map<FunctionKey, unsigned> prewarming_;      // sandboxes starting for a pool's minimum
  std::map<std::string, uint64_t> currentVersion_;  // the newest version seen, by name
  uint64_t nextId_ = 0;
  bool draining_ = false;
  Stats stats_;
  BusyPoll busyPoll_;
  kj::Own<kj::TaskSet> tasks_;
  kj::Promise<void> housekeeper_ = nullptr;
  unsigned vethTag_;  // random, in this thatchd's egress veth names
};

}  // namespace supervisor
