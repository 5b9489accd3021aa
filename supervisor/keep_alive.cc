#include "supervisor/keep_alive.h"

#include <algorithm>
#include <list>
#include <map>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <utility>

namespace supervisor {
namespace {

// "Until evicted" is a keep-alive so long that expiry never comes
// (WarmPools treats an overflowing deadline as never).
std::optional<Duration> keepAliveOf(IdleExpiry expiry) {
  if (expiry == IdleExpiry::kUntilEvicted) return Duration::max();
  return std::nullopt;
}

class LruPolicy final : public KeepAlivePolicy {
 public:
  explicit LruPolicy(IdleExpiry expiry) : expiry_(expiry) {}

  const char* name() const override { return expiry_ == IdleExpiry::kPoolTtl ? "ttl" : "lru"; }

  std::optional<Duration> keepAliveFor(const FunctionKey&) const override {
    return keepAliveOf(expiry_);
  }

  void onIdle(const IdleSandbox& sandbox) override {
    if (positions_.count(sandbox.id) != 0)
      throw std::logic_error("LRU policy: sandbox " + std::to_string(sandbox.id) +
                             " entered the idle set twice");
    order_.push_back(sandbox.id);
    positions_.emplace(sandbox.id, std::prev(order_.end()));
  }

  void onLeave(uint64_t id) override {
    auto it = positions_.find(id);
    if (it == positions_.end())
      throw std::logic_error("LRU policy: sandbox " + std::to_string(id) + " is not idle");
    order_.erase(it->second);
    positions_.erase(it);
  }

  uint64_t chooseVictim() override {
    if (order_.empty()) throw std::logic_error("LRU policy: no idle sandbox to evict");
    return order_.front();
  }

 private:
  IdleExpiry expiry_;
  // Oldest first: WarmPools reports entries in clock order, so insertion
  // order is idle order, and ties keep their arrival order.
  std::list<uint64_t> order_;
  std::unordered_map<uint64_t, std::list<uint64_t>::iterator> positions_;
};

class GreedyDualPolicy final : public KeepAlivePolicy {
 public:
  GreedyDualPolicy(Duration defaultStartCost, IdleExpiry expiry)
      : defaultCostSeconds_(seconds(defaultStartCost)), expiry_(expiry) {}

  const char* name() const override { return "greedy-dual"; }

  std::optional<Duration> keepAliveFor(const FunctionKey&) const override {
    return keepAliveOf(expiry_);
  }

  void onIdle(const IdleSandbox& sandbox) override {
    if (entries_.count(sandbox.id) != 0)
      throw std::logic_error("Greedy-Dual policy: sandbox " + std::to_string(sandbox.id) +
                             " entered the idle set twice");
    FunctionStats& stats = stats_[sandbox.function];
    ++stats.frequency;
    ++stats.idle;
    double cost = stats.costSeconds.value_or(defaultCostSeconds_);
    double size = static_cast<double>(std::max<uint64_t>(sandbox.memoryBytes, 1));
    double priority = clock_ + static_cast<double>(stats.frequency) * cost / size;
    auto position = queue_.emplace(std::make_pair(priority, nextSequence_++), sandbox.id).first;
    entries_.emplace(sandbox.id, Entry{sandbox.function, position});
  }

  void onLeave(uint64_t id) override {
    auto it = entries_.find(id);
    if (it == entries_.end())
      throw std::logic_error("Greedy-Dual policy: sandbox " + std::to_string(id) + " is not idle");
    auto statsIt = stats_.find(it->second.function);
    --statsIt->second.idle;
    if (pendingVictim_ == id) {
      // Inflation: what is kept from now on must out-value the victim.
      clock_ = it->second.position->first.first;
      if (statsIt->second.idle == 0) statsIt->second.frequency = 0;
    }
    pendingVictim_.reset();
    queue_.erase(it->second.position);
    entries_.erase(it);
  }

  void onColdStart(const FunctionKey& function, Duration startCost) override {
    // An average rather than the last sample: one slow start (a cold page
    // cache) should not make a function look expensive for good.
    std::optional<double>& cost = stats_[function].costSeconds;
    double sample = seconds(startCost);
    cost = cost ? 0.75 * *cost + 0.25 * sample : sample;
  }

  uint64_t chooseVictim() override {
    if (queue_.empty()) throw std::logic_error("Greedy-Dual policy: no idle sandbox to evict");
    pendingVictim_ = queue_.begin()->second;
    return *pendingVictim_;
  }

 private:
  static double seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

  struct FunctionStats {
    uint64_t frequency = 0;
    unsigned idle = 0;
    std::optional<double> costSeconds;
  };
  // (priority, arrival sequence): equal priorities are evicted oldest first.
  using Queue = std::map<std::pair<double, uint64_t>, uint64_t>;
  struct Entry {
    FunctionKey function;
    Queue::iterator position;
  };

  double defaultCostSeconds_;
  IdleExpiry expiry_;
  double clock_ = 0;
  uint64_t nextSequence_ = 0;
  std::optional<uint64_t> pendingVictim_;
  std::map<FunctionKey, FunctionStats> stats_;
  Queue queue_;
  std::unordered_map<uint64_t, Entry> entries_;
};

}  // namespace

std::unique_ptr<KeepAlivePolicy> makeLruPolicy(IdleExpiry expiry) {
  return std::make_unique<LruPolicy>(expiry);
}

std::unique_ptr<KeepAlivePolicy> makeGreedyDualPolicy(Duration defaultStartCost,
                                                      IdleExpiry expiry) {
  return std::make_unique<GreedyDualPolicy>(defaultStartCost, expiry);
}

}  // namespace supervisor
