// The slow part of a deploy (unpacking or copying the code, sealing it,
// fsync: up to seconds for a large archive) on a thread of its own, so that
// thatchd's loop goes on serving invocations; the commit, which gives the
// code its version, stays on the loop (supervisor::Registry::commit).
// At most `threads` run at once and `queued` wait for one; past that a
// deploy is refused as overloaded, never a thread more.
#pragma once

#include <kj/async-unix.h>

#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "supervisor/registry.h"
#include "supervisor/supervisor.h"

namespace thatchd {

struct StagerLimits {
  unsigned threads = 4;   // staging at once
  unsigned queued = 256;  // waiting for a thread
};

class Stager {
 public:
  using Work = std::function<std::unique_ptr<supervisor::StagedCode>()>;

  using Limits = StagerLimits;

  explicit Stager(kj::UnixEventPort& eventPort, Limits limits = {});
  ~Stager();  // waits for staging still under way; what waits is dropped
  Stager(const Stager&) = delete;
  Stager& operator=(const Stager&) = delete;

  // Runs `work` on a thread of its own, now or once one of the running
  // ones is done. The promise rejects with the message of a DeployError
  // (bad code) or of a failure of the host, or at once (OVERLOADED) when
  // `queued` already wait; dropping it lets the work finish (or, if it has
  // not started, never start) and throws its result away.
  kj::Promise<std::unique_ptr<supervisor::StagedCode>> run(Work work);

  // Deletes the trees (Registry::takeRemoved()) on a thread
  // (supervisor::removeStagedTree).
  void removeTrees(std::vector<std::string> trees);

 private:
  using Fulfiller = kj::Own<kj::PromiseFulfiller<std::unique_ptr<supervisor::StagedCode>>>;

  // The thread tells the loop it is done by writing a byte to a pipe the
  // loop watches.
  struct Worker {
    Work work;
    Fulfiller answer;
    std::unique_ptr<supervisor::StagedCode> result;  // or:
    std::string error;
    base::Fd doneRead, doneWrite;
    kj::Own<kj::UnixEventPort::FdObserver> observer;  // of doneRead
    std::thread thread;
  };
  struct Waiting {
    Work work;
    Fulfiller answer;
    bool evenIfDropped = false;  // a removal: nobody waits, it must run
  };
  static void work(Worker& worker);  // on the worker's thread
  // Starts `work` now if a thread is free, else queues it.
  kj::Promise<std::unique_ptr<supervisor::StagedCode>> startOrQueue(Work work, bool evenIfDropped);
  void start(Work work, Fulfiller answer);
  // On the loop, once `worker`'s thread has written its byte.
  void finished(Worker& worker);

  kj::UnixEventPort& eventPort_;
  Limits limits_;
  std::list<std::unique_ptr<Worker>> workers_;  // running
  std::deque<Waiting> waiting_;
  kj::Own<kj::TaskSet> tasks_;  // the workers' observers; first to go
};

// A deploy's last step, on the loop, once its code is staged: the new
// version of `name` (Supervisor::commit), then what it removed from the
// registry, or the staged code if it was refused, deleted on `stager`'s
// threads. Throws DeployRefused with the message for the caller.
class DeployRefused : public std::runtime_error {
 public:
  using runtime_error::runtime_error;
};
supervisor::FunctionVersion commitDeploy(supervisor::Supervisor& supervisor,
                                         supervisor::Registry& registry, Stager& stager,
                                         const std::string& name,
                                         const supervisor::FunctionConfig& config,
                                         supervisor::StagedCode& staged);

}  // namespace thatchd
