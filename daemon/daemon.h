// thatch's daemon, assembled once: the state directory's lock, the registry,
// the supervisor and the deploys' stager, in the order they must start and
// stop. thatchd (daemon/thatchd_main.cc) serves it on sockets; the in-process
// mode (include/thatch/embedded.h) hands it to the program that embeds it.
#pragma once

#include <kj/async-io.h>
#include <kj/function.h>

#include <string>

#include "api/thatch.capnp.h"
#include "daemon/access.h"
#include "daemon/capabilities.h"
#include "daemon/egress_firewall.h"
#include "daemon/event_queue.h"
#include "daemon/redis_stream.h"
#include "daemon/scheduler.h"
#include "daemon/stager.h"
#include "daemon/triggers.h"
#include "supervisor/clock.h"
#include "supervisor/config.h"
#include "supervisor/config_reload.h"
#include "supervisor/event_log.h"
#include "supervisor/registry.h"
#include "supervisor/supervisor.h"

namespace thatchd {

// Where a daemon's configuration comes from: thatchd's command line, or an
// embedding program's InProcessOptions.
struct ConfigSource {
  std::string path;      // a thatchd TOML file; "" = the built-in defaults
  std::string stateDir;  // each of these overrides the config's key when set
  std::string socketPath;
  std::string zygotePath;
};

// The file (or the built-in defaults) with the overrides, which follow the
// file's rules (absolute paths, ...). Throws supervisor::ConfigError: the
// file's own issues with its name as the source, or the overridden
// config's with an empty source.
supervisor::Config loadConfig(const ConfigSource& source);

// thatch-zygote: the config's `zygote` when set, else the one beside this
// program (not $PATH: a daemon runs it as root). Throws std::runtime_error
// when there is none beside it.
std::string findZygote(const supervisor::Config& config);

// What [lambda] says of the Event queue.
EventQueueLimits eventQueueLimits(const supervisor::LambdaConfig& lambda);

// The cgroup v2 leaf a daemon moves its process into (sandbox/cgroup.h).
inline constexpr char kLeafCgroup[] = "thatchd-daemon";

class Daemon {
 public:
  // Starts the daemon on `io`'s loop from `config`, which must be what
  // loadConfig() returned. `beforeSupervisor` runs once the state directory
  // is locked and before anything touches a cgroup: thatchd binds its
  // sockets there, so that a second thatchd fails without disturbing the
  // first one's sandboxes. Under cgroup v2 the whole process moves into a
  // leaf cgroup (kLeafCgroup) below its own, beside which the sandboxes'
  // cgroups go (docs/install.md); it says so on stderr.
  // Throws what the first failing step throws.
  Daemon(
      const supervisor::Config& config, kj::AsyncIoContext& io, supervisor::EventLog::Sink logSink,
      kj::FunctionParam<void()> beforeSupervisor = []() {});
  ~Daemon();  // stops every sandbox, then waits for staging threads
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // The config in force: the one place it is kept. Components hold the
  // Daemon (or this reference) and read it when they act; the supervisor
  // is told of a new one (Supervisor::reconfigure).
  const supervisor::Config& config() const { return config_; }
  // Replaces the config in force with `next` (checked by loadConfig()),
  // unless it changes a key that needs a restart: then nothing changes
  // and the change's needRestart names them. Nothing changes either when
  // no key does.
  supervisor::ConfigChange reload(const supervisor::Config& next);
  supervisor::Supervisor& supervisor() { return supervisor_; }
  supervisor::Registry& registry() { return registry_; }
  Stager& stager() { return stager_; }
  // Event invocations (the Lambda API's X-Amz-Invocation-Type: Event),
  // kept in STATE/events; those a predecessor accepted run from the start.
  EventQueue& events() { return events_; }
  // What starts functions besides invokes (docs/triggers.md), kept in
  // STATE/triggers.json.
  Triggers& triggers() { return triggers_; }
  // Removes every version of `name` and its triggers (Supervisor::remove,
  // Triggers::removeFunction). False if there was no such function.
  bool removeFunction(const std::string& name);
  // Schedules' runner (TriggerKind::kSchedule): their runs go through events().
  Scheduler& scheduler() { return scheduler_; }
  // The [[client]]s a login is checked against: the config in force's.
  // A reload changes this object in place, so that what holds it sees new
  // logins checked against the new list.
  const Clients& clients() const { return clients_; }

  // The bootstrap capability for one caller. It must go before the Daemon.
  thatch::api::Thatch::Client thatchFor(Peer peer);

 private:
  supervisor::SupervisorOptions supervisorOptions(supervisor::EventLog::Sink logSink,
                                                  kj::FunctionParam<void()>& beforeSupervisor);

  // In start-up order; they stop in reverse. The stager's threads write
  // into the registry's staging area, so they are joined before it goes.
  supervisor::Config config_;      // reload() alone changes it
  supervisor::StateDirLock lock_;  // one daemon per state directory
  supervisor::Registry registry_;
  EgressFirewall firewall_;  // before any sandbox, until the last is gone
  supervisor::SteadyClock clock_;
  supervisor::Supervisor supervisor_;
  Stager stager_;
  EventQueue events_;  // invokes through supervisor_: goes first
  Clients clients_;
  Triggers triggers_;  // its runners (below) go before it
  // Redis stream mappings: their threads are joined when it goes, the
  // batch under way acknowledged (daemon/redis_stream.h).
  RedisStreamRunner redisStreams_;
  SystemWallClock wallClock_;  // [testing] schedule_clock_scale
  Scheduler scheduler_;        // schedules' runner: enqueues into events_
};

}  // namespace thatchd
