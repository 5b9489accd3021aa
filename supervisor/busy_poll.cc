#include "supervisor/busy_poll.h"

#include <sched.h>

#include <algorithm>

namespace supervisor {

using Steady = std::chrono::steady_clock;

BusyPoll::BusyPoll(const Clock& clock, std::chrono::microseconds window, unsigned cores,
                   double sandboxCpus)
    : clock_(clock), window_(window), cores_(cores), sandboxesPoll_(sandboxCpus >= 1.0) {}

unsigned BusyPoll::usableCores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return static_cast<unsigned>(CPU_COUNT(&set));
}

bool BusyPoll::applies() const {
  return window_.count() > 0 && due_ > 0 && std::max(peak_, previousPeak_) < cores_;
}

uint64_t BusyPoll::dispatched(bool awake) {
  ++due_;
  if (awake) ++awakeDue_;
  if (window_.count() == 0) return 0;
  TimePoint now = clock_.now();
  if (now - epochStart_ >= kEpoch) {
    previousPeak_ = now - epochStart_ < 2 * kEpoch ? peak_ : 0;
    peak_ = 0;
    epochStart_ = now;
  }
  peak_ = std::max(peak_, due_);
  if (!applies()) return 0;
  if (wanted_ && loopApplies()) {
    wanted_->fulfill();
    wanted_ = nullptr;
  }
  return sandboxesPoll_ ? std::chrono::nanoseconds(window_).count() : 0;
}

void BusyPoll::answered(bool awake) {
  if (due_ > 0) --due_;
  if (awake && awakeDue_ > 0) --awakeDue_;
  ++answers_;
}

std::chrono::microseconds BusyPoll::loopWindow() const {
  return loopApplies() ? window_ : std::chrono::microseconds(0);
}

kj::Promise<void> BusyPoll::whenWanted() {
  auto paf = kj::newPromiseAndFulfiller<void>();
  wanted_ = kj::mv(paf.fulfiller);
  return kj::mv(paf.promise);
}

kj::Promise<bool> BusyPoll::watch(runtime::SharedAnswer& page) {
  auto paf = kj::newPromiseAndFulfiller<bool>();
  watched_.push_back({&page, kj::mv(paf.fulfiller)});
  if (pageAlways() && wanted_) {  // a sleeping loop must come and poll for it
    wanted_->fulfill();
    wanted_ = nullptr;
  }
  return kj::mv(paf.promise);
}

bool BusyPoll::mustPoll() {
  return pageAlways() && std::any_of(watched_.begin(), watched_.end(),
                                     [](Watch& w) { return w.fulfiller->isWaiting(); });
}

// A watch whose promise was dropped (its invocation ended otherwise) is
// forgotten without touching its page, which may be gone with its sandbox.
void BusyPoll::checkWatched() {
  if (watched_.empty()) return;
  std::erase_if(watched_, [](Watch& w) {
    if (!w.fulfiller->isWaiting()) return true;
    if (!w.page->ready()) return false;
    w.fulfiller->fulfill(true);
    return true;
  });
}

void BusyPoll::abandonWatched() {
  for (Watch& w : watched_)
    if (w.fulfiller->isWaiting()) w.fulfiller->fulfill(!w.page->abandon());
  watched_.clear();
}

void runUntil(kj::Promise<void> stop, kj::WaitScope& waitScope, BusyPoll& busyPoll) {
  busyPoll.setLooping(true);
  KJ_DEFER({
    busyPoll.abandonWatched();
    busyPoll.setLooping(false);
  });
  auto flag = kj::heap<bool>(false);
  bool& stopped = *flag;
  auto stopping = stop.then([flag = flag.get()]() { *flag = true; }).fork();
  while (!stopped) {
    if (busyPoll.mustPoll()) {
      while (!stopped && busyPoll.mustPoll()) {
        busyPoll.checkWatched();
        waitScope.poll();
      }
      continue;
    }
    auto window = busyPoll.loopWindow();
    if (window.count() > 0) {
      // poll() runs what is ready and polls for I/O without blocking; an
      // answer shows up as one more answer counted.
      uint64_t answers = busyPoll.answers();
      auto until = Steady::now() + window;
      while (!stopped && busyPoll.answers() == answers && Steady::now() < until) {
        busyPoll.checkWatched();
        waitScope.poll();
      }
      if (stopped) break;
      if (busyPoll.answers() != answers) continue;  // there may be more due
    }
    // Sleep until something calls for polling again (or the stop). Answers
    // not in their pages by now come through the channels.
    busyPoll.abandonWatched();
    stopping.addBranch().exclusiveJoin(busyPoll.whenWanted()).wait(waitScope);
  }
}

}  // namespace supervisor
