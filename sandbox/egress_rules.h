// The nftables ruleset that keeps egress sandboxes apart and off what the
// host does not mean them to reach (docs/network.md, "The firewall"): text
// only, for `nft` or libnftables to load. thatchd loads it at start and
// removes it at stop (daemon/egress_firewall.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox {

// How the host ends of egress sandboxes' veth pairs begin (thatchd names
// them "tv" and 13 hex digits): the bridge's rules find its sandboxes' ports
// by it.
inline constexpr char kEgressVethPrefix[] = "tv";

// One exception to the firewall: an IPv4 address or prefix, and one port
// (TCP and UDP) or every port.
struct EgressAllow {
  std::string address;  // dotted quad, the network's first address for a prefix
  unsigned prefix = 32;
  uint16_t port = 0;  // 0: every port and protocol
  bool operator==(const EgressAllow&) const = default;
};

// "ADDRESS[/PREFIX][:PORT]", e.g. "10.201.0.1:53" or "192.0.2.0/24".
// Throws std::invalid_argument saying what is wrong with `text`.
EgressAllow parseEgressAllow(std::string_view text);

// The table's name for a daemon whose cgroup subdirectory is `owner`:
// "thatch_" and the name with every character but letters and digits as
// '_'. One daemon's table is never another's.
std::string egressTableName(std::string_view owner);

// An nft script that replaces table `table` (families inet and bridge)
// with the firewall for `bridge`, in one transaction:
//   - frames that a sandbox's port (kEgressVethPrefix) sends to another
//     port of the bridge are dropped: sandboxes do not reach each other, by
//     any protocol (IPv6 link-local and ARP included);
//   - what comes in from the bridge to the host itself is dropped (its
//     services, on any of its addresses), replies to the host's own
//     connections excepted;
//   - what the host would forward from the bridge to loopback, link-local
//     (169.254.0.0/16: cloud metadata), multicast and reserved addresses,
//     and all of IPv6, is dropped, and so is what it would route back into
//     the bridge;
//   - `allow` goes before the drops, in both directions of its kind.
// NAT and forwarding stay the operator's.
std::string egressRuleset(const std::string& table, const std::string& bridge,
                          const std::vector<EgressAllow>& allow);

// An nft script that removes table `table` in both families, whether or
// not it is there.
std::string egressRulesetRemoval(const std::string& table);

}  // namespace sandbox
