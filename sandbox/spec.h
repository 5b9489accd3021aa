// sandbox::Spec: a plain value describing everything confine() applies to one
// process. Each confinement step takes only its own part of it.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/fd.h"
#include "sandbox/seccomp.h"

namespace sandbox {

// The sandbox runs as `insideUid` in its user namespace, which is the
// unprivileged `hostUid` on the host. Nothing else is mapped: never host root.
struct IdMap {
  uid_t insideUid = 1000;
  gid_t insideGid = 1000;
  uid_t hostUid = 0;
  gid_t hostGid = 0;
};

// 0 means "no limit" for each field.
struct CgroupLimits {
  uint64_t memoryBytes = 0;  // hard limit, swap off
  uint64_t pids = 0;
  double cpus = 0;  // CPU quota in cores (0.5 = half a core)
};

// One step of the mount plan, applied in order inside the new root. Targets
// are absolute paths as the sandbox sees them.
struct MountEntry {
  enum class Kind {
    kTmpfs,            // fresh tmpfs (sizeBytes, mode)
    kBind,             // bind `source` (a host path) at `target`
    kDevBind,          // bind a host device node; the only kind without nodev
    kProc,             // a fresh /proc for the sandbox's pid namespace
    kFile,             // a regular file with `contents` on the root tmpfs
    kDir,              // a directory on the root tmpfs
    kSymlink,          // `target` -> `source`
    kRemountReadOnly,  // make the mount at `target` read-only (after filling it)
    kDevpts,           // a private devpts instance (its own ptys), not nodev
    kOverlay,          // read-only overlayfs of `lowerDirs` (host paths); the last kind
  };
  Kind kind = Kind::kDir;
  std::string source;
  std::string target;
  bool readOnly = true;
  bool noexec = false;
  uint64_t sizeBytes = 0;  // tmpfs only; 0 = kernel default
  mode_t mode = 0755;
  std::string contents;  // kFile only
  // kOverlay only: the lower directories, the top one first (overlayfs's
  // order: its files hide those of the ones after it).
  std::vector<std::string> lowerDirs;
};

struct Rlimit {
  int resource = 0;
  rlim_t soft = 0;
  rlim_t hard = 0;
};

enum class NetMode {
  kNone,    // only `lo`, up
  kEgress,  // a veth pair to a host bridge, an address and a default route
};

struct EgressSpec {
  std::string bridge = "thatch0";
  std::string bridgeAddress = "10.201.0.1/16";  // the host side, the sandbox's gateway
  std::string sandboxAddress;                   // CIDR, e.g. "10.201.0.2/16"
};

struct NetSpec {
  NetMode mode = NetMode::kNone;
  // kNone only: an existing empty network namespace (only `lo`, up; see
  // makeEmptyNetns) to join instead of creating a fresh one; null creates one.
  // Shared, as `seccomp` is: a copy of the spec keeps it open, never names a closed fd.
  std::shared_ptr<const base::Fd> emptyNetns;
  EgressSpec egress;
};

struct Spec {
  std::string hostname = "sandbox";
  IdMap ids;
  CgroupLimits limits;
  std::vector<MountEntry> mounts;  // see rootfs::defaultPlan()
  std::vector<Rlimit> rlimits;     // see defaultRlimits()
  NetSpec net;
  // Compiled once by the parent (SeccompPolicy::compile); loaded raw in the
  // child. Required.
  std::shared_ptr<const SeccompProgram> seccomp;
  std::string cwd = "/";
};

}  // namespace sandbox
