#include "sandbox/network.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <sched.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <new>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "base/sys_error.h"

namespace sandbox {

using base::check;
using base::Fd;
using base::SysError;
using base::throwSysError;
namespace {

constexpr char kSandboxLink[] = "eth0";

template <auto release>
struct Releaser {
  template <typename T>
  void operator()(T* object) const {
    release(object);
  }
};
using SocketPtr = std::unique_ptr<nl_sock, Releaser<nl_socket_free>>;
using LinkPtr = std::unique_ptr<rtnl_link, Releaser<rtnl_link_put>>;
using AddrPtr = std::unique_ptr<nl_addr, Releaser<nl_addr_put>>;
using IfAddrPtr = std::unique_ptr<rtnl_addr, Releaser<rtnl_addr_put>>;
using RoutePtr = std::unique_ptr<rtnl_route, Releaser<rtnl_route_put>>;

// libnl's allocators return null only when out of memory.
template <typename T>
T* checkAlloc(T* object) {
  if (!object) throw std::bad_alloc();
  return object;
}

// /proc/self would name the thread-group leader's namespace, not this thread's.
constexpr char kOwnNetns[] = "/proc/thread-self/ns/net";

Fd openNetns(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throwSysError("open(" + path + ")");
  return Fd(fd);
}

// A namespace's identity: its nsfs inode.
struct NetnsId {
  dev_t dev;
  ino_t ino;
  bool operator==(const NetnsId&) const = default;
};

NetnsId netnsIdOf(int nsFd) {
  struct stat st;
  check(fstat(nsFd, &st), "fstat(netns fd)");
  return {st.st_dev, st.st_ino};
}

NetnsId ownNetnsId() {
  struct stat st;
  check(stat(kOwnNetns, &st), std::string("stat(") + kOwnNetns + ")");
  return {st.st_dev, st.st_ino};
}

std::string addrToString(nl_addr* addr) {
  char text[INET6_ADDRSTRLEN + 8];
  return nl_addr2str(addr, text, sizeof text);
}

// The kernel's explanation (NLMSGERR_ATTR_MSG) appended to an error, if any.
std::string extendedAckMessage(const nlmsgerr* error) {
  // libnl hands over the payload of the kernel's NLMSG_ERROR message.
  const char* message = reinterpret_cast<const char*>(error) - NLMSG_HDRLEN;
  const auto* header = reinterpret_cast<const nlmsghdr*>(message);
  if (!(header->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
  size_t offset = NLMSG_HDRLEN + sizeof(nlmsgerr);
  if (!(header->nlmsg_flags & NLM_F_CAPPED)) offset += error->msg.nlmsg_len - NLMSG_HDRLEN;
  offset = NLMSG_ALIGN(offset);
  if (offset >= header->nlmsg_len) return "";
  auto* attrs = reinterpret_cast<const nlattr*>(message + offset);
  nlattr* text = nla_find(attrs, static_cast<int>(header->nlmsg_len - offset), NLMSGERR_ATTR_MSG);
  if (!text) return "";
  const char* data = static_cast<const char*>(nla_data(text));
  return std::string(data, strnlen(data, nla_len(text)));
}

// A NETLINK_ROUTE socket. A socket stays bound to the namespace it was opened
// in, so one opened inside the sandbox's namespace configures it from the
// host: the caller spends only the socket's creation in the sandbox's
// namespace, however the configuration ends.
class RouteSocket {
 public:
  // Opens the socket in the namespace `netnsFd`, or in the calling thread's.
  explicit RouteSocket(int netnsFd = -1);
  RouteSocket(const RouteSocket&) = delete;
  RouteSocket& operator=(const RouteSocket&) = delete;

  nl_sock* get() const { return sock_.get(); }

  // Checks the libnl result `rc` of the request `what`. Returns 0 on success,
  // or the kernel's errno when it is one of `tolerated`; throws otherwise.
  int check(int rc, std::string_view what, std::initializer_list<int> tolerated = {});

 private:
  static int recordError(sockaddr_nl*, nlmsgerr* error, void* self);

  SocketPtr sock_;
  // libnl maps the kernel's errno to its own codes, losing detail (EEXIST and
  // ENODEV matter here); the error callback keeps the original. Gets
  // (rtnl_link_get_kernel) install their own callback: only libnl's code.
  int kernelErrno_ = 0;
  std::string kernelMessage_;
};

RouteSocket::RouteSocket(int netnsFd) : sock_(checkAlloc(nl_socket_alloc())) {
  std::optional<NetnsGuard> inside;
  if (netnsFd >= 0) inside.emplace(netnsFd);
  check(nl_connect(sock_.get(), NETLINK_ROUTE), "nl_connect(NETLINK_ROUTE)");
  inside.reset();
  int on = 1;
  base::check(
      setsockopt(nl_socket_get_fd(sock_.get()), SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof on),
      "setsockopt(NETLINK_EXT_ACK)");
  check(nl_socket_modify_err_cb(sock_.get(), NL_CB_CUSTOM, &RouteSocket::recordError, this),
        "nl_socket_modify_err_cb");
}

int RouteSocket::recordError(sockaddr_nl*, nlmsgerr* error, void* self) {
  auto* socket = static_cast<RouteSocket*>(self);
  socket->kernelErrno_ = -error->error;
  socket->kernelMessage_ = extendedAckMessage(error);
  return NL_STOP;  // libnl then fails the request with its own code, as without a callback
}

int RouteSocket::check(int rc, std::string_view what, std::initializer_list<int> tolerated) {
  int kernelErrno = std::exchange(kernelErrno_, 0);
  std::string kernelMessage = std::exchange(kernelMessage_, {});
  if (rc >= 0) return 0;
  if (kernelErrno == 0) throw std::runtime_error(std::string(what) + ": " + nl_geterror(rc));
  if (std::find(tolerated.begin(), tolerated.end(), kernelErrno) != tolerated.end()) {
    return kernelErrno;
  }
  std::string context(what);
  if (!kernelMessage.empty()) context += " [" + kernelMessage + "]";
  throw SysError(std::move(context), kernelErrno);
}

// The link `name`, or null when there is none.
LinkPtr findLink(RouteSocket& sock, const std::string& name) {
  rtnl_link* link = nullptr;
  int rc = rtnl_link_get_kernel(sock.get(), 0, name.c_str(), &link);
  // A get's errors bypass our callback: libnl reports ENODEV as its own code
  // (NLE_NODEV; NLE_OBJ_NOTFOUND in older versions).
  bool missing = rc == -NLE_NODEV || rc == -NLE_OBJ_NOTFOUND;
  sock.check(missing ? 0 : rc, "rtnl_link_get_kernel(" + name + ")");
  return LinkPtr(link);  // null when not found
}

LinkPtr getLink(RouteSocket& sock, const std::string& name) {
  LinkPtr link = findLink(sock, name);
  if (!link) throw SysError("rtnl_link_get_kernel(" + name + ")", ENODEV);
  return link;
}

void bringUp(RouteSocket& sock, const std::string& name) {
  LinkPtr target(checkAlloc(rtnl_link_alloc()));
  LinkPtr change(checkAlloc(rtnl_link_alloc()));
  rtnl_link_set_name(change.get(), name.c_str());  // the request names the link
  rtnl_link_set_flags(change.get(), IFF_UP);
  int rc = rtnl_link_change(sock.get(), target.get(), change.get(), 0);
  sock.check(rc, "rtnl_link_change(" + name + " up)");
}

void addAddress(RouteSocket& sock, int ifindex, const std::string& linkName, nl_addr* local,
                std::initializer_list<int> tolerated = {}) {
  IfAddrPtr addr(checkAlloc(rtnl_addr_alloc()));
  rtnl_addr_set_ifindex(addr.get(), ifindex);
  sock.check(rtnl_addr_set_local(addr.get(), local), "rtnl_addr_set_local");
  int rc = rtnl_addr_add(sock.get(), addr.get(), 0);
  sock.check(rc, "rtnl_addr_add(" + addrToString(local) + " dev " + linkName + ")", tolerated);
}

void addDefaultRoute(RouteSocket& sock, int ifindex, nl_addr* gateway) {
  nl_addr* anywhere = nullptr;
  sock.check(nl_addr_parse("0.0.0.0/0", AF_INET, &anywhere), "nl_addr_parse(0.0.0.0/0)");
  AddrPtr destination(anywhere);
  RoutePtr route(checkAlloc(rtnl_route_alloc()));
  rtnl_route_set_family(route.get(), AF_INET);
  rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
  rtnl_route_set_scope(route.get(), RT_SCOPE_UNIVERSE);
  rtnl_route_set_protocol(route.get(), RTPROT_BOOT);
  rtnl_route_set_type(route.get(), RTN_UNICAST);
  sock.check(rtnl_route_set_dst(route.get(), destination.get()), "rtnl_route_set_dst");
  rtnl_nexthop* hop = checkAlloc(rtnl_route_nh_alloc());
  rtnl_route_nh_set_ifindex(hop, ifindex);
  rtnl_route_nh_set_gateway(hop, gateway);
  rtnl_route_add_nexthop(route.get(), hop);  // the route owns it from here
  int rc = rtnl_route_add(sock.get(), route.get(), NLM_F_EXCL);
  sock.check(rc, "rtnl_route_add(default via " + addrToString(gateway) + " dev eth0)");
}

// A random, locally administered unicast MAC. A bridge without an address of
// its own takes the lowest of its ports' addresses, so the sandboxes'
// gateway would change MAC (and their ARP caches go stale) as others come
// and go.
AddrPtr randomMac() {
  uint8_t mac[6];
  if (getrandom(mac, sizeof mac, 0) != sizeof mac) throwSysError("getrandom");
  mac[0] = (mac[0] & 0xfe) | 0x02;
  return AddrPtr(checkAlloc(nl_addr_build(AF_LLC, mac, sizeof mac)));
}

void createBridge(RouteSocket& host, const std::string& name) {
  LinkPtr bridge(checkAlloc(rtnl_link_bridge_alloc()));
  rtnl_link_set_name(bridge.get(), name.c_str());
  AddrPtr mac = randomMac();
  rtnl_link_set_addr(bridge.get(), mac.get());
  rtnl_link_set_flags(bridge.get(), IFF_UP);
  // EEXIST: another sandbox created it since we looked.
  int rc = rtnl_link_add(host.get(), bridge.get(), NLM_F_CREATE | NLM_F_EXCL);
  host.check(rc, "rtnl_link_add(bridge " + name + ")", {EEXIST});
}

// Makes sure the bridge exists, has its address and is up; returns its
// ifindex. Sandboxes starting concurrently race to do the same, so every
// step accepts that another one did it first. Each step is one request, so a
// sandbox pays little once the bridge exists.
int ensureBridge(RouteSocket& host, const std::string& name, nl_addr* address) {
  LinkPtr bridge = findLink(host, name);
  if (!bridge) {
    createBridge(host, name);
    bridge = getLink(host, name);
  }
  const char* type = rtnl_link_get_type(bridge.get());
  if (!type || std::string_view(type) != "bridge") {
    throw std::runtime_error("egress.bridge " + name + " exists and is not a bridge");
  }
  int ifindex = rtnl_link_get_ifindex(bridge.get());
  addAddress(host, ifindex, name, address, {EEXIST});
  if (!(rtnl_link_get_flags(bridge.get()) & IFF_UP)) bringUp(host, name);
  return ifindex;
}

// One request: the host end `hostName` is created up and enslaved to the
// bridge, and its peer is born as eth0 in the sandbox's namespace (so no
// "eth0" ever exists on the host, where it would clash with the host's own).
void createVeth(RouteSocket& host, const std::string& hostName, int bridgeIfindex,
                int sandboxNetnsFd) {
  LinkPtr veth(checkAlloc(rtnl_link_veth_alloc()));
  rtnl_link_set_name(veth.get(), hostName.c_str());
  rtnl_link_set_master(veth.get(), bridgeIfindex);
  rtnl_link_set_flags(veth.get(), IFF_UP);
  LinkPtr peer(checkAlloc(rtnl_link_veth_get_peer(veth.get())));
  rtnl_link_set_name(peer.get(), kSandboxLink);
  rtnl_link_set_ns_fd(peer.get(), sandboxNetnsFd);
  int rc = rtnl_link_add(host.get(), veth.get(), NLM_F_CREATE | NLM_F_EXCL);
  host.check(rc, "rtnl_link_add(veth " + hostName + " peer eth0 in the sandbox)");
}

void configureSandboxSide(RouteSocket& inside, nl_addr* address, nl_addr* gateway) {
  bringUp(inside, "lo");
  int eth0 = rtnl_link_get_ifindex(getLink(inside, kSandboxLink).get());
  addAddress(inside, eth0, kSandboxLink, address);
  bringUp(inside, kSandboxLink);
  addDefaultRoute(inside, eth0, gateway);  // after the address: the gateway must be on-link
}

class NoAttachment final : public NetworkAttachment {
 public:
  std::string describe() const override { return "no network (lo only)"; }
};

// The host end of a sandbox's veth pair, removed by the destructor.
class VethAttachment final : public NetworkAttachment {
 public:
  VethAttachment(std::string hostName, std::string description)
      : hostName_(std::move(hostName)),
        description_(std::move(description)),
        hostNetns_(ownNetnsId()) {}
  ~VethAttachment() override;

  // Removal goes by ifindex once known: the name may meanwhile belong to the
  // next sandbox's veth when the kernel removed ours with its namespace.
  void setIfindex(int ifindex) { ifindex_ = ifindex; }
  std::string describe() const override { return description_; }
  void release() override { released_ = true; }

 private:
  void remove();

  std::string hostName_;
  std::string description_;
  NetnsId hostNetns_;  // an ifindex means something only in its namespace
  int ifindex_ = 0;
  bool released_ = false;
};

VethAttachment::~VethAttachment() {
  if (released_) return;
  try {
    remove();
  } catch (const std::exception& e) {
    // Destructors must not throw. Whatever is left goes with the sandbox's
    // namespace: the kernel removes both ends of the pair then.
    std::fprintf(stderr, "thatch: cannot remove veth %s: %s\n", hostName_.c_str(), e.what());
  }
}

void VethAttachment::remove() {
  if (ownNetnsId() != hostNetns_) {
    throw std::runtime_error("destroyed in another network namespace than it was created in");
  }
  RouteSocket host;
  LinkPtr link(checkAlloc(rtnl_link_alloc()));
  if (ifindex_ > 0) {
    rtnl_link_set_ifindex(link.get(), ifindex_);
  } else {
    rtnl_link_set_name(link.get(), hostName_.c_str());
  }
  // ENODEV: the sandbox's namespace died first and took the pair with it.
  host.check(rtnl_link_delete(host.get(), link.get()), "rtnl_link_delete(" + hostName_ + ")",
             {ENODEV});
}

// libnl silently truncates longer names; the kernel refuses '/', ':' and
// whitespace.
void checkLinkName(const std::string& name, std::string_view field) {
  bool valid = !name.empty() && name.size() < IFNAMSIZ && name != "." && name != ".." &&
               std::none_of(name.begin(), name.end(), [](unsigned char c) {
                 return c == '/' || c == ':' || std::isspace(c);
               });
  if (!valid) {
    throw std::invalid_argument(std::string(field) + " \"" + name +
                                "\" is not a link name (1 to 15 characters, no '/', ':' or space)");
  }
}

// Parses "10.201.0.2/16". With `hostOnly`, only the part before the prefix
// length (as for a gateway).
AddrPtr parseCidr(const std::string& text, std::string_view field, bool hostOnly = false) {
  size_t slash = text.find('/');
  nl_addr* addr = nullptr;
  std::string part = hostOnly ? text.substr(0, slash) : text;
  if (slash == std::string::npos || nl_addr_parse(part.c_str(), AF_INET, &addr) < 0) {
    throw std::invalid_argument(std::string(field) + " \"" + text +
                                "\" is not an IPv4 address with a prefix length");
  }
  return AddrPtr(addr);
}

std::unique_ptr<NetworkAttachment> isolate(int sandboxNetnsFd, const NetSpec& net) {
  if (net.emptyNetns) {
    // A pooled namespace has lo up already: just make sure the child is in it.
    if (netnsIdOf(sandboxNetnsFd) != netnsIdOf(net.emptyNetns->get())) {
      throw std::invalid_argument("the child is not in the namespace net.emptyNetns");
    }
    return std::make_unique<NoAttachment>();
  }
  RouteSocket inside(sandboxNetnsFd);
  bringUp(inside, "lo");
  return std::make_unique<NoAttachment>();
}

std::unique_ptr<NetworkAttachment> attachEgress(int sandboxNetnsFd, const EgressSpec& egress,
                                                const std::string& hostVethName) {
  checkLinkName(egress.bridge, "egress.bridge");
  checkLinkName(hostVethName, "hostVethName");
  AddrPtr bridgeAddress = parseCidr(egress.bridgeAddress, "egress.bridgeAddress");
  AddrPtr gateway = parseCidr(egress.bridgeAddress, "egress.bridgeAddress", true);
  AddrPtr sandboxAddress = parseCidr(egress.sandboxAddress, "egress.sandboxAddress");
  AddrPtr sandboxHost = parseCidr(egress.sandboxAddress, "egress.sandboxAddress", true);
  if (nl_addr_cmp(sandboxHost.get(), gateway.get()) == 0) {
    throw std::invalid_argument("egress.sandboxAddress is the bridge's own address");
  }

  RouteSocket host;
  RouteSocket inside(sandboxNetnsFd);
  int bridge = ensureBridge(host, egress.bridge, bridgeAddress.get());
  createVeth(host, hostVethName, bridge, sandboxNetnsFd);
  auto attachment = std::make_unique<VethAttachment>(
      hostVethName, "veth " + hostVethName + " on bridge " + egress.bridge + ", sandbox eth0 " +
                        egress.sandboxAddress + " via " + addrToString(gateway.get()));
  attachment->setIfindex(rtnl_link_get_ifindex(getLink(host, hostVethName).get()));
  configureSandboxSide(inside, sandboxAddress.get(), gateway.get());
  return attachment;
}

}  // namespace

std::unique_ptr<NetworkAttachment> configureNetwork(pid_t child, const NetSpec& net,
                                                    const std::string& hostVethName) {
  Fd sandboxNetns = openNetns("/proc/" + std::to_string(child) + "/ns/net");
  if (netnsIdOf(sandboxNetns.get()) == ownNetnsId()) {
    throw std::invalid_argument("configureNetwork: process " + std::to_string(child) +
                                " shares the caller's network namespace");
  }
  switch (net.mode) {
    case NetMode::kNone:
      return isolate(sandboxNetns.get(), net);
    case NetMode::kEgress:
      return attachEgress(sandboxNetns.get(), net.egress, hostVethName);
  }
  throw std::invalid_argument("configureNetwork: unknown NetMode");
}

// No helper process: thatchd's event loop may reap every child
// (waitpid(-1)), and forking a large parent costs a page-table copy. The
// calling thread alone visits the new namespace, for one request.
Fd makeEmptyNetns() {
  NetnsGuard fresh{NetnsGuard::Unshare{}};
  Fd netns = openNetns(kOwnNetns);
  RouteSocket inside;
  bringUp(inside, "lo");
  return netns;
}

NetnsGuard::NetnsGuard(int nsFd) : original_(openNetns(kOwnNetns)) {
  check(setns(nsFd, CLONE_NEWNET), "setns(CLONE_NEWNET)");
}

NetnsGuard::NetnsGuard(Unshare) : original_(openNetns(kOwnNetns)) {
  check(unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)");
}

NetnsGuard::~NetnsGuard() {
  if (setns(original_.get(), CLONE_NEWNET) == 0) return;
  std::fprintf(stderr, "thatch: setns back to the original network namespace: %s\n",
               std::strerror(errno));
  std::abort();
}

std::string egressAddress(const std::string& bridgeCidr, unsigned slot) {
  size_t slash = bridgeCidr.find('/');
  std::string base = bridgeCidr.substr(0, slash);
  int prefix = std::stoi(bridgeCidr.substr(slash + 1));
  in_addr addr;
  if (inet_pton(AF_INET, base.c_str(), &addr) != 1)
    throw std::invalid_argument("bad bridge address " + bridgeCidr);
  uint32_t hostBits = 32 - prefix;
  uint32_t size = hostBits >= 32 ? 0xffffffffu : (1u << hostBits);
  uint32_t network = ntohl(addr.s_addr) & ~(size - 1);
  uint32_t offset = 2 + slot % (size - 3);  // .0 network, .1 bridge, last broadcast
  addr.s_addr = htonl(network + offset);
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &addr, text, sizeof text);
  return std::string(text) + "/" + std::to_string(prefix);
}

}  // namespace sandbox
