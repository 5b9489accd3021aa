// GCC 12 warns, wrongly, that kj's AdapterPromiseNode<runtime::SpawnReply>
// ::reject() may destroy an uninitialised string (kj::Maybe's storage of
// an ExceptionOr that holds an exception); which inlining exposes it
// changes with unrelated edits here.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "supervisor/supervisor.h"

#include <capnp/serialize-async.h>
#include <kj/debug.h>
#include <kj/vector.h>
#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <random>

#include "base/socket_stream.h"
#include "base/text.h"
#include "rootfs/sandbox_spec.h"
#include "sandbox/cgroup.h"
#include "supervisor/messages.h"

namespace supervisor {

using base::quoted;

namespace {

using runtime::ExitEvent;
using ExitKind = runtime::wire::ExitInfo::Kind;
using WireStatus = runtime::wire::InvocationResult::Status;

constexpr auto kReadyTimeout = std::chrono::seconds(30);
// A sandbox whose channel broke has usually died: its exit event says how
// (OOM, pids, signal) and comes within milliseconds.
constexpr auto kDeathReportWait = std::chrono::seconds(2);
constexpr auto kHousekeepingTick = std::chrono::milliseconds(100);
// Invocations sent ahead into one sandbox at most: enough to keep it from
// sleeping while thatchd reads an answer and hands the next one over.
constexpr size_t kMaxSentAhead = 4;
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

InvokeResult statusOnly(Status status, std::string message = {}) {
  InvokeResult result;
  result.status = status;
  result.errorMessage = std::move(message);
  return result;
}

Status statusOfDeath(const ExitEvent& exit) {
  switch (exit.kind) {
    case ExitKind::OUT_OF_MEMORY:
      return Status::kOutOfMemory;
    case ExitKind::PIDS_LIMIT:
      return Status::kTooManyProcesses;
    case ExitKind::TIMEOUT:
      return Status::kTimeout;
    default:
      return Status::kCrashed;
  }
}

std::string describeDeath(const ExitEvent& exit) {
  switch (exit.kind) {
    case ExitKind::EXITED:
      return "the sandbox exited with status " + std::to_string(exit.code);
    case ExitKind::SIGNALED:
      return "the sandbox was killed by signal " + std::to_string(exit.code);
    case ExitKind::OUT_OF_MEMORY:
      return "the sandbox ran out of memory";
    case ExitKind::PIDS_LIMIT:
      return "the sandbox hit its process limit";
    default:
      return "the sandbox was killed";
  }
}

StderrTaskErrors taskErrors("background task failed");

}  // namespace

void Histogram::record(Duration d) {
  int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  int bucket = us <= 1 ? 0 : std::min(kBuckets - 1, 63 - __builtin_clzll(uint64_t(us)));
  counts[bucket]++;
  total++;
}

Duration Histogram::quantile(double q) const {
  uint64_t wanted = std::max<uint64_t>(1, uint64_t(q * total + 0.999999));
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts[i];
    if (seen >= wanted) return std::chrono::microseconds(2ull << i);
  }
  return Duration::max();
}

// A live sandbox. `busy` while an invocation uses it; the exit event of a
// busy sandbox is left to that invocation, any other ends the sandbox here.
struct Supervisor::Sandbox {
  uint64_t id = 0;
  FunctionKey function;
  ZygoteSlot* zygote = nullptr;
  std::unique_ptr<sandbox::IdLease> lease;
  kj::Own<base::SocketStream> channel;
  uint64_t memoryBytes = 0;
  bool busy = false;
  // Sending ahead (docs/thatching.md): the queued invocations whose
  // requests wait in the channel behind the running one, in order; null
  // where one was cancelled there (the sandbox must not serve on after it).
  std::deque<Invocation*> ahead;
  bool writing = false;                // a request is being written: nothing may go after it yet
  bool headSent = false;               // the running invocation's request is in the channel
  bool retiring = false;               // it serves what was sent ahead, then goes
  TimePoint runningSince, deadline;    // the running invocation's
  uint64_t answerFrom = 0;             // channel->bytesRead() where its answer starts
  Duration lastRun = Duration::max();  // the previous invocation's run
  kj::Promise<void> aheadWrite = nullptr;
  bool spawned = false;  // the zygote said so: an exit event will follow
  bool killed = false;
  // Busy polling: until when it polls for its next request, and the core
  // it answered from.
  uint64_t pollingUntilNs = 0;
  int cpu = -1;
  // Where it answers while the loop polls for it (null: busy polling is off).
  std::unique_ptr<runtime::SharedAnswer> sharedAnswer;
  std::optional<ExitEvent> exit;
  kj::Own<kj::PromiseFulfiller<ExitEvent>> exitFulfiller;
  kj::ForkedPromise<ExitEvent> exited = nullptr;

  // An answer waits to be read, in the channel or the shared page.
  bool answerWaiting() const {
    return channel->hasInput() || (sharedAnswer && sharedAnswer->ready());
  }
  // Some of the running invocation's answer has come: the sandbox may have
  // gone on to what was sent ahead.
  bool answerBegun() const { return answerWaiting() || channel->bytesRead() > answerFrom; }
};

struct Supervisor::ZygoteSlot {
  RuntimeConfig config;
  Duration backoff = std::chrono::seconds(1);
  std::unique_ptr<runtime::Zygote> zygote;
  kj::Own<kj::UnixEventPort::FdObserver> observer;
  std::map<uint64_t, kj::Own<kj::PromiseFulfiller<runtime::SpawnReply>>> pendingSpawns;
};

// One invocation, owned by its promise chain: dropping the chain (the
// caller went away) runs the destructor, which gives back what it held.
struct Supervisor::Invocation {
  enum class State { kArrived, kQueued, kRunning, kDone };
  Supervisor* owner = nullptr;
  uint64_t id = 0;
  FunctionVersion version;
  std::string payload;
  TimePoint arrived, admittedAt, startedAt;
  bool cold = false;
  uint64_t sandboxId = 0;    // while it holds one
  uint64_t sentAheadTo = 0;  // the sandbox its request was sent ahead to, until it runs there
  State state = State::kArrived;

  ~Invocation() {
    if (!owner || state == State::kDone) return;
    Supervisor& s = *owner;
    if (state == State::kQueued) {
      s.admission_.cancel(version.name, id);
      s.queued_.erase(id);
      auto box = s.sandboxes_.find(sentAheadTo);
      if (sentAheadTo && box != s.sandboxes_.end())
        std::replace(box->second->ahead.begin(), box->second->ahead.end(), this,
                     static_cast<Invocation*>(nullptr));
      return;
    }
    if (state == State::kRunning) {
      if (sandboxId) {
        auto it = s.sandboxes_.find(sandboxId);
        if (it != s.sandboxes_.end()) {
          Sandbox& box = *it->second;
          box.busy = false;
          // Some of its answer arrived: the sandbox may have gone on to
          // what was sent ahead.
          s.takeBack(box, box.answerBegun());
        }
        s.destroy(sandboxId, "cancelled");
      }
      s.finished(version.name, "cancelled");
    }
  }
};

Supervisor::Supervisor(SupervisorOptions options, Registry& registry, const Clock& clock,
                       kj::Timer& timer, kj::UnixEventPort& eventPort,
                       kj::LowLevelAsyncIoProvider& io)
    : options_(std::move(options)),
      registry_(registry),
      clock_(clock),
      timer_(timer),
      eventPort_(eventPort),
      io_(io),
      ids_(options_.idSlotDir, options_.ids),
      pools_(clock, makeLruPolicy(),
             HostLimits{options_.config.host.maxWarm, options_.config.host.maxWarmMemoryBytes}),
      admission_(clock),
      log_(options_.config.logFormat == "json" ? EventLog::Format::kJson : EventLog::Format::kText,
           options_.logSink),
      busyPoll_(clock, options_.config.host.busyPoll, BusyPoll::usableCores(),
                options_.config.limits.cpus),
      tasks_(kj::heap<kj::TaskSet>(taskErrors)),
      vethTag_(std::random_device{}()) {
  // What a predecessor that was killed left: its sandboxes' cgroups, and the
  // processes in them (its zygotes took the rest down with PR_SET_PDEATHSIG).
  for (const RuntimeConfig& runtime : options_.config.runtimes) removeCgroupsOf(runtime.name);
  try {
    auto top = cgroupsAt("");
    for (const RuntimeConfig& runtime : options_.config.runtimes) top->remove(runtime.name);
    for (const std::string& name : top->removeStale())
      log_.write("leftover_cgroup_removed", {{"cgroup", name}});
  } catch (const std::exception& e) {
    fprintf(stderr, "thatchd: cannot remove leftover cgroups: %s\n", e.what());
  }
  for (const RuntimeConfig& runtime : options_.config.runtimes) {
    auto slot = std::make_unique<ZygoteSlot>();
    slot->config = runtime;
    startZygote(*slot);  // at start-up a failure is fatal: the config is wrong
    zygotes_[runtime.name] = std::move(slot);
  }
  for (const std::string& name : registry_.list())
    if (std::optional<FunctionVersion> latest = registry_.latest(name)) track(*latest);
  housekeeper_ = housekeeping();
}

Supervisor::~Supervisor() {
  housekeeper_ = nullptr;
  tasks_ = nullptr;  // first: its promises watch the zygotes' sockets
  queued_.clear();
  for (auto& [id, sandbox] : sandboxes_)
    if (sandbox->exitFulfiller->isWaiting())
      sandbox->exitFulfiller->reject(KJ_EXCEPTION(DISCONNECTED, "supervisor shut down"));
  sandboxes_.clear();  // the leases go; the zygotes kill what remains
  zygotes_.clear();
  try {
    auto top = cgroupsAt("");
    for (const RuntimeConfig& runtime : options_.config.runtimes) top->remove(runtime.name);
  } catch (const std::exception& e) {
    fprintf(stderr, "thatchd: cannot remove the zygotes' cgroups: %s\n", e.what());
  }
}

// Blocks while the interpreter imports its modules (~0.1-0.5 s): at
// start-up, and when a zygote that died is replaced.
void Supervisor::startZygote(ZygoteSlot& slot) {
  const RuntimeConfig& runtime = slot.config;
  runtime::ZygoteOptions zygoteOptions;
  zygoteOptions.binary = options_.zygoteBinary;
  zygoteOptions.runtime = runtime.name;
  // Each zygote has a cgroup directory of its own: when one dies, what it
  // could not remove is exactly what is under it.
  zygoteOptions.extraArgs = {"--cgroup-subdir", cgroupPath(runtime.name)};
  if (!options_.cgroupParent.empty()) {
    zygoteOptions.extraArgs.push_back("--cgroup-parent");
    zygoteOptions.extraArgs.push_back(options_.cgroupParent + "/" + cgroupPath(runtime.name));
  }
  for (const std::string& module : runtime.imports) {
    zygoteOptions.extraArgs.push_back("--import");
    zygoteOptions.extraArgs.push_back(module);
  }
  for (const std::string& dir : runtime.packageDirs) {
    zygoteOptions.extraArgs.push_back("--path");
    zygoteOptions.extraArgs.push_back(dir);
  }
  slot.zygote = std::make_unique<runtime::Zygote>(zygoteOptions);
  if (runtime.stemCells > 0) {
    // The stems' template: a function with the default limits; requests
    // with other limits still claim them (see docs/runtime.md).
    rootfs::SandboxShape stem;
    stem.codeDir = options_.config.stateDir;
    stem.limits = {options_.config.limits.memoryBytes, options_.config.limits.pids,
                   options_.config.limits.cpus};
    slot.zygote->startStemCells(runtime.stemCells, rootfs::sandboxSpec(stem), options_.idSlotDir,
                                options_.ids);
  }
  slot.observer = kj::heap<kj::UnixEventPort::FdObserver>(
      eventPort_, slot.zygote->controlFd(), kj::UnixEventPort::FdObserver::OBSERVE_READ);
  tasks_->add(watchZygote(slot));
}

// A zygote died: its runtime answers start_failed until a replacement is up,
// tried after 1 s, then 2, 4, ... up to 30 s while it keeps failing.
void Supervisor::restartZygote(ZygoteSlot& slot) {
  stats_.zygoteRestarts++;
  tasks_->add(timer_.afterDelay(toKj(slot.backoff)).then([this, &slot]() {
    try {
      startZygote(slot);
      slot.backoff = std::chrono::seconds(1);
      log_.write("zygote_restarted",
                 {{"runtime", slot.config.name}, {"pid", uint64_t(slot.zygote->pid())}});
    } catch (const std::exception& e) {
      log_.write("zygote_restart_failed", {{"runtime", slot.config.name}, {"error", e.what()}});
      slot.backoff = std::min<Duration>(slot.backoff * 2, std::chrono::seconds(30));
      restartZygote(slot);
    }
  }));
}

// Kills what is left in a zygote's cgroups and removes them (blocking for
// at most the kernel's teardown of what it kills).
void Supervisor::removeCgroupsOf(const std::string& runtime) {
  try {
    for (const std::string& name : cgroupsAt(runtime)->removeStale())
      log_.write("leftover_cgroup_removed", {{"cgroup", runtime + "/" + name}});
  } catch (const std::exception& e) {
    fprintf(stderr, "thatchd: cannot remove the cgroups of %s: %s\n", runtime.c_str(), e.what());
  }
}

std::string Supervisor::cgroupPath(const std::string& path) const {
  return path.empty() ? options_.config.cgroupSubdir : options_.config.cgroupSubdir + "/" + path;
}

std::unique_ptr<sandbox::CgroupManager> Supervisor::cgroupsAt(const std::string& path) const {
  std::string relative = cgroupPath(path);
  return sandbox::detectCgroups(
      relative, options_.cgroupParent.empty() ? "" : options_.cgroupParent + "/" + relative);
}

Supervisor::ZygoteSlot* Supervisor::zygoteFor(const std::string& runtime) {
  auto it = zygotes_.find(runtime);
  return it == zygotes_.end() || !it->second->zygote ? nullptr : it->second.get();
}

kj::Promise<void> Supervisor::watchZygote(ZygoteSlot& slot) {
  return slot.observer->whenBecomesReadable().then([this, &slot]() -> kj::Promise<void> {
    runtime::ZygoteEvents events;
    try {
      events = slot.zygote->readAvailable();
    } catch (const std::exception& e) {
      log_.write("zygote_died", {{"runtime", slot.config.name}, {"error", e.what()}});
      for (auto& [id, pending] : slot.pendingSpawns)
        pending->reject(KJ_EXCEPTION(DISCONNECTED, "the zygote died"));
      slot.pendingSpawns.clear();
      // Its sandboxes died with it (PR_SET_PDEATHSIG and the pid namespaces).
      std::vector<uint64_t> gone;
      for (auto& [id, sandbox] : sandboxes_) {
        if (sandbox->zygote != &slot || sandbox->exit) continue;
        sandbox->exit = ExitEvent{id, ExitKind::KILLED, 0, {}};
        sandbox->exitFulfiller->fulfill(ExitEvent(*sandbox->exit));
        if (!sandbox->busy) gone.push_back(id);
      }
      for (uint64_t id : gone) {
        pools_.remove(id);
        sandboxes_.erase(id);
      }
      slot.observer = nullptr;
      slot.zygote.reset();
      removeCgroupsOf(slot.config.name);
      if (!draining_) restartZygote(slot);
      return kj::READY_NOW;
    }
    for (runtime::SpawnReply& reply : events.replies) {
      auto it = slot.pendingSpawns.find(reply.id);
      if (it == slot.pendingSpawns.end()) continue;
      it->second->fulfill(kj::mv(reply));
      slot.pendingSpawns.erase(it);
    }
    for (const ExitEvent& exit : events.exits) {
      auto it = sandboxes_.find(exit.id);
      if (it == sandboxes_.end()) continue;
      Sandbox& sandbox = *it->second;
      sandbox.exit = exit;
      if (sandbox.exitFulfiller->isWaiting()) sandbox.exitFulfiller->fulfill(ExitEvent(exit));
      if (!sandbox.busy) {
        pools_.remove(exit.id);
        sandboxes_.erase(it);
      }
    }
    return watchZygote(slot);
  });
}

kj::Promise<InvokeResult> Supervisor::invoke(const std::string& function, std::string payload) {
  // Answers that need no sandbox: counted and logged like the others.
  auto answer = [this, &function](Status status, std::string message) {
    InvokeResult result = statusOnly(status, std::move(message));
    stats_.invocationsByStatus[statusName(status)]++;
    logResult(function, result);
    return result;
  };
  if (draining_) return answer(Status::kShuttingDown, "thatchd is shutting down");
  std::optional<FunctionVersion> version = registry_.latest(function);
  if (!version) return answer(Status::kNotFound, "no function named " + quoted(function, 64));
  if (payload.size() > options_.config.limits.payloadBytes)
    return answer(
        Status::kBadRequest,
        "the payload exceeds " + std::to_string(options_.config.limits.payloadBytes) + " bytes");
  auto invocation = kj::heap<Invocation>();
  invocation->owner = this;
  invocation->id = ++nextId_;
  invocation->version = std::move(*version);
  invocation->payload = std::move(payload);
  invocation->arrived = clock_.now();

  const PoolConfig& pool = options_.config.pool;
  unsigned concurrency = invocation->version.config.concurrency
                             ? invocation->version.config.concurrency
                             : pool.concurrency;
  admission_.setLimits(function, {concurrency, pool.queueLength, pool.queueTimeout});
  for (uint64_t id : admission_.admitWaiting(function)) startQueued(id);  // a raised limit
  switch (admission_.arrive(function, invocation->id)) {
    case Admission::Decision::kRun:
      invocation->state = Invocation::State::kRunning;
      // Eager: an invocation makes progress whether or not its caller is
      // waiting on it right now (kj promises are lazy otherwise).
      return admitted(kj::mv(invocation)).eagerlyEvaluate(nullptr);
    case Admission::Decision::kOverloaded:
      invocation->state = Invocation::State::kDone;
      return answer(Status::kOverloaded,
                    "'" + function + "' is at its concurrency limit and its queue is full");
    case Admission::Decision::kQueued:
      break;
  }
  invocation->state = Invocation::State::kQueued;
  auto paf = kj::newPromiseAndFulfiller<void>();
  queued_[invocation->id] = {kj::mv(paf.fulfiller), invocation.get()};
  sendAhead(function);
  return paf.promise
      .then(
          [this, invocation = kj::mv(invocation)]() mutable -> kj::Promise<InvokeResult> {
            // Fulfilled means admitted; queue timeouts reject (see housekeeping()).
            invocation->state = Invocation::State::kRunning;
            return admitted(kj::mv(invocation));
          },
          [this, function](kj::Exception&& e) -> kj::Promise<InvokeResult> {
            InvokeResult result;
            switch (e.getType()) {
              case kj::Exception::Type::OVERLOADED:
                result = statusOnly(Status::kOverloaded, "'" + function +
                                                             "' waited in its queue past the "
                                                             "queue timeout");
                break;
              case kj::Exception::Type::FAILED:  // see takeBack()
                result = statusOnly(Status::kCrashed, e.getDescription().cStr());
                break;
              default:
                result = statusOnly(Status::kShuttingDown, "thatchd shut down before it could run");
            }
            stats_.invocationsByStatus[statusName(result.status)]++;
            logResult(function, result);
            return result;
          })
      .eagerlyEvaluate(nullptr);
}

kj::Promise<InvokeResult> Supervisor::admitted(kj::Own<Invocation> invocation) {
  invocation->admittedAt = clock_.now();
  Invocation& inv = *invocation;
  return acquire(inv)
      .then(
          [this, &inv](Sandbox* sandbox) -> kj::Promise<InvokeResult> {
            inv.startedAt = clock_.now();
            return execute(inv, *sandbox);
          },
          [this, &inv](kj::Exception&& e) -> kj::Promise<InvokeResult> {
            InvokeResult result =
                statusOnly(e.getType() == kj::Exception::Type::OVERLOADED ? Status::kOverloaded
                                                                          : Status::kStartFailed,
                           e.getDescription().cStr());
            inv.startedAt = clock_.now();
            auto it = sandboxes_.find(inv.sandboxId);
            release(inv, it == sandboxes_.end() ? nullptr : it->second.get(), result,
                    /*answered=*/false);
            return result;
          })
      .then([this, &inv](InvokeResult result) {
        result.cold = inv.cold;
        result.version = inv.version.version;
        result.queued = inv.admittedAt - inv.arrived;
        result.start = inv.startedAt - inv.admittedAt;
        logResult(inv.version.name, result);
        stats_.queued.record(result.queued);
        stats_.start.record(result.start);
        if (result.run > Duration::zero()) stats_.run.record(result.run);
        return result;
      })
      .attach(kj::mv(invocation));
}

kj::Promise<Supervisor::Sandbox*> Supervisor::acquire(Invocation& inv) {
  FunctionKey key{inv.version.name, inv.version.version};
  track(inv.version);
  if (inv.sentAheadTo) {  // handed over (handOver()): that sandbox runs it already
    auto it = sandboxes_.find(inv.sentAheadTo);
    if (it == sandboxes_.end())
      return failure(kj::Exception::Type::FAILED, "the sandbox it was sent ahead to is gone");
    stats_.warmStarts++;
    return it->second.get();
  }
  while (std::optional<uint64_t> id = pools_.take(key)) {
    auto it = sandboxes_.find(*id);
    if (it == sandboxes_.end() || it->second->exit || it->second->killed) {
      pools_.remove(*id);
      continue;
    }
    it->second->busy = true;
    inv.sandboxId = *id;
    stats_.warmStarts++;
    return it->second.get();
  }
  // The host's cap on live sandboxes: an idle one of another function makes
  // room (the keep-alive policy chooses), else the invocation is refused.
  while (countLiveSandboxes() >= options_.config.host.maxSandboxes) {
    std::optional<uint64_t> victim = pools_.evictOne();
    if (!victim)
      return failure(kj::Exception::Type::OVERLOADED,
                     "the host is at its limit of " +
                         std::to_string(options_.config.host.maxSandboxes) + " live sandboxes");
    destroy(*victim, "evicted");
  }
  inv.cold = true;
  stats_.coldStarts++;
  return startSandbox(inv.version, &inv.sandboxId);
}

// Those not being killed: a killed sandbox stays in sandboxes_ until its
// exit event, but no longer counts against the host's cap.
size_t Supervisor::countLiveSandboxes() const {
  size_t live = 0;
  for (const auto& [id, sandbox] : sandboxes_) live += !sandbox->killed && !sandbox->exit;
  return live;
}

// Sets *sandboxId as soon as the sandbox exists (before it is ready), so
// that a caller that gives up can have it destroyed.
kj::Promise<Supervisor::Sandbox*> Supervisor::startSandbox(const FunctionVersion& version,
                                                           uint64_t* sandboxId) {
  const FunctionConfig& fn = version.config;
  ZygoteSlot* slot = zygoteFor(fn.runtime);
  if (!slot)
    return failure(kj::Exception::Type::FAILED, "runtime '" + fn.runtime + "' is not running");
  const LimitsConfig& defaults = options_.config.limits;

  auto sandbox = std::make_unique<Sandbox>();
  sandbox->id = ++nextId_;
  sandbox->function = {version.name, version.version};
  sandbox->zygote = slot;
  sandbox->lease = std::make_unique<sandbox::IdLease>(ids_.acquire());
  sandbox->memoryBytes = fn.memoryBytes ? fn.memoryBytes : defaults.memoryBytes;
  sandbox->busy = true;
  auto exitPaf = kj::newPromiseAndFulfiller<ExitEvent>();
  sandbox->exitFulfiller = kj::mv(exitPaf.fulfiller);
  sandbox->exited = exitPaf.promise.fork();

  runtime::SpawnParams params;
  rootfs::SandboxShape box;
  box.codeDir = version.codeDir;
  box.hostId = sandbox->lease->hostId();
  box.limits = {sandbox->memoryBytes, defaults.pids, defaults.cpus};
  box.idSlot = sandbox->lease->slot();  // the egress address follows it
  box.net = fn.network == Network::kEgress ? sandbox::NetMode::kEgress : sandbox::NetMode::kNone;
  params.spec = rootfs::sandboxSpec(box);
  params.names.cgroupName = "sbx-" + std::to_string(sandbox->id);
  if (box.net == sandbox::NetMode::kEgress) {
    // The veth name carries this thatchd's tag, since the kernel removes a
    // dead sandbox's veth in the background.
    char veth[16];
    snprintf(veth, sizeof veth, "tv%05x%07llx", vethTag_ & 0xfffff,
             static_cast<unsigned long long>(sandbox->id & 0xfffffff));
    params.names.hostVethName = veth;
  }
  params.handler = fn.handler;
  params.env.push_back("PATH=/usr/local/bin:/usr/bin:/bin");
  for (const auto& [key, value] : fn.env) params.env.push_back(key + "=" + value);
  params.function.name = version.name;
  params.function.version = std::to_string(version.version);
  params.function.memoryLimitMb = sandbox->memoryBytes >> 20;
  params.function.invokedFunctionArn =
      "arn:thatch:function:" + version.name + ":" + params.function.version;
  params.function.logGroupName = "/thatch/" + version.name;
  params.function.logStreamName = params.names.cgroupName;
  params.function.raw = fn.raw;
  params.function.logLimitBytes = defaults.logBytes;

  auto [supervisorEnd, sandboxEnd] = runtime::makeInvocationChannel();
  auto replyPaf = kj::newPromiseAndFulfiller<runtime::SpawnReply>();
  base::Fd page;
  if (busyPoll_.sandboxesPoll()) {
    try {
      page = runtime::SharedAnswer::create();
      sandbox->sharedAnswer = std::make_unique<runtime::SharedAnswer>(page.get());
    } catch (const std::exception& e) {
      // Only the shortcut is lost: its answers come through the channel.
      log_.write("shared_answer_unavailable", {{"sandbox", sandbox->id}, {"error", e.what()}});
      page.reset();
    }
  }
  try {
    slot->zygote->requestSpawn(sandbox->id, params, sandboxEnd.get(), page.get());
  } catch (const std::exception& e) {
    return failure(kj::Exception::Type::FAILED,
                   std::string("cannot reach the zygote: ") + e.what());
  }
  slot->pendingSpawns[sandbox->id] = kj::mv(replyPaf.fulfiller);
  sandbox->channel = kj::heap<base::SocketStream>(eventPort_, supervisorEnd.release());
  Sandbox* raw = sandbox.get();
  *sandboxId = raw->id;
  sandboxes_[raw->id] = std::move(sandbox);

  return replyPaf.promise
      .then([this, raw](runtime::SpawnReply reply)
                -> kj::Promise<kj::Maybe<kj::Own<capnp::MessageReader>>> {
        if (reply.failed)
          return failure(kj::Exception::Type::FAILED,
                         "confinement step '" + reply.step + "' failed: " + reply.message);
        raw->spawned = true;
        return capnp::tryReadMessage(*raw->channel)
            .exclusiveJoin(
                timer_.afterDelay(toKj(kReadyTimeout))
                    .then([]() -> kj::Maybe<kj::Own<capnp::MessageReader>> { return nullptr; }));
      })
      .then([this, raw](kj::Maybe<kj::Own<capnp::MessageReader>> message) -> kj::Promise<Sandbox*> {
        KJ_IF_MAYBE (reader, message) {
          try {
            runtime::parseReady(**reader);
            return raw;
          } catch (const runtime::LoadError& e) {
            std::string text = e.type() + ": " + e.message();
            if (!e.traceback().empty()) text += "\n" + e.traceback();
            return failure(kj::Exception::Type::FAILED, text);
          } catch (const std::exception& e) {
            return failure(kj::Exception::Type::FAILED, e.what());
          }
        }
        return KJ_EXCEPTION(
            FAILED, "the sandbox did not become ready (it closed its channel, or 30 s passed)");
      });
}

namespace {

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

}  // namespace

Duration Supervisor::timeoutOf(const Invocation& inv) const {
  return inv.version.config.timeout.count() ? Duration(inv.version.config.timeout)
                                            : Duration(options_.config.limits.timeout);
}

kj::Promise<InvokeResult> Supervisor::execute(Invocation& inv, Sandbox& sandbox) {
  const LimitsConfig& defaults = options_.config.limits;
  Duration timeout = timeoutOf(inv);
  uint64_t now = monotonicNs();
  uint64_t deadlineNs = now + std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
  // Its request is in the channel already (sendAhead(), then handOver()).
  bool sentAhead = std::exchange(inv.sentAheadTo, 0) != 0;
  sandbox.headSent = sentAhead;
  sandbox.runningSince = clock_.now();
  sandbox.deadline = sandbox.runningSince + timeout;
  sandbox.answerFrom = sandbox.channel->bytesRead();
  // Polling on another core since its last answer (its window is not over).
  bool awake = now < sandbox.pollingUntilNs && sandbox.cpu != sched_getcpu();
  auto due = kj::heap<DueAnswer>(busyPoll_, awake);
  // A request sent ahead asked the sandbox not to poll after it.
  if (sentAhead) due->sandboxPollNs = 0;
  capnp::ReaderOptions options;
  // The result and its logs, with room for the message's own framing.
  options.traversalLimitInWords = (defaults.resultBytes + defaults.logBytes) / 8 + (64 << 10);

  // kGarbled: the answer in the shared page is not a valid message.
  enum class Ending { kAnswered, kDeadline, kDied, kBroken, kGarbled };
  struct Race {
    Ending ending;
    kj::Own<capnp::MessageReader> reader;
    std::string error;
  };
  Sandbox* box = &sandbox;
  // While the loop polls for it, the answer of a polling sandbox comes
  // through its shared answer page (runtime/shared_answer.h).
  kj::Maybe<kj::Promise<bool>> inPage;
  if (!sentAhead && awake && sandbox.sharedAnswer && busyPoll_.pagesWatched()) {
    sandbox.sharedAnswer->watch();
    inPage = busyPoll_.watch(*sandbox.sharedAnswer);
  }
  kj::Promise<void> sent = kj::READY_NOW;
  if (!sentAhead) {
    // Small: the payload is referenced, not copied (capnp's default first
    // segment is 8 KiB, allocated and zeroed per invocation).
    auto message = kj::heap<capnp::MallocMessageBuilder>(64);
    runtime::buildInvocation(*message, "inv-" + std::to_string(inv.id), inv.payload, deadlineNs,
                             due->sandboxPollNs);
    if (inPage != nullptr) message->getRoot<runtime::wire::Invocation>().setAnswerShared(true);
    box->writing = true;
    sent = capnp::writeMessage(*sandbox.channel, *message)
               .attach(kj::mv(message))
               .then([this, box, function = inv.version.name]() {
                 box->writing = false;
                 box->headSent = true;
                 if (admission_.queued(function) > 0) sendAhead(function);
               });
  }
  kj::Promise<Race> answered = sent.then(
      [this, box, options, inPage = kj::mv(inPage)]() mutable -> kj::Promise<Race> {
        kj::Promise<Race> fromChannel =
            capnp::tryReadMessage(*box->channel, options)
                .then(
                    [](kj::Maybe<kj::Own<capnp::MessageReader>> reader) {
                      KJ_IF_MAYBE (r, reader) return Race{Ending::kAnswered, kj::mv(*r), {}};
                      return Race{Ending::kBroken, {}, "the sandbox closed its channel"};
                    },
                    [](kj::Exception&& e) {
                      return Race{Ending::kBroken, {}, e.getDescription().cStr()};
                    });
        KJ_IF_MAYBE (page, inPage) {
          return fromChannel.exclusiveJoin(
              page->then([this, box, options](bool there) -> kj::Promise<Race> {
                if (!there) return kj::NEVER_DONE;  // the channel brings it
                stats_.answeredInPage++;
                try {
                  return Race{Ending::kAnswered, box->sharedAnswer->take(options), {}};
                } catch (const kj::Exception& e) {
                  return Race{Ending::kGarbled, {}, e.getDescription().cStr()};
                }
              }));
        }
        return kj::mv(fromChannel);
      },
      [](kj::Exception&& e) -> kj::Promise<Race> {
        return Race{Ending::kBroken, {}, e.getDescription().cStr()};
      });
  // At the deadline or the death, an answer already in the channel came
  // first: it is read (the sandbox may have gone on to a request sent ahead),
  // unless it has not arrived whole within kAnswerGrace.
  auto unlessAnswerWaits = [this, box](Ending ending) -> kj::Promise<Race> {
    if (!box->answerWaiting()) return Race{ending, {}, {}};
    return timer_.afterDelay(toKj(kAnswerGrace)).then([ending]() { return Race{ending, {}, {}}; });
  };
  kj::Promise<Race> deadline = timer_.afterDelay(toKj(timeout)).then([unlessAnswerWaits]() {
    return unlessAnswerWaits(Ending::kDeadline);
  });
  kj::Promise<Race> died = sandbox.exited.addBranch().then(
      [unlessAnswerWaits](ExitEvent) { return unlessAnswerWaits(Ending::kDied); },
      [unlessAnswerWaits](kj::Exception&&) { return unlessAnswerWaits(Ending::kDied); });

  auto timedOut = [timeout]() {
    return statusOnly(
        Status::kTimeout,
        "the invocation exceeded its timeout of " +
            std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
            " ms");
  };
  return answered.exclusiveJoin(kj::mv(deadline))
      .exclusiveJoin(kj::mv(died))
      .then([this, &inv, box, timedOut,
             due = kj::mv(due)](Race race) mutable -> kj::Promise<InvokeResult> {
        due->close();
        if (race.ending == Ending::kDeadline) {
          InvokeResult result = timedOut();
          release(inv, box, result, /*answered=*/false);
          return result;
        }
        if (race.ending == Ending::kAnswered) {
          InvokeResult result;
          bool inStep = true;
          try {
            runtime::InvocationOutcome outcome = runtime::parseResult(*race.reader);
            box->cpu = outcome.cpu;
            box->pollingUntilNs = due->sandboxPollNs ? monotonicNs() + due->sandboxPollNs : 0;
            box->lastRun = std::chrono::nanoseconds(outcome.runNs);
            result.run = std::chrono::nanoseconds(outcome.runNs);
            if (outcome.overran) {
              // It ended past its deadline, just before thatchd's timer: a
              // timeout all the same, and the sandbox exits after this answer.
              result = timedOut();
              result.run = std::chrono::nanoseconds(outcome.runNs);
              release(inv, box, result, /*answered=*/false);
              return result;
            }
            result.logs = std::move(outcome.logs);
            result.logsTruncated = outcome.logsTruncated;
            result.errorType = std::move(outcome.errorType);
            result.errorMessage = std::move(outcome.errorMessage);
            result.traceback = std::move(outcome.traceback);
            switch (outcome.status) {
              case WireStatus::OK:
                result.status = Status::kOk;
                break;
              case WireStatus::BAD_PAYLOAD:
                result.status = Status::kBadRequest;
                break;
              case WireStatus::HANDLER_ERROR:
              case WireStatus::RESULT_NOT_SERIALIZABLE:
                result.status = Status::kHandlerError;
                break;
              default:
                result.status = Status::kCrashed;
            }
            if (outcome.payload.size() > options_.config.limits.resultBytes) {
              result.status = Status::kResultTooLarge;
              result.errorMessage = "the result is " + std::to_string(outcome.payload.size()) +
                                    " bytes, over the limit of " +
                                    std::to_string(options_.config.limits.resultBytes);
            } else {
              result.payload = std::move(outcome.payload);
            }
          } catch (const std::exception& e) {
            result = statusOnly(Status::kCrashed, e.what());
            inStep = false;  // not an answer this runtime wrote
          }
          release(inv, box, result, inStep);
          return result;
        }
        // The sandbox wrote garbage into its page and lives on: no exit event
        // is coming to explain it.
        if (race.ending == Ending::kGarbled) {
          InvokeResult result =
              statusOnly(Status::kCrashed,
                         "the sandbox's answer in its shared page is not valid: " + race.error);
          release(inv, box, result, /*answered=*/false);
          return result;
        }
        // A result over the size limit: the reader stopped at its header,
        // so the rest is still in the channel and the sandbox cannot serve
        // again.
        std::string why = race.error;
        if (race.ending == Ending::kBroken && why.find("too large") != std::string::npos) {
          InvokeResult result =
              statusOnly(Status::kResultTooLarge,
                         "the result and its logs exceed " +
                             std::to_string(options_.config.limits.resultBytes) + " bytes");
          release(inv, box, result, /*answered=*/false);
          return result;
        }
        // Broken channel or death: the exit event tells which limit, if any.
        return box->exited.addBranch()
            .then([](ExitEvent exit) -> kj::Maybe<ExitEvent> { return exit; },
                  [](kj::Exception&&) -> kj::Maybe<ExitEvent> { return nullptr; })
            .exclusiveJoin(
                timer_.afterDelay(toKj(kDeathReportWait)).then([]() -> kj::Maybe<ExitEvent> {
                  return nullptr;
                }))
            .then([this, &inv, box, why](kj::Maybe<ExitEvent> exit) {
              InvokeResult result;
              KJ_IF_MAYBE (e, exit) {
                result = statusOnly(statusOfDeath(*e), describeDeath(*e));
                if (box->killed && draining_)
                  result =
                      statusOnly(Status::kShuttingDown, "killed: thatchd's drain grace ran out");
              } else {
                result = statusOnly(Status::kCrashed, why);
              }
              release(inv, box, result, /*answered=*/false);
              return result;
            });
      });
}

// The invocation is over: its sandbox goes on to what was sent ahead to it,
// or back to its pool if it is fit to serve again; the next queued
// invocation of the function may run.
void Supervisor::release(Invocation& inv, Sandbox* sandbox, InvokeResult& result, bool answered) {
  if (sandbox) {
    result.sandboxId = sandbox->id;
    sandbox->busy = false;
    sandbox->headSent = false;
    bool reusable =
        answered && !sandbox->exit && !sandbox->killed && !sandbox->retiring &&
        (result.status == Status::kOk || result.status == Status::kHandlerError ||
         result.status == Status::kBadRequest || result.status == Status::kResultTooLarge) &&
        !draining_ && currentVersion_.count(sandbox->function.name);
    // Answered in step, the sandbox has started the first one sent ahead
    // (dead or killed since, that is that invocation's end). Without an
    // answer in step it started none: it writes a whole answer before it
    // reads on, and one that ended past its deadline says `overran` and
    // stops.
    bool sentAhead = !sandbox->ahead.empty();
    bool abandoned = false;
    if (answered && sentAhead) {
      Invocation* next = sandbox->ahead.front();
      if (next && handOver(inv, *sandbox, *next, reusable, result)) return;
      // It runs one whose caller went away (or, never seen, one that
      // cannot be handed over, which takeBack() answers): it goes.
      abandoned = true;
    }
    takeBack(*sandbox, /*mayHaveStarted=*/abandoned);
    if (reusable && !sentAhead) {
      for (uint64_t victim : pools_.putIdle(sandbox->function, sandbox->id, sandbox->memoryBytes))
        destroy(victim, victim == sandbox->id ? "pool_full" : "evicted");
    } else if (sandbox->exit) {
      sandboxes_.erase(sandbox->id);
    } else {
      destroy(sandbox->id, abandoned ? "cancelled" : statusName(result.status));
    }
  }
  inv.sandboxId = 0;
  inv.state = Invocation::State::kDone;
  finished(inv.version.name, statusName(result.status));
}

bool Supervisor::handOver(Invocation& done, Sandbox& sandbox, Invocation& next, bool reusable,
                          const InvokeResult& result) {
  auto waiting = queued_.find(next.id);
  if (waiting == queued_.end() || !admission_.finishInto(done.version.name, next.id)) return false;
  sandbox.ahead.pop_front();
  sandbox.busy = true;
  sandbox.headSent = true;  // or being written (`writing`)
  sandbox.retiring = sandbox.retiring || !reusable;
  sandbox.runningSince = clock_.now();
  sandbox.deadline = sandbox.runningSince + timeoutOf(next);
  sandbox.answerFrom = sandbox.channel->bytesRead();
  next.state = Invocation::State::kRunning;
  next.sandboxId = sandbox.id;    // a cancel from now on kills the sandbox
  next.sentAheadTo = sandbox.id;  // execute() finds its request sent
  auto admit = kj::mv(waiting->second.admit);
  queued_.erase(waiting);
  admit->fulfill();
  stats_.sentAheadStarted++;
  stats_.invocationsByStatus[statusName(result.status)]++;
  done.sandboxId = 0;
  done.state = Invocation::State::kDone;
  sendAhead(next.version.name);
  return true;
}

void Supervisor::takeBack(Sandbox& sandbox, bool mayHaveStarted) {
  std::deque<Invocation*> ahead = std::exchange(sandbox.ahead, {});
  for (Invocation* next : ahead) {
    bool started = std::exchange(mayHaveStarted, false);  // only the first can have
    if (!next) continue;                                  // cancelled there
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

void Supervisor::sendAhead(const std::string& function) {
  Duration under = options_.config.pool.sendAheadUnder;
  if (under.count() == 0 || draining_) return;
  TimePoint now = clock_.now();
  // The oldest waiting invocation that is not sent ahead yet, if it may go
  // behind `s`'s running invocation and what waits there already: never
  // past its queue deadline (each of those is over, or killed, by its own).
  auto nextFor = [&](const Sandbox& s) -> Invocation* {
    std::optional<uint64_t> id = admission_.firstUnreserved(function);
    if (!id) return nullptr;
    auto waiting = queued_.find(*id);
    std::optional<TimePoint> queueDeadline = admission_.queueDeadline(*id);
    if (waiting == queued_.end() || !queueDeadline) return nullptr;
    Invocation* inv = waiting->second.invocation;
    TimePoint latestStart = s.deadline + timeoutOf(*inv) * s.ahead.size() + kAnswerGrace;
    return *queueDeadline > latestStart ? inv : nullptr;
  };
  for (;;) {
    std::optional<uint64_t> first = admission_.firstUnreserved(function);
    auto waiting = first ? queued_.find(*first) : queued_.end();
    if (waiting == queued_.end()) return;
    uint64_t version = waiting->second.invocation->version.version;
    // The sandbox of its version with the fewest sent ahead, among those
    // running a short invocation (so that what is sent waits little),
    // behind a request already in the channel (never before it).
    Sandbox* target = nullptr;
    for (auto& [sandboxId, s] : sandboxes_) {
      bool open = s->busy && s->headSent && !s->writing && !s->retiring && !s->killed && !s->exit &&
                  s->ahead.size() < kMaxSentAhead &&
                  std::find(s->ahead.begin(), s->ahead.end(), nullptr) == s->ahead.end();
      if (open && s->function.name == function && s->function.version == version &&
          s->lastRun < under && now - s->runningSince < under &&
          (!target || s->ahead.size() < target->ahead.size()))
        target = s.get();
    }
    if (!target) return;
    // As many as fit, in one write.
    kj::Vector<kj::Own<capnp::MallocMessageBuilder>> messages;
    // The write may outlive an invocation cancelled meanwhile: its own
    // copies of the payloads, which the messages reference.
    kj::Vector<kj::Own<std::string>> payloads;
    while (target->ahead.size() < kMaxSentAhead) {
      Invocation* inv = nextFor(*target);
      if (!inv || inv->version.version != version) break;
      admission_.reserve(inv->id);
      inv->sentAheadTo = target->id;
      target->ahead.push_back(inv);
      stats_.sentAhead++;
      auto message = kj::heap<capnp::MallocMessageBuilder>(64);
      payloads.add(kj::heap<std::string>(inv->payload));
      // Its deadline counts from when the sandbox starts it.
      runtime::buildInvocation(
          *message, "inv-" + std::to_string(inv->id), *payloads.back(), /*deadlineNs=*/0,
          /*busyPollNs=*/0,
          std::chrono::duration_cast<std::chrono::nanoseconds>(timeoutOf(*inv)).count());
      messages.add(kj::mv(message));
    }
    if (messages.empty()) return;
    auto builders = kj::heapArray<capnp::MessageBuilder*>(messages.size());
    for (size_t i = 0; i < messages.size(); ++i) builders[i] = messages[i].get();
    target->writing = true;
    // A failed write leaves `writing` set: the running invocation's read
    // finds the channel broken.
    target->aheadWrite =
        capnp::writeMessages(*target->channel, builders.asPtr())
            .attach(kj::mv(messages), kj::mv(builders), kj::mv(payloads))
            .then(
                [this, target, function]() {
                  target->writing = false;
                  // Not from here: sendAhead() may replace this promise.
                  if (admission_.queued(function) > 0)
                    tasks_->add(kj::evalLater([this, function]() { sendAhead(function); }));
                },
                [](kj::Exception&&) {})
            .eagerlyEvaluate(nullptr);
  }
}

void Supervisor::finished(const std::string& function, const char* outcome) {
  stats_.invocationsByStatus[outcome]++;
  if (std::optional<uint64_t> next = admission_.finish(function)) startQueued(*next);
}

void Supervisor::startQueued(uint64_t invocationId) {
  auto it = queued_.find(invocationId);
  if (it == queued_.end()) return;
  it->second.admit->fulfill();
  queued_.erase(it);
}

void Supervisor::destroy(uint64_t sandboxId, const char* reason) {
  auto it = sandboxes_.find(sandboxId);
  if (it == sandboxes_.end()) return;
  Sandbox& sandbox = *it->second;
  pools_.remove(sandboxId);
  if (sandbox.exit || !sandbox.spawned || !sandbox.zygote->zygote) {
    if (!sandbox.busy) sandboxes_.erase(it);
    return;
  }
  if (!sandbox.killed) {
    sandbox.killed = true;
    stats_.killsByReason[reason]++;
    log_.write("sandbox_killed", {{"sandbox", sandboxId},
                                  {"function", sandbox.function.name},
                                  {"version", sandbox.function.version},
                                  {"reason", reason}});
    try {
      if (sandbox.zygote->zygote) sandbox.zygote->zygote->kill(sandboxId);
    } catch (const std::exception& e) {
      fprintf(stderr, "thatchd: cannot ask the zygote to kill sandbox %llu: %s\n",
              static_cast<unsigned long long>(sandboxId), e.what());
    }
  }
  // Erased when its exit event arrives (then its cgroup is gone).
}

kj::Promise<void> Supervisor::housekeeping() {
  return timer_.afterDelay(toKj(kHousekeepingTick)).then([this]() {
    for (uint64_t id : admission_.expireQueued()) {
      auto it = queued_.find(id);
      if (it == queued_.end()) continue;
      it->second.admit->reject(KJ_EXCEPTION(OVERLOADED, "queue timeout"));
      queued_.erase(it);
    }
    for (uint64_t id : pools_.expire()) destroy(id, "expired");
    prewarm();
    return housekeeping();
  });
}

kj::Promise<void> Supervisor::drain(Duration grace) {
  draining_ = true;
  return finishInFlight(clock_.now() + grace);
}

// In-flight invocations (running or queued) finish until `deadline`; then
// queued ones are answered shutting_down and running ones are killed.
kj::Promise<void> Supervisor::finishInFlight(TimePoint deadline) {
  bool busy = !queued_.empty();
  for (auto& [id, sandbox] : sandboxes_) busy = busy || sandbox->busy;
  if (busy) {
    if (clock_.now() >= deadline) {
      for (auto& [id, waiting] : queued_)
        waiting.admit->reject(KJ_EXCEPTION(DISCONNECTED, "thatchd is shutting down"));
      queued_.clear();
      std::vector<uint64_t> running;
      for (auto& [id, sandbox] : sandboxes_)
        if (sandbox->busy) running.push_back(id);
      for (uint64_t id : running) destroy(id, "shutdown");
    }
    return timer_.afterDelay(50 * kj::MILLISECONDS).then([this, deadline]() {
      return finishInFlight(deadline);
    });
  }
  for (uint64_t id : pools_.drain()) destroy(id, "shutdown");
  return kj::READY_NOW;
}

void Supervisor::logResult(const std::string& function, const InvokeResult& result) {
  auto us = [](Duration d) {
    return uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
  };
  log_.write("invocation", {{"function", function},
                            {"version", result.version},
                            {"status", statusName(result.status)},
                            {"cold", result.cold},
                            {"sandbox", result.sandboxId},
                            {"queued_us", us(result.queued)},
                            {"start_us", us(result.start)},
                            {"run_us", us(result.run)}});
}

std::vector<std::string> Supervisor::runtimeNames() const {
  std::vector<std::string> names;
  for (const RuntimeConfig& runtime : options_.config.runtimes) names.push_back(runtime.name);
  return names;
}

pid_t Supervisor::zygotePid(const std::string& runtime) const {
  auto it = zygotes_.find(runtime);
  return it == zygotes_.end() || !it->second->zygote ? -1 : it->second->zygote->pid();
}

// Keeps each function version's pool at its minimum of warm sandboxes
// (pool.min_warm), within the host caps.
void Supervisor::prewarm() {
  if (draining_) return;
  for (const FunctionKey& key : pools_.functionsBelowMinimum()) {
    unsigned missing = pools_.prewarmDeficit(key, prewarming_[key]);
    std::optional<FunctionVersion> version = registry_.get(key.name, key.version);
    if (!version) {
      for (uint64_t id : pools_.dropFunction(key)) destroy(id, "removed");
      continue;
    }
    for (unsigned i = 0; i < missing; ++i) tasks_->add(startWarm(*version).ignoreResult());
  }
}

kj::Promise<unsigned> Supervisor::prewarm(const std::string& function, unsigned count) {
  if (draining_) return KJ_EXCEPTION(FAILED, "thatchd is shutting down");
  std::optional<FunctionVersion> version = registry_.latest(function);
  if (!version)
    return failure(kj::Exception::Type::FAILED, "no function named " + quoted(function, 64));
  track(*version);
  FunctionKey key{version->name, version->version};
  size_t target = std::min<size_t>(count, pools_.limits(key).maxWarm);
  size_t have = pools_.idleCount(key) + prewarming_[key];
  size_t live = countLiveSandboxes();
  size_t room =
      live >= options_.config.host.maxSandboxes ? 0 : options_.config.host.maxSandboxes - live;
  size_t missing = std::min(target > have ? target - have : 0, room);
  auto started = kj::heapArrayBuilder<kj::Promise<bool>>(missing);
  for (size_t i = 0; i < missing; ++i) started.add(startWarm(*version));
  return kj::joinPromises(started.finish()).then([](kj::Array<bool> kept) {
    unsigned n = 0;
    for (bool k : kept) n += k;
    return n;
  });
}

// One more idle sandbox for `version`'s pool; false if it failed to start
// or the pool (or the host's caps) had no room for it.
kj::Promise<bool> Supervisor::startWarm(const FunctionVersion& version) {
  FunctionKey key{version.name, version.version};
  prewarming_[key]++;
  uint64_t id = 0;
  kj::Promise<Sandbox*> started = startSandbox(version, &id);
  return started
      .then(
          [this, key](Sandbox* sandbox) {
            prewarming_[key]--;
            sandbox->busy = false;
            stats_.prewarmed++;
            bool kept = true;
            for (uint64_t victim : pools_.putIdle(key, sandbox->id, sandbox->memoryBytes)) {
              kept = kept && victim != sandbox->id;
              destroy(victim, victim == sandbox->id ? "pool_full" : "evicted");
            }
            return kept;
          },
          [this, key, id](kj::Exception&& e) {
            prewarming_[key]--;
            fprintf(stderr, "thatchd: cannot prewarm %s v%llu: %s\n", key.name.c_str(),
                    static_cast<unsigned long long>(key.version), e.getDescription().cStr());
            auto it = sandboxes_.find(id);
            if (it != sandboxes_.end()) {
              it->second->busy = false;
              destroy(id, "start_failed");
            }
            return false;
          })
      .eagerlyEvaluate(nullptr);
}

bool Supervisor::remove(const std::string& function) {
  for (const FunctionVersion& version : registry_.versions(function))
    for (uint64_t id : pools_.dropFunction({version.name, version.version})) destroy(id, "removed");
  currentVersion_.erase(function);
  return registry_.remove(function);
}

// A function's pool limits (from the config and the function's own), and
// the retirement of the warm sandboxes of its older versions.
void Supervisor::track(const FunctionVersion& version) {
  const PoolConfig& pool = options_.config.pool;
  FunctionKey key{version.name, version.version};
  pools_.setLimits(key, {pool.minWarm, pool.maxWarm, pool.idleTtl});
  uint64_t& current = currentVersion_[version.name];
  if (current && current < version.version)
    for (uint64_t id : pools_.dropFunction({version.name, current})) destroy(id, "old_version");
  current = std::max(current, version.version);
}

Stats Supervisor::stats() const {
  Stats stats = stats_;
  stats.liveSandboxes = sandboxes_.size();
  stats.idleSandboxes = pools_.idleCount();
  stats.idleMemoryBytes = pools_.idleMemoryBytes();
  stats.pools = pools_.counters();
  stats.admission = admission_.counters();
  return stats;
}

}  // namespace supervisor
