// The zygote's fork server: on its control channel it receives spawn
// requests, forks a confined sandbox for each (which loads the handler in
// place), supervises the sandboxes' limits, reaps them and reports how each
// ended. Single-threaded; it never blocks on one sandbox.
#pragma once

#include <map>
#include <memory>

#include "runtime/framing.h"
#include "runtime/interpreter.h"
#include "runtime/runtime.capnp.h"
#include "sandbox/cgroup.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp.h"

namespace runtime {

constexpr uint64_t kMaxControlPacket = 1 << 20;

class ForkServer {
 public:
  ForkServer(const Interpreter& interpreter, int controlFd, sandbox::CgroupManager& cgroups,
             std::shared_ptr<const sandbox::SeccompProgram> seccomp);
  ~ForkServer();  // kills every sandbox left

  // Serves until a shutdown request or the control channel closes. Returns
  // the process exit status.
  int run();

 private:
  struct Child {
    std::unique_ptr<sandbox::Sandbox> sandbox;
    bool killRequested = false;
  };
  void send(capnp::MallocMessageBuilder& message);
  bool handlePacket(Packet& packet);  // false: shut down
  void spawn(wire::SpawnRequest::Reader request, sandbox::Fd channel);
  void reportExit(uint64_t id, bool killRequested, const sandbox::Outcome& outcome);
  void checkLimits();

  const Interpreter& interpreter_;
  int controlFd_;
  sandbox::CgroupManager& cgroups_;
  std::shared_ptr<const sandbox::SeccompProgram> seccomp_;
  std::map<uint64_t, Child> children_;
};

}  // namespace runtime
