#include "daemon/egress_firewall.h"

#include <nftables/libnftables.h>

#include <cstdio>
#include <memory>
#include <stdexcept>

namespace thatchd {

std::string runNftScript(const std::string& script) {
  std::unique_ptr<nft_ctx, void (*)(nft_ctx*)> context(nft_ctx_new(NFT_CTX_DEFAULT), nft_ctx_free);
  if (!context) return "nft_ctx_new failed";
  nft_ctx_buffer_output(context.get());
  nft_ctx_buffer_error(context.get());
  if (nft_run_cmd_from_buffer(context.get(), script.c_str()) == 0) return "";
  std::string error = nft_ctx_get_error_buffer(context.get());
  while (!error.empty() && error.back() == '\n') error.pop_back();
  return error.empty() ? "nft failed without a message" : error;
}

EgressFirewall::EgressFirewall(bool enabled, std::string table, const std::string& bridge,
                               const std::vector<sandbox::EgressAllow>& allow) {
  if (!enabled) return;
  std::string error = runNftScript(sandbox::egressRuleset(table, bridge, allow));
  if (!error.empty())
    throw std::runtime_error("cannot install the egress firewall (nftables table " + table +
                             "): " + error +
                             "\n(it needs root and the kernel's nf_tables, with its inet and "
                             "bridge families; or set [network] firewall = false and filter the "
                             "sandboxes' traffic with the host's own rules, docs/network.md)");
  table_ = std::move(table);
}

EgressFirewall::~EgressFirewall() {
  if (table_.empty()) return;
  std::string error = runNftScript(sandbox::egressRulesetRemoval(table_));
  if (!error.empty())
    fprintf(stderr, "thatchd: cannot remove the egress firewall's table %s: %s\n", table_.c_str(),
            error.c_str());
}

}  // namespace thatchd
