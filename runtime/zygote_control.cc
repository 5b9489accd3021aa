#include "runtime/zygote_control.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <mutex>

#include "base/sys_error.h"
#include "runtime/framing.h"
#include "runtime/runtime.capnp.h"
#include "sandbox/namespaces.h"

namespace runtime {

using base::check;
using base::Fd;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kZygoteControlFd = 3;

// The zygote runs from a sealed memfd copy of its binary, read once per
// process and path: a sandbox's /proc/1/exe and /proc/self/maps then say
// "/memfd:thatch-zygote (deleted)" rather than where the host installed
// thatch, and a binary replaced on disk (an upgrade) changes no zygote
// until the supervisor restarts. The copy's pages are shared by every
// zygote of this process.
int zygoteImage(const std::string& binary) {
  static std::mutex lock;
  static std::map<std::string, Fd> images;
  std::lock_guard<std::mutex> held(lock);
  if (auto found = images.find(binary); found != images.end()) return found->second.get();
  Fd file(open(binary.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) base::throwSysError("open " + binary);
  struct stat info;
  check(fstat(file.get(), &info), "fstat " + binary);
  Fd image(memfd_create("thatch-zygote", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!image) base::throwSysError("memfd_create");
  for (off_t copied = 0; copied < info.st_size;) {
    ssize_t n =
        sendfile(image.get(), file.get(), nullptr, static_cast<size_t>(info.st_size - copied));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) base::throwSysError("copy " + binary + " into a memfd", n == 0 ? EIO : errno);
    copied += n;
  }
  check(fchmod(image.get(), 0555), "fchmod the zygote's image");
  // F_SEAL_FUTURE_WRITE rather than F_SEAL_WRITE: the latter fails with
  // EBUSY while a page the copy just wrote still sits in another CPU's LRU
  // batch (seen on a busy host). No writable mapping of the copy exists,
  // so refusing every later write and writable mapping seals it as well.
  check(fcntl(image.get(), F_ADD_SEALS,
              F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL),
        "seal the zygote's image");
  return images.emplace(binary, std::move(image)).first->second.get();
}

[[noreturn]] void execZygote(const ZygoteOptions& options, int image, int controlFd) {
  // Nothing the zygote (or a sandbox before its own pivot) mounts may
  // propagate back to the host.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) _exit(126);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (controlFd == kZygoteControlFd) {
    fcntl(controlFd, F_SETFD, 0);
  } else if (dup2(controlFd, kZygoteControlFd) < 0) {
    _exit(126);
  }
  // Its name only: a sandbox's /proc/1/cmdline is the zygote's (which
  // wipes its arguments once it has read them).
  std::vector<std::string> args{"thatch-zygote", "--runtime", options.runtime, "--control-fd",
                                std::to_string(kZygoteControlFd)};
  args.insert(args.end(), options.extraArgs.begin(), options.extraArgs.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // Its shared libraries (libstdc++, libc) bound once here rather than
  // lazily in every sandbox, where each first call of a function through
  // the PLT costs a symbol lookup and dirties a GOT page (measured: ~2% of
  // a sandbox's CPU under churn). Sandboxes get the function's environment.
  std::vector<char*> envp;
  for (char** var = environ; *var; ++var)
    if (strncmp(*var, "LD_BIND_NOW=", 12) != 0) envp.push_back(*var);
  std::string bindNow = "LD_BIND_NOW=1";
  envp.push_back(bindNow.data());
  envp.push_back(nullptr);
  syscall(SYS_execveat, image, "", argv.data(), envp.data(), AT_EMPTY_PATH);
  _exit(127);
}

ExitKind exitKindFromWire(wire::ExitInfo::Kind kind) {
  using Wire = wire::ExitInfo::Kind;
  switch (kind) {
    case Wire::EXITED:
      return ExitKind::kExited;
    case Wire::SIGNALED:
      return ExitKind::kSignaled;
    case Wire::TIMEOUT:
      return ExitKind::kTimeout;
    case Wire::OUT_OF_MEMORY:
      return ExitKind::kOutOfMemory;
    case Wire::PIDS_LIMIT:
      return ExitKind::kPidsLimit;
    case Wire::KILLED:
      return ExitKind::kKilled;
  }
  return ExitKind::kKilled;  // a number no zygote of ours writes
}

int remainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return std::max<int64_t>(0, left.count());
}

}  // namespace

Zygote::Zygote(const ZygoteOptions& options) {
  int pair[2];
  check(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), "socketpair");
  control_.reset(pair[0]);
  Fd zygoteEnd(pair[1]);
  int image = zygoteImage(options.binary);
  sandbox::ClonedChild child =
      sandbox::cloneWithNamespaces(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS);
  if (child.pid == 0) execZygote(options, image, zygoteEnd.get());
  pid_ = child.pid;
  pidfd_ = std::move(child.pidfd);
  zygoteEnd.reset();
  check(fcntl(control_.get(), F_SETFL, fcntl(control_.get(), F_GETFL) | O_NONBLOCK),
        "fcntl O_NONBLOCK");
  if (!options.waitUntilReady) return;
  // The first event is `ready`, once the interpreter has imported everything.
  auto deadline = Clock::now() + options.startTimeout;
  for (;;) {
    pollfd fds[2] = {{control_.get(), POLLIN, 0}, {pidfd_.get(), POLLIN, 0}};
    int ready = poll(fds, 2, remainingMs(deadline));
    if (ready == 0) throw std::runtime_error("thatch-zygote did not become ready in time");
    if (fds[0].revents & POLLIN) {
      Packet packet;
      if (receivePacketNow(control_.get(), kMaxPacket, &packet) == Received::kPacket &&
          packet.reader->getRoot<wire::ZygoteEvent>().isReady()) {
        ready_ = true;
        return;
      }
    }
    if (fds[1].revents & POLLIN || fds[0].revents & POLLHUP) {
      siginfo_t info{};
      waitid(static_cast<idtype_t>(P_PIDFD), pidfd_.get(), &info, WEXITED);
      pid_ = -1;
      throw std::runtime_error("thatch-zygote (" + options.runtime + ") exited during start-up " +
                               "with status " + std::to_string(info.si_status) +
                               " (its stderr says why)");
    }
  }
}

Zygote::~Zygote() {
  if (pid_ < 0) return;
  if (!ready_) {  // still starting: it reads no request yet
    syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
    siginfo_t info{};
    while (waitid(static_cast<idtype_t>(P_PIDFD), pidfd_.get(), &info, WEXITED) < 0 &&
           errno == EINTR) {
    }
    return;
  }
  // Requests not sent yet are moot; the shutdown goes first. The zygote may
  // be writing events meanwhile: they are read and dropped, so that it is
  // never stuck on a full socket while this waits for it to end.
  outgoing_ = PacketQueue();
  capnp::MallocMessageBuilder message;
  message.initRoot<wire::ZygoteRequest>().setShutdown();
  outgoing_.push(message);
  auto deadline = Clock::now() + std::chrono::seconds(10);
  bool exited = false;
  while (!exited && Clock::now() < deadline) {
    pollfd fds[2] = {{pidfd_.get(), POLLIN, 0}, {control_.get(), pollEvents(), 0}};
    if (poll(fds, 2, remainingMs(deadline)) < 0 && errno != EINTR) break;
    exited = fds[0].revents & POLLIN;
    try {
      if (fds[1].revents & POLLOUT) flush();
      Packet dropped;
      if (fds[1].revents & POLLIN) receivePacketNow(control_.get(), kMaxPacket, &dropped);
    } catch (const std::exception&) {
      // Its end is closed: it is on its way out, and reaped below.
    }
    if (fds[1].revents & (POLLHUP | POLLERR) && !(fds[1].revents & POLLIN)) {
      pollfd pfd{pidfd_.get(), POLLIN, 0};
      exited = poll(&pfd, 1, remainingMs(deadline)) == 1;
      break;
    }
  }
  if (!exited) syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  siginfo_t info{};
  while (waitid(static_cast<idtype_t>(P_PIDFD), pidfd_.get(), &info, WEXITED) < 0 &&
         errno == EINTR) {
  }
}

bool Zygote::alive() {
  pollfd pfd{pidfd_.get(), POLLIN, 0};
  return pid_ > 0 && poll(&pfd, 1, 0) == 0;
}

bool Zygote::readEvent(int timeoutMs) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  Packet packet;
  for (;;) {
    flush();
    switch (receivePacketNow(control_.get(), kMaxPacket, &packet)) {
      case Received::kPacket:
        break;
      case Received::kClosed:
        throw std::runtime_error("thatch-zygote closed its control channel");
      case Received::kNothingYet: {
        if (timeoutMs == 0) return false;
        pollfd pfd{control_.get(), pollEvents(), 0};
        int ready = poll(&pfd, 1, remainingMs(deadline));
        if (ready < 0 && errno != EINTR) base::throwSysError("poll");
        if (ready == 0) return false;
        continue;
      }
    }
    break;
  }
  auto event = packet.reader->getRoot<wire::ZygoteEvent>();
  warmStems_ = event.getWarmStems();
  switch (event.which()) {
    case wire::ZygoteEvent::EXITED: {
      auto exited = event.getExited();
      exits_.push_back({event.getId(), exitKindFromWire(exited.getKind()), exited.getCode(),
                        std::chrono::nanoseconds(exited.getElapsedNs())});
      break;
    }
    case wire::ZygoteEvent::SPAWNED:
      replies_.push_back(
          {event.getId(), static_cast<pid_t>(event.getSpawned()), false, "", 0, "", warmStems_});
      break;
    case wire::ZygoteEvent::SPAWN_FAILED: {
      auto f = event.getSpawnFailed();
      replies_.push_back(
          {event.getId(), -1, true, f.getStep(), f.getErrno(), f.getMessage(), warmStems_});
      break;
    }
    case wire::ZygoteEvent::READY:
      ready_ = true;  // the first says so; later ones, that a stem turned warm
      break;
  }
  return true;
}

void Zygote::requestSpawn(uint64_t id, const SpawnParams& params,
                          SandboxChannel::SandboxEnds ends) {
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<wire::ZygoteRequest>().initSpawn();
  request.setId(id);
  encodeSpec(params.spec, params.names, request.initSpec());
  request.setHandler(params.handler);
  auto env = request.initEnv(params.env.size());
  for (size_t i = 0; i < params.env.size(); ++i) env.set(i, params.env[i]);
  auto f = request.initFunction();
  f.setName(params.function.name);
  f.setVersion(params.function.version);
  f.setMemoryLimitMb(params.function.memoryLimitMb);
  f.setInvokedFunctionArn(params.function.invokedFunctionArn);
  f.setLogGroupName(params.function.logGroupName);
  f.setLogStreamName(params.function.logStreamName);
  f.setRaw(params.function.raw);
  f.setLogLimitBytes(params.function.logLimitBytes);
  std::vector<Fd> fds;
  fds.push_back(std::move(ends.channel));
  fds.push_back(std::move(ends.page));
  queue(message, std::move(fds), id);
}

bool Zygote::withdrawSpawn(uint64_t id) {
  return outgoing_.withdraw(id);
}

void Zygote::queue(capnp::MessageBuilder& message, std::vector<Fd> fds, uint64_t tag, bool urgent) {
  outgoing_.push(message, std::move(fds), tag, urgent);
  flush();
}

bool Zygote::flush() {
  if (outgoing_.empty()) return true;
  return outgoing_.flush(control_.get());
}

pid_t Zygote::spawn(uint64_t id, const SpawnParams& params, SandboxChannel::SandboxEnds ends) {
  requestSpawn(id, params, std::move(ends));
  auto deadline = Clock::now() + std::chrono::seconds(30);
  for (;;) {
    for (auto it = replies_.begin(); it != replies_.end(); ++it) {
      if (it->id != id) continue;
      SpawnReply reply = std::move(*it);
      replies_.erase(it);
      if (reply.failed) throw SpawnError(reply.step, reply.error, reply.message);
      return reply.pid;
    }
    if (Clock::now() >= deadline) throw std::runtime_error("thatch-zygote did not answer a spawn");
    if (!alive()) throw std::runtime_error("thatch-zygote died");
    readEvent(remainingMs(deadline));
  }
}

ZygoteEvents Zygote::readAvailable() {
  while (readEvent(0)) {
  }
  ZygoteEvents events;
  events.replies.assign(std::make_move_iterator(replies_.begin()),
                        std::make_move_iterator(replies_.end()));
  events.exits.assign(exits_.begin(), exits_.end());
  replies_.clear();
  exits_.clear();
  return events;
}

void Zygote::kill(uint64_t id) {
  capnp::MallocMessageBuilder message;
  message.initRoot<wire::ZygoteRequest>().setKill(id);
  queue(message, {}, 0, /*urgent=*/true);
}

void Zygote::startStemCells(unsigned count, const sandbox::Spec& templateSpec,
                            const std::string& idSlotDir, sandbox::IdRange ids) {
  capnp::MallocMessageBuilder message;
  auto stems = message.initRoot<wire::ZygoteRequest>().initStemCells();
  stems.setCount(count);
  encodeSpec(templateSpec, {}, stems.initTemplate());
  stems.setIdSlotDir(idSlotDir);
  stems.setIdFirst(ids.first);
  stems.setIdCount(ids.count);
  queue(message);
}

std::optional<ExitEvent> Zygote::nextExit(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (exits_.empty()) {
    if (Clock::now() >= deadline) return std::nullopt;
    readEvent(remainingMs(deadline));
  }
  ExitEvent event = exits_.front();
  exits_.pop_front();
  return event;
}

}  // namespace runtime
