// Network namespaces, configured over netlink with libnl. All configuration
// runs in the parent (host root) while the child waits, so the child never
// links against or runs netlink code.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "sandbox/fd.h"
#include "sandbox/spec.h"

namespace sandbox {

// The host-side state of one sandbox's network (its veth end in egress mode).
// A resource: the destructor removes what is left (the kernel also destroys
// a veth pair when the sandbox's namespace goes away).
class NetworkAttachment {
 public:
  virtual ~NetworkAttachment() = default;
  virtual std::string describe() const = 0;
};

// Configures the network namespace of `child` (freshly created by clone with
// CLONE_NEWNET) according to `net`:
// - kNone: brings `lo` up.
// - kEgress: ensures the host bridge exists with its address and is up,
//   creates a veth pair named `hostVethName` / "eth0" with eth0 inside the
//   child's namespace, attaches the host end to the bridge, gives eth0
//   `sandboxAddress`, brings lo and eth0 up, and adds a default route via the
//   bridge address.
// Throws SysError / std::runtime_error naming the netlink operation.
std::unique_ptr<NetworkAttachment> configureNetwork(pid_t child, const NetSpec& net,
                                                    const std::string& hostVethName);

// Creates an empty network namespace with only `lo`, up, and returns an fd
// to it (for a pool of namespaces handed to sandboxes in kNone mode).
Fd makeEmptyNetns();

// Enters the network namespace `nsFd` for the lifetime of the guard and
// returns to the caller's original one afterwards. Used by the parent to
// clone a child directly into a pooled namespace.
class NetnsGuard {
 public:
  explicit NetnsGuard(int nsFd);
  ~NetnsGuard();
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;

 private:
  Fd original_;
};

}  // namespace sandbox
