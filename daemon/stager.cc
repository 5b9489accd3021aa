#include "daemon/stager.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <system_error>

#include "base/sys_error.h"
#include "supervisor/messages.h"

namespace thatchd {

Stager::~Stager() {
  for (auto& worker : workers_) worker->thread.join();
}

void Stager::joinFinished() {
  for (auto it = workers_.begin(); it != workers_.end();) {
    if ((*it)->finished && (*it)->claimed) {
      (*it)->thread.join();
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

void Stager::work(Worker& worker) {
  try {
    worker.result = worker.work();
  } catch (const supervisor::DeployError& e) {
    worker.error = e.what();
  } catch (const std::exception& e) {
    worker.error = std::string("thatchd could not store the function: ") + e.what();
  } catch (...) {
    worker.error = "thatchd could not store the function";
  }
  worker.work = nullptr;  // the code's bytes: freed here, not on the loop
  char done = 1;
  while (write(worker.doneWrite.get(), &done, 1) < 0 && errno == EINTR) {
  }
  worker.finished = true;
}

kj::Promise<std::unique_ptr<supervisor::StagedCode>> Stager::run(Work work) {
  joinFinished();
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) base::throwSysError("pipe2");
  auto worker = std::make_unique<Worker>();
  worker->work = std::move(work);
  worker->doneRead = base::Fd(fds[0]);
  worker->doneWrite = base::Fd(fds[1]);
  // Watched before the thread starts: its byte cannot come unseen.
  worker->observer = kj::heap<kj::UnixEventPort::FdObserver>(
      eventPort_, fds[0], kj::UnixEventPort::FdObserver::OBSERVE_READ);
  Worker* raw = worker.get();
  kj::Promise<void> done = worker->observer->whenBecomesReadable();
  worker->thread = std::thread([raw]() { Stager::work(*raw); });
  workers_.push_back(std::move(worker));
  return done
      .then([raw]() -> std::unique_ptr<supervisor::StagedCode> {
        if (!raw->error.empty())
          kj::throwFatalException(supervisor::failure(kj::Exception::Type::FAILED, raw->error));
        return std::move(raw->result);
      })
      .attach(kj::defer([raw]() { raw->claimed = true; }));
}

void Stager::removeTrees(std::vector<std::string> trees) {
  if (trees.empty()) return;
  // Its promise dropped: the thread runs on, and is joined once finished.
  run([trees = std::move(trees)]() -> std::unique_ptr<supervisor::StagedCode> {
    for (const std::string& tree : trees) {
      try {
        supervisor::removeTree(tree);
      } catch (const std::exception& e) {
        fprintf(stderr, "thatchd: cannot remove %s (removed at the next start): %s\n", tree.c_str(),
                e.what());
      }
    }
    return nullptr;
  });
}

}  // namespace thatchd
