// The egress firewall a daemon owns (sandbox/egress_rules.h says what it
// does): loaded through libnftables when the daemon starts, before any
// sandbox, and removed when it stops, after the last one.
#pragma once

#include <string>
#include <vector>

#include "sandbox/egress_rules.h"

namespace thatchd {

class EgressFirewall {
 public:
  // Nothing at all when `enabled` is false (the operator's own rules
  // decide). Otherwise replaces any table of that name (a predecessor's,
  // left by a crash) with the firewall for `bridge`. Throws
  // std::runtime_error with nft's own message and what to do about it.
  EgressFirewall(bool enabled, std::string table, const std::string& bridge,
                 const std::vector<sandbox::EgressAllow>& allow);
  ~EgressFirewall();  // removes the table; a failure is said on stderr
  EgressFirewall(const EgressFirewall&) = delete;
  EgressFirewall& operator=(const EgressFirewall&) = delete;

 private:
  std::string table_;  // "" when not enabled
};

// Runs an nft script in one transaction; the error nft reports, or "".
std::string runNftScript(const std::string& script);

}  // namespace thatchd
