#include "daemon/stager.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "base/sys_error.h"
#include "supervisor/messages.h"

namespace thatchd {

namespace {

supervisor::StderrTaskErrors stagerErrors("stager");

}  // namespace

Stager::Stager(kj::UnixEventPort& eventPort, Limits limits)
    : eventPort_(eventPort), limits_(limits), tasks_(kj::heap<kj::TaskSet>(stagerErrors)) {}

Stager::~Stager() {
  tasks_ = nullptr;
  waiting_.clear();
  for (auto& worker : workers_) worker->thread.join();
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
}

kj::Promise<std::unique_ptr<supervisor::StagedCode>> Stager::run(Work work) {
  if (workers_.size() >= limits_.threads && waiting_.size() >= limits_.queued)
    return supervisor::failure(kj::Exception::Type::OVERLOADED,
                               "thatchd is staging " + std::to_string(workers_.size()) +
                                   " deploys and " + std::to_string(waiting_.size()) +
                                   " more wait: try again once some are done");
  return startOrQueue(std::move(work), false);
}

kj::Promise<std::unique_ptr<supervisor::StagedCode>> Stager::startOrQueue(Work work,
                                                                          bool evenIfDropped) {
  auto paf = kj::newPromiseAndFulfiller<std::unique_ptr<supervisor::StagedCode>>();
  if (workers_.size() < limits_.threads)
    start(std::move(work), kj::mv(paf.fulfiller));
  else
    waiting_.push_back({std::move(work), kj::mv(paf.fulfiller), evenIfDropped});
  return kj::mv(paf.promise);
}

void Stager::start(Work work, Fulfiller answer) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    answer->reject(supervisor::failure(
        kj::Exception::Type::FAILED,
        std::string("thatchd could not stage the function: pipe2: ") + strerror(errno)));
    return;
  }
  auto worker = std::make_unique<Worker>();
  worker->work = std::move(work);
  worker->answer = kj::mv(answer);
  worker->doneRead = base::Fd(fds[0]);
  worker->doneWrite = base::Fd(fds[1]);
  // Watched before the thread starts: its byte cannot come unseen.
  worker->observer = kj::heap<kj::UnixEventPort::FdObserver>(
      eventPort_, fds[0], kj::UnixEventPort::FdObserver::OBSERVE_READ);
  Worker& raw = *worker;
  try {
    worker->thread = std::thread([&raw]() { Stager::work(raw); });
  } catch (const std::system_error& e) {
    // The host (or thatchd's pids limit) has no thread to spare.
    raw.answer->reject(supervisor::failure(
        kj::Exception::Type::OVERLOADED,
        std::string("thatchd could not start a thread to stage the function: ") + e.what()));
    return;
  }
  tasks_->add(raw.observer->whenBecomesReadable().then([this, &raw]() { finished(raw); }));
  workers_.push_back(std::move(worker));
}

void Stager::finished(Worker& worker) {
  worker.thread.join();  // it has written its last byte: about to return
  if (!worker.error.empty())
    worker.answer->reject(supervisor::failure(kj::Exception::Type::FAILED, worker.error));
  else
    worker.answer->fulfill(std::move(worker.result));
  // A result nobody waited for (the call was dropped) goes with the worker.
  workers_.remove_if([&worker](const std::unique_ptr<Worker>& w) { return w.get() == &worker; });
  while (!waiting_.empty() && workers_.size() < limits_.threads) {
    Waiting next = std::move(waiting_.front());
    waiting_.pop_front();
    if (next.evenIfDropped || next.answer->isWaiting())
      start(std::move(next.work), kj::mv(next.answer));
  }
}

void Stager::removeTrees(std::vector<std::string> trees) {
  if (trees.empty()) return;
  // Its promise dropped: the work runs (or waits for a thread) all the
  // same. Past the queue's bound too: each deploy or remove adds one at
  // most, and what it holds is already out of the registry.
  auto work = [trees = std::move(trees)]() -> std::unique_ptr<supervisor::StagedCode> {
    for (const std::string& tree : trees) supervisor::removeStagedTree(tree);
    return nullptr;
  };
  startOrQueue(std::move(work), true);
}

supervisor::FunctionVersion commitDeploy(supervisor::Supervisor& supervisor,
                                         supervisor::Registry& registry, Stager& stager,
                                         const std::string& name,
                                         const supervisor::FunctionConfig& config,
                                         supervisor::StagedCode& staged) {
  supervisor::FunctionVersion version;
  std::string refusal;
  try {
    version = supervisor.commit(name, config, staged);
  } catch (const supervisor::DeployError& e) {
    refusal = e.what();
  } catch (const std::system_error& e) {
    refusal = std::string("thatchd could not store the function: ") + e.what();
  }
  // What the commit removed, or the code it refused: deleted off the loop.
  registry.discard(staged);
  stager.removeTrees(registry.takeRemoved());
  if (!refusal.empty()) throw DeployRefused(refusal);
  return version;
}

}  // namespace thatchd
