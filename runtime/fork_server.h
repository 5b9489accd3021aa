// The zygote's fork server: on its control channel it receives spawn
// requests, forks a confined sandbox for each (which loads the handler in
// place), supervises the sandboxes' limits, reaps them and reports how each
// ended. Single-threaded; it never blocks on one sandbox.
#pragma once

#include <sys/epoll.h>

#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "runtime/framing.h"
#include "runtime/interpreter.h"
#include "runtime/runtime.capnp.h"
#include "runtime/stem_policy.h"
#include "sandbox/cgroup.h"
#include "sandbox/idmap.h"
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
  // the process exit status. It never waits on the supervisor: what it says
  // is queued while the control socket is full, and requests are read on.
  int run();

  // For a test: after forking each sandbox, and before saying so, this
  // process stops itself (SIGSTOP), to be killed mid-spawn.
  void stopAfterEachFork() { stopAfterFork_ = true; }

 private:
  struct Child {
    std::unique_ptr<sandbox::Sandbox> sandbox;
    bool killRequested = false;
    std::optional<sandbox::IdLease> lease;  // a claimed stem cell's own host id
  };
  // A pre-forked, confined, warmed-up sandbox waiting for a request.
  struct Stem {
    std::unique_ptr<sandbox::Sandbox> sandbox;
    base::Fd control;  // SOCK_SEQPACKET to the stem: 'w' when warm; the claim
    std::optional<sandbox::IdLease> lease;
    bool warm = false;
    uint64_t serial = 0;    // names it in the epoll set
    uint64_t forkedNs = 0;  // for StemPolicy::warmed()
  };
  struct StemConfig {
    StemPolicy policy{0};        // how many to keep, at most the configured count
    sandbox::Spec spec;          // the template, /var/task an empty directory
    kj::Array<capnp::word> key;  // see stemKeyOf(), compared with requests'
    std::unique_ptr<sandbox::IdAllocator> ids;
  };

  void send(capnp::MallocMessageBuilder& message);
  // Reads what the supervisor sent, a bounded number of packets at a time;
  // false: shut down.
  bool readRequests();
  bool handlePacket(Packet& packet);  // false: shut down
  void watch(int fd, uint64_t tag, uint32_t events = EPOLLIN, int op = EPOLL_CTL_ADD);
  void unwatch(int fd);
  void watchChild(uint64_t id, const sandbox::Sandbox& box);
  void unwatchChild(const sandbox::Sandbox& box);
  void childEnded(uint64_t id);
  void stemSpoke(uint64_t serial);
  void checkChild(uint64_t id);
  // fds: the invocation channel, then optionally the shared answer page.
  void spawn(wire::SpawnRequest::Reader request, std::vector<base::Fd> fds);
  bool claimStem(wire::SpawnRequest::Reader request, const sandbox::CgroupLimits& limits,
                 const std::string& codeDir, base::Fd& channel, base::Fd& sharedAnswer,
                 uint64_t receivedNs, capnp::MallocMessageBuilder& reply);
  void configureStems(wire::StemCells::Reader config);
  // Forks stem cells up to the policy's target, or discards one above it.
  // A fork costs CPU that a just-claimed sandbox needs on a small host, so
  // while at least half the target is there, forks wait until the loop is
  // `idle`; below half, a few are forked every turn (requests are read in
  // between). True while that is so and more are wanted.
  bool resizeStems(bool idle);
  void reportExit(uint64_t id, bool killRequested, const sandbox::Outcome& outcome);
  // Re-reads the limit counters of a bounded number of sandboxes, in turn
  // (v1's pids counter does not notify).
  void sweepLimits();

  const Interpreter& interpreter_;
  int controlFd_;  // non-blocking
  PacketQueue outgoing_;
  base::Fd epoll_;
  uint64_t nextStemSerial_ = 0;
  uint64_t sweepFrom_ = 0;  // the id the next sweepLimits() starts at
  sandbox::CgroupManager& cgroups_;
  std::shared_ptr<const sandbox::SeccompProgram> seccomp_;
  std::map<uint64_t, Child> children_;
  StemConfig stemConfig_;
  bool stopAfterFork_ = false;
  std::vector<Stem> stems_;
};

// The spec a stem cell is forked with: the template's, but with its own host
// ids (set by the caller), and with an empty directory at /var/task where the
// code is bound when the stem is claimed. Its limits are the template's, so
// claims with the same limits write none. Sets *codeDir to that code's host
// path, if any.
sandbox::Spec stemTemplateOf(const sandbox::Spec& spec, std::string* codeDir);

}  // namespace runtime
