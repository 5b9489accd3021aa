#include "runtime/fork_server.h"

#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "runtime/sandbox_body.h"
#include "runtime/spec_codec.h"
#include "sandbox/sys_error.h"

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

FunctionMeta decodeFunction(wire::FunctionInfo::Reader f) {
  FunctionMeta meta;
  meta.name = f.getName();
  meta.version = f.getVersion();
  meta.memoryLimitMb = f.getMemoryLimitMb();
  meta.invokedFunctionArn = f.getInvokedFunctionArn();
  meta.logGroupName = f.getLogGroupName();
  meta.logStreamName = f.getLogStreamName();
  meta.raw = f.getRaw();
  if (f.getLogLimitBytes() > 0) meta.logLimitBytes = f.getLogLimitBytes();
  return meta;
}

}  // namespace

ForkServer::ForkServer(const Interpreter& interpreter, int controlFd,
                       sandbox::CgroupManager& cgroups,
                       std::shared_ptr<const sandbox::SeccompProgram> seccomp)
    : interpreter_(interpreter),
      controlFd_(controlFd),
      cgroups_(cgroups),
      seccomp_(std::move(seccomp)) {}

ForkServer::~ForkServer() {
  children_.clear();
}

void ForkServer::send(capnp::MallocMessageBuilder& message) {
  sendPacket(controlFd_, message);
}

void ForkServer::spawn(wire::SpawnRequest::Reader request, sandbox::Fd channel) {
  uint64_t receivedNs = sandbox::monotonicNs();
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
  // Forking skips CPython's at-fork hooks, which is only right while this
  // process has a single thread (see afterFork()).
  if (int threads = countThreads(); threads != 1)
    return fail("request", EDEADLK,
                "the zygote has " + std::to_string(threads) + " threads and cannot fork safely");
  SpawnNames names;
  sandbox::Spec spec;
  try {
    spec = decodeSpec(request.getSpec(), &names);
  } catch (const std::exception& e) {
    return fail("request", EINVAL, e.what());
  }
  spec.seccomp = seccomp_;
  SandboxParams params;
  params.handler = request.getHandler();
  for (auto var : request.getEnv()) params.env.push_back(var);
  params.function = decodeFunction(request.getFunction());
  int channelFd = channel.get();
  try {
    auto box = std::make_unique<sandbox::Sandbox>(
        spec, sandbox::SandboxOptions{names.cgroupName, names.hostVethName, channelFd}, cgroups_,
        [&](const sandbox::ChildChannel& child) {
          return serveSandbox(interpreter_, params, child, channelFd, receivedNs);
        });
    event.setSpawned(box->pid());
    children_[id].sandbox = std::move(box);
  } catch (const sandbox::ConfinementError& e) {
    return fail(e.step(), e.error(), e.what());
  } catch (const sandbox::SysError& e) {
    return fail("setup", e.error(), e.what());
  } catch (const std::exception& e) {
    return fail("setup", 0, e.what());
  }
  send(reply);
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
      spawn(request.getSpawn(), std::move(packet.passedFd));
      return true;
    case wire::ZygoteRequest::KILL: {
      auto it = children_.find(request.getKill());
      if (it != children_.end()) {
        it->second.killRequested = true;
        it->second.sandbox->kill();  // its pidfd is readable now: reported below
      }
      return true;
    }
    case wire::ZygoteRequest::SHUTDOWN:
      return false;
  }
  return true;
}

void ForkServer::checkLimits() {
  for (auto& [id, child] : children_) {
    if (auto breach = child.sandbox->breach()) {
      child.sandbox.reset();  // kills it and removes its cgroup
      reportExit(id, child.killRequested, {*breach, 0, {}});
    }
  }
  std::erase_if(children_, [](const auto& entry) { return !entry.second.sandbox; });
}

int ForkServer::run() {
  capnp::MallocMessageBuilder hello;
  hello.initRoot<wire::ZygoteEvent>().setReady();
  send(hello);
  for (;;) {
    std::vector<pollfd> fds{{controlFd_, POLLIN, 0}};
    std::vector<uint64_t> ids;
    for (auto& [id, child] : children_) {
      fds.push_back({child.sandbox->pidfd(), POLLIN, 0});
      ids.push_back(id);
    }
    // v1's pids counter does not notify: limits are re-read on this tick.
    if (poll(fds.data(), fds.size(), 50) < 0 && errno != EINTR) sandbox::throwSysError("poll");
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      // The sandbox's cgroup is gone (its destructor) before anyone hears
      // that it ended.
      Child& child = children_[ids[i - 1]];
      sandbox::Outcome outcome = child.sandbox->finish();
      bool killRequested = child.killRequested;
      children_.erase(ids[i - 1]);
      reportExit(ids[i - 1], killRequested, outcome);
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      std::optional<Packet> packet;
      try {
        packet = receivePacket(controlFd_, kMaxControlPacket);
        if (!packet) return 0;  // the supervisor went away
        if (!handlePacket(*packet)) return 0;
      } catch (const FramingError& e) {
        fprintf(stderr, "thatch-zygote: bad control message: %s\n", e.what());
      } catch (const kj::Exception& e) {
        fprintf(stderr, "thatch-zygote: bad control message: %s\n", e.getDescription().cStr());
      }
    }
    checkLimits();
  }
}

}  // namespace runtime
