// The slow part of a deploy (unpacking or copying the code, sealing it,
// fsync: up to seconds for a large archive) on a thread of its own, so that
// thatchd's loop goes on serving invocations; the commit, which gives the
// code its version, stays on the loop (supervisor::Registry::commit).
#pragma once

#include <kj/async-unix.h>

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "supervisor/registry.h"

namespace thatchd {

class Stager {
 public:
  using Work = std::function<std::unique_ptr<supervisor::StagedCode>()>;

  explicit Stager(kj::UnixEventPort& eventPort) : eventPort_(eventPort) {}
  ~Stager();  // waits for staging still under way
  Stager(const Stager&) = delete;
  Stager& operator=(const Stager&) = delete;

  // Runs `work` on a new thread. The promise rejects with the message of a
  // DeployError (bad code) or of a failure of the host; dropping it lets the
  // work finish and throws its result away.
  kj::Promise<std::unique_ptr<supervisor::StagedCode>> run(Work work);

  // Deletes the trees (Registry::takeRemoved()) on a thread; one that
  // cannot be deleted is reported on stderr and left for the registry's
  // next start.
  void removeTrees(std::vector<std::string> trees);

 private:
  // The thread tells the loop it is done by writing a byte to a pipe the
  // loop watches.
  struct Worker {
    Work work;
    std::unique_ptr<supervisor::StagedCode> result;  // or:
    std::string error;
    base::Fd doneRead, doneWrite;
    kj::Own<kj::UnixEventPort::FdObserver> observer;  // of doneRead
    std::thread thread;
    std::atomic<bool> finished{false};  // the thread is done with it
    bool claimed = false;               // so is the loop (answered or dropped)
  };
  static void work(Worker& worker);  // on the worker's thread
  void joinFinished();

  kj::UnixEventPort& eventPort_;
  std::list<std::unique_ptr<Worker>> workers_;
};

}  // namespace thatchd
