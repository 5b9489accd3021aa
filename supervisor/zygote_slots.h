// thatchd's zygotes: `zygotes` of each configured runtime (one by default),
// each started with a cgroup subdirectory of its own (at start-up waiting
// while its interpreter imports, ~0.1-0.5 s; a replacement for a dead one
// without waiting: it serves once it says it is ready), watched on the
// loop, and restarted after 1 s, 2 s, 4 s ... up to 30 s while it keeps
// dying; one that answers none of its spawn requests for [host]
// spawn_timeout is hung, and is killed and replaced. A spawn goes to the
// runtime's ready zygote with the fewest spawns
// under way (so that forks run side by side on as many cores); a kill, to
// the zygote that spawned the sandbox; a zygote that dies takes only its
// own sandboxes.
// What a zygote reports goes to a Listener. Also what zygotes leave behind:
// a killed predecessor's cgroups are removed at start, a dead zygote's when
// it dies, and every zygote's when this goes.
#pragma once

#include <kj/async-unix.h>
#include <kj/timer.h>

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "runtime/zygote_control.h"
#include "sandbox/cgroup.h"
#include "sandbox/idmap.h"
#include "supervisor/clock.h"
#include "supervisor/config.h"
#include "supervisor/event_log.h"

namespace supervisor {

class ZygoteSlots {
 public:
  class Listener {
   public:
    virtual void spawnReplied(const runtime::SpawnReply& reply) = 0;
    virtual void sandboxExited(const runtime::ExitEvent& exit) = 0;
    // Its sandboxes died with it (PR_SET_PDEATHSIG, pid namespaces): those
    // asked of it and not exited yet, spawned or not.
    virtual void zygoteDied(const std::vector<uint64_t>& sandboxes, const std::string& why) = 0;

   protected:
    ~Listener() = default;
  };

  struct Options {
    std::string zygoteBinary;
    std::string idSlotDir;  // for the stem cells' id leases
    sandbox::IdRange ids;
    // The cgroup (relative to the v2 hierarchy) under which
    // config.cgroupSubdir goes, when not this process's own.
    std::string cgroupParent;
  };

  // Removes what a killed predecessor left, then starts every configured
  // runtime's zygote; throws if one cannot start (the config is wrong).
  ZygoteSlots(const Config& config, Options options, EventLog& log, kj::Timer& timer,
              kj::UnixEventPort& eventPort, Listener& listener);
  // Stops every zygote (each kills its sandboxes) and removes their cgroups.
  ~ZygoteSlots();
  ZygoteSlots(const ZygoteSlots&) = delete;
  ZygoteSlots& operator=(const ZygoteSlots&) = delete;

  // One of the runtime's zygotes that is ready, null while none is (or all
  // are still starting).
  runtime::Zygote* running(const std::string& runtime);

  // Requests to the zygotes: a spawn to one of the runtime's, what follows
  // about sandbox `id` to the one that was asked for it. None waits: a
  // request the control socket cannot take now is queued in the zygote's
  // PacketQueue and sent when the socket turns writable. That queue is
  // bounded by the host's caps: one spawn request per sandbox starting and
  // one kill per live sandbox. Throws when the runtime has no zygote
  // running, or the zygote's end is gone.
  void requestSpawn(const std::string& runtime, uint64_t id, const runtime::SpawnParams& params,
                    runtime::SandboxChannel::SandboxEnds ends);
  // Takes back a spawn request not sent yet; false once it has gone (then
  // its reply is due) or its zygote has (then zygoteDied() says so).
  bool withdrawSpawn(uint64_t id);
  // Nothing to do when its zygote is not running: its death took the
  // sandbox (zygoteDied()).
  void kill(uint64_t id);
  // The runtime's `index`th zygote's pid: -1 unless running (and ready).
  pid_t pid(const std::string& runtime, unsigned index = 0) const;
  uint64_t restarts() const { return restarts_; }
  // Where the runtime's first zygote's sandboxes' cgroups are
  // (`<cgroup_subdir>/<runtime>`; the Nth zygote's, from 0, are in
  // `<runtime>.N`), each named by its spawn request or a stem cell's own
  // name; "" for `<cgroup_subdir>` itself, which holds nothing else of
  // thatchd's at start. Throws if the host's cgroups cannot be found.
  sandbox::CgroupManager& sandboxCgroups(const std::string& runtime);
  // Those of the zygote that spawned sandbox `id` (thatchd freezes idle
  // ones and reads what they use there); throws if no zygote has it.
  sandbox::CgroupManager& cgroupsOf(uint64_t id);
  // A zygote that dies from now on stays dead (thatchd is draining).
  void stopRestarting() { restarting_ = false; }
  // Nothing more goes to the listener.
  void stopWatching();

 private:
  struct Slot;

  // Waiting until it is ready (start-up) or not (a replacement, on the loop).
  void start(Slot& slot, bool waitUntilReady);
  void restart(Slot& slot);
  kj::Promise<void> watch(Slot& slot);
  // While the zygote has spawn requests under way: dead if a whole
  // spawn_timeout passes without an answer to any.
  void watchSpawns(Slot& slot);
  // Sends what waits as the zygote's socket takes it.
  void flush(Slot& slot);
  kj::Promise<void> flushWhenWritable(Slot& slot);
  // The runtime's ready zygote with the fewest spawns under way; else null,
  // or (runningSlot) an error naming the runtime.
  Slot* readySlot(const std::string& runtime) const;
  Slot& runningSlot(const std::string& runtime);
  // The ready zygote that sandbox `id` was asked of, or null.
  Slot* ownerOf(uint64_t id) const;
  // Sandbox `id` is no longer its zygote's to answer for.
  void forget(uint64_t id);
  void died(Slot& slot, const std::string& error);
  void removeCgroupsOf(const std::string& dir);
  // Removes every directory of the configured runtimes' zygotes below `top`
  // (a predecessor's too, however many zygotes it ran), with their cgroups.
  void removeZygoteDirs(sandbox::CgroupManager& top);
  // The cgroups at `path` below the configured subdirectory ("" for itself).
  std::unique_ptr<sandbox::CgroupManager> cgroupsAt(const std::string& path) const;
  std::string cgroupPath(const std::string& path) const;

  // The supervisor's, which a reload changes in place: spawn_timeout is
  // read at each spawn, the rest (runtimes, cgroup_subdir) needs a restart.
  const Config& config_;
  Options options_;
  EventLog& log_;
  kj::Timer& timer_;
  kj::UnixEventPort& eventPort_;
  Listener& listener_;
  // By runtime name, `zygotes` each.
  std::map<std::string, std::vector<std::unique_ptr<Slot>>> slots_;
  std::unordered_map<uint64_t, Slot*> owners_;  // sandbox -> the zygote asked
  // By directory below the subdir, once asked for.
  std::map<std::string, std::unique_ptr<sandbox::CgroupManager>> sandboxCgroups_;
  uint64_t restarts_ = 0;
  bool restarting_ = true;
  kj::Own<kj::TaskSet> tasks_;
};

}  // namespace supervisor
