// Network namespaces, configured over netlink with libnl. This configuration
// runs in the parent (host root) while the child waits, so the child never
// links against or runs netlink code. (A sandbox without egress in a
// namespace of its own brings its `lo` up itself, with two ioctls: see
// confine.h.)
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "base/fd.h"
#include "sandbox/spec.h"

namespace sandbox {

// The host-side state of one sandbox's network (its veth end in egress mode).
// A resource: the destructor removes what is left (the kernel also destroys
// a veth pair when the sandbox's namespace goes away).
class NetworkAttachment {
 public:
  virtual ~NetworkAttachment() = default;
  virtual std::string describe() const = 0;
  // The sandbox's namespace is gone: the kernel removes the veth pair in the
  // background, so the destructor need not wait ~30 ms for a delete.
  virtual void release() {}
};

// Configures the network namespace of `child` (freshly created by clone with
// CLONE_NEWNET) according to `net`:
// - kNone: brings `lo` up. With `net.emptyNetns` (a pooled namespace whose
//   `lo` is already up) it only checks that the child is in that namespace.
// - kEgress: ensures the host bridge exists with its address and is up,
//   creates a veth pair named `hostVethName` / "eth0" with eth0 inside the
//   child's namespace, attaches the host end to the bridge, gives eth0
//   `sandboxAddress`, brings lo and eth0 up, and adds a default route via the
//   bridge address. IPv4 only; the bridge and veth names must fit IFNAMSIZ.
// Refuses a child that shares the caller's network namespace: configuring it
// would reconfigure the host. Never returns null.
// Throws std::invalid_argument for a bad spec, base::SysError (the netlink request,
// the kernel's errno and its extended-ack message) when the kernel refuses a
// request, std::runtime_error when libnl itself fails.
std::unique_ptr<NetworkAttachment> configureNetwork(pid_t child, const NetSpec& net,
                                                    const std::string& hostVethName);

// The sandbox's address on the egress bridge `bridgeCidr` (e.g.
// "10.201.0.1/16"), unique per id slot: "10.201.x.y/16".
std::string egressAddress(const std::string& bridgeCidr, unsigned slot);

// Creates an empty network namespace with only `lo`, up, and returns an fd
// to it (for a pool of namespaces handed to sandboxes in kNone mode). Give
// each namespace to one sandbox only: sandboxes sharing one share a loopback.
// The namespace belongs to the caller's user namespace, so a sandbox in its
// own user namespace cannot reconfigure it.
base::Fd makeEmptyNetns();

// Enters a network namespace for the lifetime of the guard and returns to the
// caller's original one afterwards. Used by the parent to clone a child
// directly into a pooled namespace. Per-thread: only the calling thread
// moves, and the guard must be destroyed on that thread.
class NetnsGuard {
 public:
  // Enters the network namespace `nsFd`.
  explicit NetnsGuard(int nsFd);
  // Enters a new, empty network namespace (unshare(CLONE_NEWNET)).
  struct Unshare {};
  explicit NetnsGuard(Unshare);
  // Aborts the process if it cannot return: carrying on in the sandbox's
  // namespace would configure the sandbox when meaning the host.
  ~NetnsGuard();
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;

 private:
  base::Fd original_;
};

}  // namespace sandbox
