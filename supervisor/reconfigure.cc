// A new config taken while running (Supervisor::reconfigure).
#include <utility>
#include <vector>

#include "supervisor/spawn_request.h"
#include "supervisor/supervisor.h"

namespace supervisor {

using State = SandboxState;

void Supervisor::reconfigure(const Config& next) {
  Config previous = std::exchange(options_.config, next);
  pools_.setHostLimits({next.host.maxWarm, next.host.maxWarmMemoryBytes});
  busyPoll_.setSandboxCpus(next.limits.cpus);
  for (const auto& [name, version] : currentVersion_)
    pools_.setLimits({name, version}, poolLimits());
  // Every live sandbox not yet outdated was spawned under `previous`'s
  // settings for its function version.
  std::vector<uint64_t> idle;
  for (auto& [id, box] : sandboxes_) {
    if (!box->alive() || box->outdated) continue;
    std::optional<FunctionVersion> version =
        registry_.get(box->function.name, box->function.version);
    if (!version) continue;  // removed: it goes when its invocation ends
    if (sandboxSettings(version->config, previous) == sandboxSettings(version->config, next))
      continue;
    box->outdated = true;
    if (box->state() == State::kIdle || box->state() == State::kFrozen) idle.push_back(id);
  }
  for (uint64_t id : idle) destroy(id, "reconfigured");
  prewarm();  // pools with a minimum start their new sandboxes now
}

}  // namespace supervisor
