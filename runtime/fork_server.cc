#include "runtime/fork_server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "base/sys_error.h"
#include "runtime/sandbox_body.h"
#include "runtime/spec_codec.h"
#include "sandbox/mounts.h"

namespace runtime {
namespace {

using Kind = sandbox::Outcome::Kind;
using WireKind = wire::ExitInfo::Kind;

WireKind wireKind(Kind kind, bool killRequested) {
  switch (kind) {
    case Kind::kExited:
      return WireKind::EXITED;
    case Kind::kSignaled:
      return killRequested ? WireKind::KILLED : WireKind::SIGNALED;
    case Kind::kTimeout:
      return WireKind::TIMEOUT;
    case Kind::kOutOfMemory:
      return WireKind::OUT_OF_MEMORY;
    case Kind::kPidsLimit:
      return WireKind::PIDS_LIMIT;
    case Kind::kInterrupted:
      return WireKind::KILLED;
  }
  return WireKind::KILLED;
}

constexpr const char* kTaskDir = "/var/task";

// A spec as the stem cells for it were forked, in capnp's canonical form
// (comparable bytewise): without what a claim sets, namely the host ids, the
// limits, the cgroup and veth names, and the code bound at /var/task (whose
// host path goes to *codeDir, empty if there is none). Works on the wire
// form: no decoding or copying of the spec on the way to a claim.
kj::Array<capnp::word> stemKeyOf(wire::SandboxSpec::Reader spec, std::string* codeDir) {
  capnp::MallocMessageBuilder message;
  message.setRoot(spec);
  auto key = message.getRoot<wire::SandboxSpec>();
  key.setHostUid(0);
  key.setHostGid(0);
  key.setMemoryBytes(0);
  key.setPids(0);
  key.setCpus(0);
  key.setCgroupName("");
  key.setHostVethName("");
  codeDir->clear();
  for (auto mount : key.getMounts()) {
    if (mount.getKind() != static_cast<uint8_t>(sandbox::MountEntry::Kind::kBind) ||
        mount.getTarget() != kj::StringPtr(kTaskDir))
      continue;
    *codeDir = mount.getSource().cStr();
    mount.setSource("");
    mount.setReadOnly(true);
    mount.setNoexec(false);
    mount.setMode(0);
  }
  return capnp::canonicalize(key.asReader());
}

bool sameKey(const kj::Array<capnp::word>& a, const kj::Array<capnp::word>& b) {
  return a.size() == b.size() &&
         std::memcmp(a.begin(), b.begin(), a.size() * sizeof(capnp::word)) == 0;
}

// epoll tags: what a ready fd belongs to, in the top byte; an id below.
constexpr uint64_t kTagControl = 0;
constexpr uint64_t kTagChild = 1ull << 56;  // its pidfd or a cgroup event fd
constexpr uint64_t kTagStem = 2ull << 56;
constexpr uint64_t kTagMask = 0xffull << 56;

// At most this many requests are read between two looks at the sandboxes.
constexpr int kRequestsPerTurn = 16;
// v1's pids counter does not notify: this many sandboxes' counters are
// re-read per tick, in turn (a bounded cost with thousands of sandboxes).
constexpr size_t kLimitChecksPerTick = 64;
constexpr int kTickMs = 50;

}  // namespace

ForkServer::ForkServer(const Interpreter& interpreter, int controlFd,
                       sandbox::CgroupManager& cgroups,
                       std::shared_ptr<const sandbox::SeccompProgram> seccomp)
    : interpreter_(interpreter),
      controlFd_(controlFd),
      cgroups_(cgroups),
      seccomp_(std::move(seccomp)) {
  base::check(fcntl(controlFd_, F_SETFL, fcntl(controlFd_, F_GETFL) | O_NONBLOCK),
              "fcntl O_NONBLOCK");
  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) base::throwSysError("epoll_create1");
  watch(controlFd_, kTagControl);
}

// Every sandbox is signalled first and then reaped: thousands go in about
// the time of the slowest, not of all of them in turn.
ForkServer::~ForkServer() {
  for (auto& [id, child] : children_) child.sandbox->signalKill();
  for (Stem& stem : stems_) stem.sandbox->signalKill();
  children_.clear();
  stems_.clear();
}

void ForkServer::watch(int fd, uint64_t tag, uint32_t events, int op) {
  epoll_event event{};
  event.events = events;
  event.data.u64 = tag;
  base::check(epoll_ctl(epoll_.get(), op, fd, &event), "epoll_ctl");
}

// Before the fd closes: a forked child may still hold the file open for a
// moment, and epoll forgets an fd only when the file is closed.
void ForkServer::unwatch(int fd) {
  epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

void ForkServer::watchChild(uint64_t id, const sandbox::Sandbox& box) {
  watch(box.pidfd(), kTagChild | id);
  for (int fd : box.eventFds()) watch(fd, kTagChild | id, EPOLLIN | EPOLLPRI);
}

void ForkServer::unwatchChild(const sandbox::Sandbox& box) {
  unwatch(box.pidfd());
  for (int fd : box.eventFds()) unwatch(fd);
}

// Every event says how many stem cells are warm: a claim, a stem that
// turned warm and one that died all show in the next event.
void ForkServer::send(capnp::MallocMessageBuilder& message) {
  auto warm = std::count_if(stems_.begin(), stems_.end(), [](const Stem& s) { return s.warm; });
  message.getRoot<wire::ZygoteEvent>().setWarmStems(static_cast<uint32_t>(warm));
  bool wasEmpty = outgoing_.empty();
  outgoing_.push(message);
  if (wasEmpty && !outgoing_.flush(controlFd_))
    watch(controlFd_, kTagControl, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);  // for room
}

void ForkServer::spawn(wire::SpawnRequest::Reader request, std::vector<base::Fd> fds) {
  uint64_t receivedNs = sandbox::monotonicNs();
  base::Fd channel = fds.size() > 0 ? std::move(fds[0]) : base::Fd();
  base::Fd sharedAnswer = fds.size() > 1 ? std::move(fds[1]) : base::Fd();
  uint64_t id = request.getId();
  capnp::MallocMessageBuilder reply;
  auto event = reply.initRoot<wire::ZygoteEvent>();
  event.setId(id);
  auto fail = [&](const std::string& step, int error, const std::string& message) {
    auto failure = event.initSpawnFailed();
    failure.setStep(step);
    failure.setErrno(error);
    failure.setMessage(message);
    send(reply);
  };
  if (!channel) return fail("request", EINVAL, "no invocation channel was passed");
  if (children_.count(id)) return fail("request", EEXIST, "sandbox id already in use");
  if (stemConfig_.policy.maximum() > 0) {
    std::string codeDir;
    bool matches = false;
    try {
      matches = sameKey(stemKeyOf(request.getSpec(), &codeDir), stemConfig_.key);
    } catch (const kj::Exception&) {
      // malformed: decodeSpec() below says how
    }
    auto wanted = request.getSpec();
    // Demand whether or not a stem is warm now: it sizes the pool.
    if (matches && !codeDir.empty()) stemConfig_.policy.requested(receivedNs);
    if (matches && !codeDir.empty() &&
        claimStem(request, {wanted.getMemoryBytes(), wanted.getPids(), wanted.getCpus()}, codeDir,
                  channel, sharedAnswer, receivedNs, reply))
      return;
  }
  SpawnNames names;
  sandbox::Spec spec;
  try {
    spec = decodeSpec(request.getSpec(), &names);
  } catch (const std::exception& e) {
    return fail("request", EINVAL, e.what());
  }
  spec.seccomp = seccomp_;
  // Forking skips CPython's at-fork hooks, which is only right while this
  // process has a single thread (see afterFork()).
  if (int threads = countThreads(); threads != 1)
    return fail("request", EDEADLK,
                "the zygote has " + std::to_string(threads) + " threads and cannot fork safely");
  SandboxParams params = decodeSandboxParams(request);
  int channelFd = channel.get();
  // Mapped here and inherited across the fork: the page's fd never enters
  // the sandbox. Without it the sandbox answers through its channel.
  std::unique_ptr<SharedAnswer> page = mapSharedAnswer(sharedAnswer);
  SharedAnswer* pageInChild = page.get();
  try {
    auto box = std::make_unique<sandbox::Sandbox>(
        spec, sandbox::SandboxOptions{names.cgroupName, names.hostVethName, channelFd}, cgroups_,
        [&](const sandbox::ChildChannel& child) {
          return serveSandbox(interpreter_, params, child, channelFd, pageInChild, receivedNs);
        });
    event.setSpawned(box->pid());
    watchChild(id, *box);
    children_[id].sandbox = std::move(box);
    if (stopAfterFork_) raise(SIGSTOP);
  } catch (const sandbox::ConfinementError& e) {
    return fail(e.step(), e.error(), e.what());
  } catch (const base::SysError& e) {
    return fail("setup", e.error(), e.what());
  } catch (const std::exception& e) {
    return fail("setup", 0, e.what());
  }
  send(reply);
}

sandbox::Spec stemTemplateOf(const sandbox::Spec& spec, std::string* codeDir) {
  sandbox::Spec stem = spec;
  stem.ids.hostUid = stem.ids.hostGid = 0;
  stem.seccomp = nullptr;
  codeDir->clear();
  for (sandbox::MountEntry& entry : stem.mounts) {
    if (entry.target != kTaskDir || entry.kind != sandbox::MountEntry::Kind::kBind) continue;
    *codeDir = entry.source;
    entry = sandbox::MountEntry{};
    entry.kind = sandbox::MountEntry::Kind::kDir;
    entry.target = kTaskDir;
    entry.mode = 0755;
  }
  return stem;
}

// Hands the request to a warm stem cell: its limits, its code, its channel.
// False (and the stem discarded) if any of that fails: the caller forks.
bool ForkServer::claimStem(wire::SpawnRequest::Reader request, const sandbox::CgroupLimits& limits,
                           const std::string& codeDir, base::Fd& channel, base::Fd& sharedAnswer,
                           uint64_t receivedNs, capnp::MallocMessageBuilder& reply) {
  auto warm = std::find_if(stems_.begin(), stems_.end(), [](const Stem& s) { return s.warm; });
  if (warm == stems_.end()) return false;
  Stem stem = std::move(*warm);
  stems_.erase(warm);
  unwatch(stem.control.get());
  try {
    stem.sandbox->setLimits(limits);
    sandbox::bindIntoSandbox(stem.sandbox->pid(), codeDir, kTaskDir);
    // Back from kStemNice (lowering a nice value takes the zygote's privilege).
    base::check(setpriority(PRIO_PROCESS, stem.sandbox->pid(), 0), "setpriority");
    capnp::MallocMessageBuilder claim;
    claim.setRoot(request);
    claim.getRoot<wire::SpawnRequest>().setReceivedNs(receivedNs);
    sendPacket(stem.control.get(), claim, {channel.get(), sharedAnswer.get()});
  } catch (const std::exception& e) {
    fprintf(stderr, "thatch-zygote: cannot claim stem cell %d: %s\n", stem.sandbox->pid(),
            e.what());
    return false;  // `stem` dies with this scope
  }
  reply.getRoot<wire::ZygoteEvent>().setSpawned(stem.sandbox->pid());
  watchChild(request.getId(), *stem.sandbox);
  Child& child = children_[request.getId()];
  child.sandbox = std::move(stem.sandbox);
  child.lease = std::move(stem.lease);
  send(reply);
  return true;
}

void ForkServer::configureStems(wire::StemCells::Reader config) {
  for (Stem& stem : stems_) unwatch(stem.control.get());
  stems_.clear();
  stemConfig_ = {};
  if (config.getCount() == 0) return;
  std::string codeDir;
  stemConfig_.spec = stemTemplateOf(decodeSpec(config.getTemplate(), nullptr), &codeDir);
  stemConfig_.key = stemKeyOf(config.getTemplate(), &codeDir);
  stemConfig_.spec.seccomp = seccomp_;
  stemConfig_.ids = std::make_unique<sandbox::IdAllocator>(
      config.getIdSlotDir(), sandbox::IdRange{config.getIdFirst(), config.getIdCount()});
  stemConfig_.policy = StemPolicy(config.getCount());
}

namespace {

// Stem cells beyond the first are forked only while the host has this
// share of its memory available: they are a cache, and must not be what
// pushes the host into reclaim.
constexpr double kStemMemoryReserve = 0.10;

bool memoryToSpare() {
  FILE* meminfo = fopen("/proc/meminfo", "re");
  if (!meminfo) return true;  // nothing to go by: the maximum bounds them
  unsigned long long total = 0, available = 0, kb = 0;
  char line[128];
  while (fgets(line, sizeof line, meminfo)) {
    if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) total = kb;
    if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) available = kb;
  }
  fclose(meminfo);
  return total == 0 || available >= kStemMemoryReserve * total;
}

// Stem cells forked per turn of the loop at most (each costs the zygote a
// clone and its set-up): requests are read between two turns.
constexpr unsigned kStemForksPerTurn = 2;

}  // namespace

bool ForkServer::resizeStems(bool idle) {
  unsigned target = stemConfig_.policy.target(sandbox::monotonicNs());
  if (stems_.size() > target) {
    // One at a time, the newest warm one: the pool shrinks slowly anyway.
    auto warm = std::find_if(stems_.rbegin(), stems_.rend(), [](const Stem& s) { return s.warm; });
    if (warm != stems_.rend()) {
      unwatch(warm->control.get());
      stems_.erase(std::next(warm).base());  // kills it and removes its cgroup
    }
    return false;
  }
  bool urgent = stems_.size() * 2 < target;
  if (!idle && !urgent) return false;
  for (unsigned forked = 0; stems_.size() < target; ++forked) {
    if (forked == kStemForksPerTurn) return stems_.size() * 2 < target;
    if (!stems_.empty() && !memoryToSpare()) return false;
    Stem stem;
    try {
      stem.lease = stemConfig_.ids->acquire();
      sandbox::Spec spec = stemConfig_.spec;
      spec.ids.hostUid = spec.ids.hostGid = stem.lease->hostId();
      int pair[2];
      base::check(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), "socketpair");
      stem.control.reset(pair[0]);
      base::Fd stemEnd(pair[1]);
      int stemFd = stemEnd.get();
      // The lease is exclusive: a cgroup of this name is a crashed zygote's.
      std::string name = "stem-" + std::to_string(stem.lease->hostId());
      cgroups_.remove(name);
      stem.sandbox =
          std::make_unique<sandbox::Sandbox>(spec, sandbox::SandboxOptions{name, "", stemFd},
                                             cgroups_, [&](const sandbox::ChildChannel& child) {
                                               return serveStemCell(interpreter_, child, stemFd);
                                             });
    } catch (const std::exception& e) {
      fprintf(stderr, "thatch-zygote: cannot fork a stem cell: %s\n", e.what());
      return false;  // requests fork fresh sandboxes meanwhile
    }
    stem.forkedNs = sandbox::monotonicNs();
    stem.serial = ++nextStemSerial_;
    watch(stem.control.get(), kTagStem | stem.serial);
    stems_.push_back(std::move(stem));
  }
  return false;
}

void ForkServer::reportExit(uint64_t id, bool killRequested, const sandbox::Outcome& outcome) {
  capnp::MallocMessageBuilder message;
  auto event = message.initRoot<wire::ZygoteEvent>();
  event.setId(id);
  auto exited = event.initExited();
  exited.setKind(wireKind(outcome.kind, killRequested));
  exited.setCode(outcome.code);
  exited.setElapsedNs(outcome.elapsed.count());
  send(message);
}

bool ForkServer::handlePacket(Packet& packet) {
  auto request = packet.reader->getRoot<wire::ZygoteRequest>();
  switch (request.which()) {
    case wire::ZygoteRequest::SPAWN:
      spawn(request.getSpawn(), std::move(packet.passedFds));
      return true;
    case wire::ZygoteRequest::KILL: {
      auto it = children_.find(request.getKill());
      if (it != children_.end()) {
        it->second.killRequested = true;
        it->second.sandbox->signalKill();  // its pidfd turns readable: childEnded()
      }
      return true;
    }
    case wire::ZygoteRequest::SHUTDOWN:
      return false;
    case wire::ZygoteRequest::STEM_CELLS:
      try {
        configureStems(request.getStemCells());
      } catch (const std::exception& e) {
        fprintf(stderr, "thatch-zygote: bad stem cell configuration: %s\n", e.what());
      }
      return true;
  }
  return true;
}

bool ForkServer::readRequests() {
  for (int i = 0; i < kRequestsPerTurn; ++i) {
    Packet packet;
    try {
      switch (receivePacketNow(controlFd_, kMaxControlPacket, &packet)) {
        case Received::kNothingYet:
          return true;
        case Received::kClosed:
          return false;  // the supervisor went away
        case Received::kPacket:
          if (!handlePacket(packet)) return false;
      }
    } catch (const FramingError& e) {
      fprintf(stderr, "thatch-zygote: bad control message: %s\n", e.what());
    } catch (const kj::Exception& e) {
      fprintf(stderr, "thatch-zygote: bad control message: %s\n", e.getDescription().cStr());
    }
  }
  return true;
}

// The sandbox's cgroup is gone (its destructor) before anyone hears that it
// ended.
void ForkServer::childEnded(uint64_t id) {
  auto it = children_.find(id);
  if (it == children_.end()) return;
  Child& child = it->second;
  unwatchChild(*child.sandbox);
  sandbox::Outcome outcome = child.sandbox->finish();
  bool killRequested = child.killRequested;
  children_.erase(it);
  reportExit(id, killRequested, outcome);
}

void ForkServer::checkChild(uint64_t id) {
  auto it = children_.find(id);
  if (it == children_.end()) return;
  std::optional<sandbox::Outcome::Kind> breach;
  try {
    breach = it->second.sandbox->breach();
  } catch (const std::exception& e) {
    fprintf(stderr, "thatch-zygote: cannot read the limits of sandbox %llu: %s\n",
            static_cast<unsigned long long>(id), e.what());
  }
  if (!breach) return;
  bool killRequested = it->second.killRequested;
  unwatchChild(*it->second.sandbox);
  children_.erase(it);  // kills it and removes its cgroup
  reportExit(id, killRequested, {*breach, 0, {}});
}

// A stem says 'w' once warm; a hang-up means it died (it is replaced).
void ForkServer::stemSpoke(uint64_t serial) {
  auto it = std::find_if(stems_.begin(), stems_.end(),
                         [serial](const Stem& stem) { return stem.serial == serial; });
  if (it == stems_.end()) return;
  char byte = 0;
  if (recv(it->control.get(), &byte, 1, MSG_DONTWAIT) == 1 && byte == 'w' && !it->warm) {
    it->warm = true;
    stemConfig_.policy.warmed(sandbox::monotonicNs() - it->forkedNs);
    // For whoever waits for claimable stems (a test, a supervisor sizing them).
    capnp::MallocMessageBuilder warm;
    warm.initRoot<wire::ZygoteEvent>().setReady();
    send(warm);
    return;
  }
  unwatch(it->control.get());
  stems_.erase(it);
}

void ForkServer::sweepLimits() {
  auto it = children_.lower_bound(sweepFrom_);
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < std::min(kLimitChecksPerTick, children_.size()); ++i) {
    if (it == children_.end()) it = children_.begin();
    ids.push_back(it->first);
    ++it;
  }
  sweepFrom_ = it == children_.end() ? 0 : it->first;
  for (uint64_t id : ids) checkChild(id);
}

int ForkServer::run() {
  capnp::MallocMessageBuilder hello;
  hello.initRoot<wire::ZygoteEvent>().setReady();
  send(hello);
  auto nextSweep = sandbox::monotonicNs();
  std::vector<epoll_event> events(256);
  bool idle = true;  // the last wait ended with nothing to do
  for (;;) {
    // Replacements as stems are claimed (see resizeStems); the stems warm
    // up at low priority, after the sandboxes serving requests.
    bool moreStems = resizeStems(idle);
    uint64_t now = sandbox::monotonicNs();
    int waitMs =
        now >= nextSweep || moreStems ? 0 : static_cast<int>((nextSweep - now) / 1'000'000) + 1;
    int ready = epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), waitMs);
    if (ready < 0 && errno != EINTR) base::throwSysError("epoll_wait");
    idle = ready == 0 && waitMs > 0;
    bool control = false;
    for (int i = 0; i < std::max(ready, 0); ++i) {
      uint64_t tag = events[i].data.u64;
      uint64_t id = tag & ~kTagMask;
      switch (tag & kTagMask) {
        case kTagControl:
          if (events[i].events & EPOLLOUT && outgoing_.flush(controlFd_))
            watch(controlFd_, kTagControl, EPOLLIN, EPOLL_CTL_MOD);  // all sent
          control = events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR);
          break;
        case kTagChild:
          // Its pidfd (it ended) or a cgroup event (a limit may be hit).
          if (auto it = children_.find(id); it != children_.end()) {
            pollfd pfd{it->second.sandbox->pidfd(), POLLIN, 0};
            if (poll(&pfd, 1, 0) == 1)
              childEnded(id);
            else
              checkChild(id);
          }
          break;
        case kTagStem:
          stemSpoke(id);
          break;
      }
    }
    if (control && !readRequests()) return 0;
    if (sandbox::monotonicNs() >= nextSweep) {
      sweepLimits();
      nextSweep = sandbox::monotonicNs() + kTickMs * 1'000'000ull;
    }
  }
}

}  // namespace runtime
