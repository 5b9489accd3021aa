// GCC 12 warns, wrongly, that kj's promise nodes may destroy an
// uninitialised string (kj::Maybe's storage of an ExceptionOr that holds an
// exception); which inlining exposes it changes with unrelated edits here.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "supervisor/supervisor.h"

#include <kj/debug.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "base/text.h"
#include "supervisor/keep_alive_choice.h"
#include "supervisor/messages.h"
#include "supervisor/spawn_request.h"

namespace supervisor {

namespace {

using State = SandboxState;

constexpr auto kReadyTimeout = std::chrono::seconds(30);
constexpr auto kHousekeepingTick = std::chrono::milliseconds(100);

kj::Duration toKj(Duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count() * kj::NANOSECONDS;
}

StderrTaskErrors taskErrors("background task failed");

}  // namespace

// Held by an invocation's promise chain (attached to it): when the chain
// goes before the invocation is answered — its caller went away — the
// invocation is cancelled.
class Supervisor::Ticket {
 public:
  Ticket(Supervisor& supervisor, Invocation& invocation)
      : supervisor_(supervisor), invocation_(kj::addRef(invocation)) {
    supervisor_.invocationsOf_[key()]++;
  }
  ~Ticket() {
    supervisor_.cancel(*invocation_);
    auto it = supervisor_.invocationsOf_.find(key());
    if (--it->second == 0) supervisor_.invocationsOf_.erase(it);
  }
  Ticket(const Ticket&) = delete;
  Ticket& operator=(const Ticket&) = delete;

 private:
  FunctionKey key() const { return {invocation_->version.name, invocation_->version.version}; }

  Supervisor& supervisor_;
  kj::Own<Invocation> invocation_;
};

// A config that did not pass the checks (config_check.h) names none.
std::unique_ptr<KeepAlivePolicy> keepAlivePolicyFor(const PoolConfig& pool) {
  std::optional<KeepAliveKind> kind = parseKeepAlive(pool.keepAlive);
  if (!kind) throw std::invalid_argument("pool.keep_alive: no policy named " + pool.keepAlive);
  return makeKeepAlivePolicy(*kind, pool.idleTtl);
}

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
      log_(options_.config.logFormat == "json" ? EventLog::Format::kJson : EventLog::Format::kText,
           options_.logSink),
      pools_(clock, keepAlivePolicyFor(options_.config.pool),
             HostLimits{options_.config.host.maxWarm, options_.config.host.maxWarmMemoryBytes}),
      admission_(clock, hostConcurrency(options_.config.host)),
      busyPoll_(clock, options_.config.host.busyPoll, BusyPoll::usableCores(),
                options_.config.limits.cpus),
      tasks_(kj::heap<kj::TaskSet>(taskErrors)),
      vethTag_(std::random_device{}()) {
  busyPoll_.answerPageAlways(options_.config.testing.answerPageAlways);
  zygotes_ = std::make_unique<ZygoteSlots>(
      options_.config,
      ZygoteSlots::Options{options_.zygoteBinary, options_.idSlotDir, options_.ids,
                           options_.cgroupParent},
      log_, timer_, eventPort_, static_cast<ZygoteSlots::Listener&>(*this));
  if (options_.config.pool.freezeIdle) prepareFreezer();
  for (const std::string& name : registry_.list())
    if (std::optional<FunctionVersion> latest = registry_.latest(name)) track(*latest);
  housekeeper_ = housekeeping();
}

Supervisor::~Supervisor() {
  housekeeper_ = nullptr;
  tasks_ = nullptr;
  zygotes_->stopWatching();
  queued_.clear();
  sandboxes_.clear();  // the leases go; the zygotes kill what remains
  zygotes_.reset();
}

// --- The front door ----------------------------------------------------------

kj::Promise<InvokeResult> Supervisor::invoke(const std::string& function, std::string payload,
                                             uint64_t versionNumber) {
  // Answers that need no sandbox: counted and logged like the others.
  auto answer = [this, &function](Status status, std::string message) {
    InvokeResult result = statusOnly(status, std::move(message));
    countInvocation(function, statusName(status));
    logResult(function, result);
    return result;
  };
  if (draining_) return answer(Status::kShuttingDown, "thatchd is shutting down");
  std::optional<FunctionVersion> version =
      versionNumber ? registry_.get(function, versionNumber) : registry_.latest(function);
  if (!version && versionNumber && registry_.latest(function))
    return answer(Status::kNotFound,
                  base::quoted(function, 64) + " has no version " + std::to_string(versionNumber));
  if (!version) return answer(Status::kNotFound, "no function named " + base::quoted(function, 64));
  if (payload.size() > options_.config.limits.payloadBytes)
    return answer(
        Status::kBadRequest,
        "the payload exceeds " + std::to_string(options_.config.limits.payloadBytes) + " bytes");
  kj::Own<Invocation> invocation =
      kj::refcounted<Invocation>(++nextId_, std::move(*version), std::move(payload), clock_.now());
  Invocation& inv = *invocation;
  auto ticket = kj::heap<Ticket>(*this, inv);

  const PoolConfig& pool = options_.config.pool;
  unsigned concurrency =
      inv.version.config.concurrency ? inv.version.config.concurrency : pool.concurrency;
  admission_.setLimits(function, {concurrency, pool.queueLength, pool.queueTimeout});
  for (uint64_t id : admission_.admitWaiting(function)) admit(id);  // a raised limit
  inv.holdsCore = callsAreShort(function);
  switch (admission_.arrive(function, inv.id, inv.holdsCore)) {
    case Admission::Decision::kRun:
      moveInvocation(inv, Invocation::State::kRunning);
      // Eager: an invocation makes progress whether or not its caller is
      // waiting on it right now (kj promises are lazy otherwise).
      return admitted(inv).attach(kj::mv(ticket)).eagerlyEvaluate(nullptr);
    case Admission::Decision::kOverloaded:
      moveInvocation(inv, Invocation::State::kDone);
      return answer(Status::kOverloaded,
                    "'" + function + "' is at its concurrency limit and its queue is full");
    case Admission::Decision::kQueued:
      break;
  }
  moveInvocation(inv, Invocation::State::kQueued);
  return queued(inv).attach(kj::mv(ticket)).eagerlyEvaluate(nullptr);
}

kj::Promise<InvokeResult> Supervisor::queued(Invocation& inv) {
  auto paf = kj::newPromiseAndFulfiller<void>();
  queued_.emplace(inv.id, Waiting{kj::mv(paf.fulfiller), kj::addRef(inv)});
  sendAhead(inv.version.name);
  return paf.promise.then(
      [this, &inv]() -> kj::Promise<InvokeResult> {
        // Fulfilled means admitted (as kRunning); queue timeouts reject (see
        // housekeeping()).
        return admitted(inv);
      },
      [this, &inv](kj::Exception&& e) -> kj::Promise<InvokeResult> {
        const std::string& function = inv.version.name;
        InvokeResult result;
        switch (e.getType()) {
          case kj::Exception::Type::OVERLOADED:
            result = statusOnly(Status::kOverloaded,
                                "'" + function + "' waited in its queue past the queue timeout");
            break;
          case kj::Exception::Type::FAILED:  // see takeBack()
            result = statusOnly(Status::kCrashed, e.getDescription().cStr());
            break;
          default:
            result = statusOnly(Status::kShuttingDown, "thatchd shut down before it could run");
        }
        admission_.cancel(function, inv.id);  // still queued if taken back from a sandbox
        moveInvocation(inv, Invocation::State::kDone);
        countInvocation(function, statusName(result.status));
        logResult(function, result);
        return result;
      });
}

kj::Promise<InvokeResult> Supervisor::admitted(Invocation& inv) {
  inv.admittedAt = clock_.now();
  return acquire(inv)
      .then(
          [this, &inv]() -> kj::Promise<InvokeResult> {
            inv.startedAt = clock_.now();
            return execute(inv);
          },
          [this, &inv](kj::Exception&& e) -> kj::Promise<InvokeResult> {
            InvokeResult result =
                statusOnly(e.getType() == kj::Exception::Type::OVERLOADED ? Status::kOverloaded
                                                                          : Status::kStartFailed,
                           e.getDescription().cStr());
            if (draining_ && inv.sandbox && inv.sandbox->killedFor == "shutdown")
              result = statusOnly(Status::kShuttingDown, "killed: thatchd's drain grace ran out");
            inv.startedAt = clock_.now();
            release(inv, result, /*answered=*/false);
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
        if (result.run > Duration::zero()) {
          stats_.run.record(result.run);
          if (currentVersion_.count(inv.version.name)) lastRun_[inv.version.name] = result.run;
        }
        return result;
      });
}

kj::Promise<void> Supervisor::acquire(Invocation& inv) {
  FunctionKey key{inv.version.name, inv.version.version};
  track(inv.version);
  if (inv.sentAheadTo) {  // handed over (handOver()): that sandbox runs it already
    stats_.warmStarts++;
    return kj::READY_NOW;
  }
  while (std::optional<uint64_t> id = pools_.take(key)) {
    auto it = sandboxes_.find(*id);
    // Thawed here, so that the thaw counts in the invocation's start.
    if (it != sandboxes_.end() && !thaw(*it->second)) destroy(*it->second, "thaw_failed");
    if (it == sandboxes_.end() || it->second->state() != State::kIdle) {
      pools_.remove(*id);
      continue;
    }
    it->second->moveTo(State::kClaimed);
    inv.sandbox = kj::addRef(*it->second);
    stats_.warmStarts++;
    return kj::READY_NOW;
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
  if (inv.holdsCore) {  // a cold start is the zygote's work, not a core's
    inv.holdsCore = false;
    if (std::optional<uint64_t> next = admission_.releaseCore()) admit(*next);
  }
  return startSandbox(inv.version, inv.sandbox).then([&inv]() {
    inv.sandbox->moveTo(State::kClaimed);
  });
}

// Those not being killed: a killed sandbox stays in the table until its
// exit event, but no longer counts against the host's cap.
size_t Supervisor::countLiveSandboxes() const {
  size_t live = 0;
  for (const auto& [id, sandbox] : sandboxes_) live += sandbox->alive();
  return live;
}

kj::Promise<void> Supervisor::startSandbox(const FunctionVersion& version,
                                           kj::Own<LiveSandbox>& started) {
  return kj::evalNow([&]() -> kj::Promise<void> {
    const FunctionConfig& fn = version.config;
    if (!zygotes_->running(fn.runtime))
      return failure(kj::Exception::Type::FAILED, "runtime '" + fn.runtime + "' is not running");
    const LimitsConfig& defaults = options_.config.limits;
    uint64_t id = ++nextId_;
    kj::Own<LiveSandbox> box =
        kj::refcounted<LiveSandbox>(id, FunctionKey{version.name, version.version}, fn.runtime,
                                    std::make_unique<sandbox::IdLease>(ids_.acquire()),
                                    fn.memoryBytes ? fn.memoryBytes : defaults.memoryBytes);
    runtime::SandboxChannel::SandboxEnds ends;
    std::string pageError;
    box->channel =
        runtime::SandboxChannel::open(eventPort_, defaults.resultBytes + defaults.logBytes,
                                      busyPoll_.sandboxesPoll(), ends, pageError);
    if (!pageError.empty())  // only the shortcut is lost: answers take the channel
      log_.write("shared_answer_unavailable", {{"sandbox", id}, {"error", pageError}});
    try {
      zygotes_->requestSpawn(fn.runtime, id,
                             spawnParams({version, id, box->lease(), box->memoryBytes, vethTag_},
                                         defaults, options_.config.lambda),
                             std::move(ends));
    } catch (const std::exception& e) {
      return failure(kj::Exception::Type::FAILED,
                     std::string("cannot reach the zygote: ") + e.what());
    }
    sandboxes_[id] = kj::addRef(*box);
    started = kj::addRef(*box);
    LiveSandbox& sandbox = *box;
    return sandbox.whenSpawned()
        .then([this, &sandbox]() {
          return sandbox.channel->ready().exclusiveJoin(
              timer_.afterDelay(toKj(kReadyTimeout))
                  .then([]() -> runtime::SandboxChannel::Readiness {
                    kj::throwFatalException(failure(kj::Exception::Type::FAILED,
                                                    "the sandbox did not become ready in 30 s"));
                  }));
        })
        .then([&sandbox](runtime::SandboxChannel::Readiness readiness) {
          if (const runtime::LoadError* error = std::get_if<runtime::LoadError>(&readiness))
            kj::throwFatalException(
                failure(kj::Exception::Type::FAILED, runtime::describe(*error)));
          if (sandbox.state() != State::kLoading)
            kj::throwFatalException(
                failure(kj::Exception::Type::FAILED, "the sandbox ended as it started"));
        })
        .attach(kj::mv(box));
  });
}

// --- Giving sandboxes back ---------------------------------------------------

void Supervisor::release(Invocation& inv, InvokeResult& result, bool answered) {
  if (inv.sandbox) {
    LiveSandbox& box = *inv.sandbox;
    result.sandboxId = box.id;
    bool reusable =
        answered && box.state() == State::kRunning &&
        (result.status == Status::kOk || result.status == Status::kHandlerError ||
         result.status == Status::kBadRequest || result.status == Status::kResultTooLarge) &&
        !draining_ && currentVersion_.count(box.function.name);
    // Answered in step, the sandbox has started the first one sent ahead
    // (dead or killed since, that is that invocation's end). Without an
    // answer in step it started none: it writes a whole answer before it
    // reads on, and one that ended past its deadline says `overran` and
    // stops.
    bool sentAhead = !box.ahead.empty();
    bool abandoned = false;
    if (answered && sentAhead) {
      Invocation& next = *box.ahead.front();
      if (next.state == Invocation::State::kQueued && handOver(inv, next, reusable, result)) return;
      // It runs one whose caller went away (or, never seen, one that
      // cannot be handed over, which takeBack() answers): it goes.
      abandoned = true;
    }
    takeBack(box, /*mayHaveStarted=*/abandoned);
    if (reusable && !sentAhead) {
      keepIdle(box);
    } else {
      destroy(box, abandoned ? "cancelled" : statusName(result.status));
    }
    inv.sandbox = nullptr;
  }
  moveInvocation(inv, Invocation::State::kDone);
  finished(inv, statusName(result.status));
}

void Supervisor::cancel(Invocation& inv) {
  switch (inv.state) {
    case Invocation::State::kQueued:
      // A sandbox it was sent ahead to keeps it, cancelled: that sandbox
      // runs it all the same and serves nothing after it.
      admission_.cancel(inv.version.name, inv.id);
      queued_.erase(inv.id);
      moveInvocation(inv, Invocation::State::kCancelled);
      return;
    case Invocation::State::kRunning:
      if (inv.sandbox) {
        LiveSandbox& box = *inv.sandbox;
        // Some of its answer arrived: the sandbox may have gone on to what
        // was sent ahead.
        takeBack(box, box.answerBegun());
        destroy(box, "cancelled");
        inv.sandbox = nullptr;
      }
      moveInvocation(inv, Invocation::State::kCancelled);
      finished(inv, "cancelled");
      return;
    case Invocation::State::kArrived:
    case Invocation::State::kDone:
    case Invocation::State::kCancelled:
      return;
  }
}

// Running is what the keep-alive policy sees of a function's invocations:
// from admission to the end, whichever way it ends.
void Supervisor::moveInvocation(Invocation& inv, Invocation::State next) {
  FunctionKey key{inv.version.name, inv.version.version};
  if (inv.state == Invocation::State::kRunning) {
    running_--;
    pools_.invocationEnded(key);
  }
  if (next == Invocation::State::kRunning) {
    running_++;
    pools_.invocationStarted(key);
  }
  inv.state = next;
}

void Supervisor::finished(const Invocation& inv, const char* outcome) {
  countInvocation(inv.version.name, outcome);
  if (std::optional<uint64_t> next = admission_.finish(inv.version.name, inv.holdsCore))
    admit(*next);
}

void Supervisor::countInvocation(const std::string& function, std::string_view status) {
  std::string name(status);
  stats_.invocationsByStatus[name]++;
  if (registry_.contains(function))
    stats_.invocationsByFunction[function][name]++;
  else
    stats_.unknownFunctionInvocations++;
}

// Short calls (the judgment that sends calls ahead: the function's last
// one ran under pool.send_ahead_under_us) hold a core in admission.
bool Supervisor::callsAreShort(const std::string& function) const {
  auto it = lastRun_.find(function);
  return it != lastRun_.end() && it->second < options_.config.pool.sendAheadUnder;
}

// Admission let it run: it leaves the queue as kRunning.
void Supervisor::admit(uint64_t invocationId) {
  auto it = queued_.find(invocationId);
  if (it == queued_.end()) return;
  moveInvocation(*it->second.invocation, Invocation::State::kRunning);
  it->second.admit->fulfill();
  queued_.erase(it);
}

void Supervisor::destroy(uint64_t sandboxId, const char* reason) {
  auto it = sandboxes_.find(sandboxId);
  if (it != sandboxes_.end()) destroy(*it->second, reason);
}

void Supervisor::destroy(LiveSandbox& box, const char* reason) {
  pools_.remove(box.id);
  if (!box.alive()) return;  // asked already, or gone
  // A frozen v1 task takes no SIGKILL: the zygote's kill would wait on it
  // (it thaws too, but the sandbox is thatchd's to thaw).
  thaw(box);
  // One still starting is killed once the zygote says it spawned
  // (spawnReplied()).
  bool spawned = box.state() != State::kStarting;
  box.moveTo(State::kKilled);
  box.killedFor = reason;
  stats_.killsByReason[reason]++;
  log_.write("sandbox_killed", {{"sandbox", box.id},
                                {"function", box.function.name},
                                {"version", box.function.version},
                                {"reason", reason}});
  if (!spawned) {
    // A request still waiting for the zygote's socket is simply taken back.
    if (zygotes_->withdrawSpawn(box.id)) {
      kj::Own<LiveSandbox> withdrawn = kj::addRef(box);
      sandboxes_.erase(box.id);
      withdrawn->gone(std::string("not started: ") + reason);
    }
    return;
  }
  askZygoteToKill(box);
  // It leaves the table when its exit event arrives (then its cgroup is gone).
}

void Supervisor::askZygoteToKill(const LiveSandbox& box) {
  try {
    zygotes_->kill(box.id);
  } catch (const std::exception& e) {
    fprintf(stderr, "thatchd: cannot ask the zygote to kill sandbox %llu: %s\n",
            static_cast<unsigned long long>(box.id), e.what());
  }
}

// --- What the zygotes report -------------------------------------------------

void Supervisor::spawnReplied(const runtime::SpawnReply& reply) {
  auto it = sandboxes_.find(reply.id);
  if (it == sandboxes_.end()) return;
  kj::Own<LiveSandbox> box = kj::addRef(*it->second);
  if (reply.failed) {
    sandboxes_.erase(it);
    box->spawnReplied(reply);
    box->gone("its spawn failed");
    return;
  }
  if (box->state() == State::kKilled) {  // given up while it started
    askZygoteToKill(*box);
  } else if (box->state() == State::kStarting) {
    box->moveTo(State::kLoading);
    findCgroup(*box, reply.pid);
  }
  box->spawnReplied(reply);
}

void Supervisor::sandboxExited(const runtime::ExitEvent& exit) {
  auto it = sandboxes_.find(exit.id);
  if (it == sandboxes_.end()) return;
  kj::Own<LiveSandbox> box = kj::mv(it->second);
  sandboxes_.erase(it);
  pools_.remove(exit.id);
  box->exitedWith(exit);
}

void Supervisor::zygoteDied(const std::vector<uint64_t>& sandboxes, const std::string& why) {
  std::vector<kj::Own<LiveSandbox>> gone;
  for (uint64_t id : sandboxes) {
    auto it = sandboxes_.find(id);
    if (it == sandboxes_.end()) continue;
    gone.push_back(kj::mv(it->second));
    sandboxes_.erase(it);
  }
  for (kj::Own<LiveSandbox>& box : gone) {
    pools_.remove(box->id);
    if (box->state() == State::kStarting)
      box->gone("the zygote died (" + why + ")");
    else
      box->exitedWith(runtime::ExitEvent{box->id, runtime::ExitKind::kKilled, 0, {}});
  }
}

// --- Prewarming --------------------------------------------------------------

// Keeps each function version's pool at its minimum of warm sandboxes
// (pool.min_warm), within the host caps, and starts the ones the keep-alive
// policy wants warm by now (the histogram's pre-warm window).
void Supervisor::prewarm() {
  if (draining_) return;
  for (const FunctionKey& key : pools_.takePrewarmsDue()) {
    std::optional<FunctionVersion> version = registry_.get(key.name, key.version);
    if (version && prewarming_[key] == 0 &&
        countLiveSandboxes() < options_.config.host.maxSandboxes)
      tasks_->add(startWarm(*version).ignoreResult());
  }
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
    return failure(kj::Exception::Type::FAILED, "no function named " + base::quoted(function, 64));
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
  auto started = kj::heap<kj::Own<LiveSandbox>>();
  kj::Own<LiveSandbox>& box = *started;
  return startSandbox(version, box)
      .then(
          [this, key, &box]() {
            prewarming_[key]--;
            stats_.prewarmed++;
            return keepIdle(*box, WarmPools::From::kPrewarm);
          },
          [this, key, &box](kj::Exception&& e) {
            prewarming_[key]--;
            fprintf(stderr, "thatchd: cannot prewarm %s v%llu: %s\n", key.name.c_str(),
                    static_cast<unsigned long long>(key.version), e.getDescription().cStr());
            if (box) destroy(*box, "start_failed");
            return false;
          })
      .attach(kj::mv(started))
      .eagerlyEvaluate(nullptr);
}

bool Supervisor::remove(const std::string& function) {
  for (const FunctionVersion& version : registry_.versions(function))
    for (uint64_t id : pools_.dropFunction({version.name, version.version})) destroy(id, "removed");
  currentVersion_.erase(function);
  lastRun_.erase(function);
  stats_.invocationsByFunction.erase(function);
  return registry_.remove(function);
}

FunctionVersion Supervisor::commit(const std::string& name, const FunctionConfig& config,
                                   StagedCode& staged) {
  // Warm sandboxes (idle or frozen) hold no version: those of older ones
  // retire below.
  std::set<uint64_t> inUse;
  for (auto it = invocationsOf_.lower_bound({name, 0});
       it != invocationsOf_.end() && it->first.name == name; ++it)
    inUse.insert(it->first.version);
  for (const auto& [id, box] : sandboxes_) {
    bool warm = box->state() == State::kIdle || box->state() == State::kFrozen;
    if (box->function.name == name && box->alive() && !warm) inUse.insert(box->function.version);
  }
  FunctionVersion version = registry_.commit(name, config, staged, inUse);
  track(version);
  std::vector<uint64_t> gone;  // warm sandboxes of versions the commit removed
  for (const auto& [id, box] : sandboxes_)
    if (box->function.name == name && box->alive() && !registry_.get(name, box->function.version))
      gone.push_back(id);
  for (uint64_t id : gone) destroy(id, "old_version");
  return version;
}

// A function's pool limits (from the config and the function's own), and
// the retirement of the warm sandboxes of its older versions.
void Supervisor::track(const FunctionVersion& version) {
  FunctionKey key{version.name, version.version};
  pools_.setLimits(key, poolLimits());
  uint64_t& current = currentVersion_[version.name];
  if (current && current < version.version)
    for (uint64_t id : pools_.dropFunction({version.name, current})) destroy(id, "old_version");
  current = std::max(current, version.version);
}

PoolLimits Supervisor::poolLimits() const {
  const PoolConfig& pool = options_.config.pool;
  return {pool.minWarm, pool.maxWarm, pool.idleTtl};
}

// --- Time, draining, statistics ----------------------------------------------

kj::Promise<void> Supervisor::housekeeping() {
  return timer_.afterDelay(toKj(kHousekeepingTick)).then([this]() {
    for (uint64_t id : admission_.expireQueued()) {
      auto it = queued_.find(id);
      if (it == queued_.end()) continue;
      it->second.admit->reject(KJ_EXCEPTION(OVERLOADED, "queue timeout"));
      queued_.erase(it);
    }
    for (uint64_t id : pools_.expire()) destroy(id, "expired");
    freezeLongIdle();
    prewarm();
    return housekeeping();
  });
}

kj::Promise<void> Supervisor::drain(Duration grace) {
  draining_ = true;
  zygotes_->stopRestarting();
  return finishInFlight(clock_.now() + grace);
}

// In-flight invocations (running or queued) finish until `deadline`; then
// queued ones are answered shutting_down and running ones are killed.
kj::Promise<void> Supervisor::finishInFlight(TimePoint deadline) {
  bool busy = !queued_.empty() || running_ > 0;
  for (auto& [id, sandbox] : sandboxes_) busy = busy || sandbox->busy();
  if (busy) {
    if (clock_.now() >= deadline) {
      std::map<uint64_t, Waiting> waiting = std::exchange(queued_, {});
      for (auto& [id, entry] : waiting)
        entry.admit->reject(KJ_EXCEPTION(DISCONNECTED, "thatchd is shutting down"));
      std::vector<kj::Own<LiveSandbox>> busySandboxes;
      for (auto& [id, sandbox] : sandboxes_)
        if (sandbox->busy()) busySandboxes.push_back(kj::addRef(*sandbox));
      for (kj::Own<LiveSandbox>& box : busySandboxes) destroy(*box, "shutdown");
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

pid_t Supervisor::zygotePid(const std::string& runtime, unsigned index) const {
  return zygotes_->pid(runtime, index);
}

Stats Supervisor::stats() const {
  Stats stats = stats_;
  stats.liveSandboxes = sandboxes_.size();
  stats.idleSandboxes = pools_.idleCount();
  stats.idleMemoryBytes = pools_.idleMemoryBytes();
  for (const auto& [id, sandbox] : sandboxes_) {
    stats.frozenSandboxes += sandbox->state() == State::kFrozen;
    stats.startingSandboxes +=
        sandbox->state() == State::kStarting || sandbox->state() == State::kLoading;
  }
  stats.keepAlive = pools_.policyName();
  stats.pools = pools_.counters();
  stats.admission = admission_.counters();
  stats.zygoteRestarts = zygotes_->restarts();
  stats.queuedInvocations = queued_.size();
  return stats;
}

}  // namespace supervisor
