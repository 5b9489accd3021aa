// The user namespace's uid/gid maps (written by the parent while the child
// waits, sandbox/sandbox.cc), the child's "user" step of the confinement
// (sandbox/confine.cc), and the allocation of the unprivileged host ids that
// sandboxes run as.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/fd.h"
#include "sandbox/spec.h"

namespace sandbox {

// Parent side: writes /proc/<child>/{uid_map,gid_map} so that exactly
// ids.insideUid/insideGid map to ids.hostUid/hostGid. Refuses host root.
void writeIdMaps(pid_t child, const IdMap& ids);

// Child side: drops supplementary groups and becomes ids.insideUid/insideGid
// (real, effective and saved).
void becomeSandboxUser(const IdMap& ids);

// A host uid (and gid of the same number) leased to one sandbox, so that no
// two live sandboxes share a host identity (RLIMIT_NPROC counts per uid, and
// a shared uid would let one sandbox reach another's files). The lease is an
// flock on a file in the slot directory: it dies with its holder, so a crashed
// runner leaves nothing to clean up.
class IdLease {
 public:
  IdLease(base::Fd lock, unsigned slot, uid_t hostId)
      : lock_(std::move(lock)), slot_(slot), hostId_(hostId) {}
  unsigned slot() const { return slot_; }
  uid_t hostId() const { return hostId_; }

 private:
  base::Fd lock_;
  unsigned slot_;
  uid_t hostId_;
};

struct IdRange {
  uid_t first = 1'000'000'000;  // far above login users and /etc/subuid ranges
  unsigned count = 65536;
};

class IdAllocator {
 public:
  // `slotDir` is created if missing (e.g. /run/thatch/ids).
  IdAllocator(std::string slotDir, IdRange range);
  // Throws when every id of the range is leased.
  IdLease acquire();

 private:
  std::string slotDir_;
  IdRange range_;
};

}  // namespace sandbox
