// The egress firewall's nft script (sandbox/egress_rules.h) as text; what it
// does to traffic is tests/security/egress_test.cc's business.

#include "sandbox/egress_rules.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace {

using sandbox::EgressAllow;
using sandbox::parseEgressAllow;

TEST(EgressRules, AllowEntriesAreAnAddressOrPrefixAndAPort) {
  EXPECT_EQ(parseEgressAllow("10.201.0.1:53"), (EgressAllow{"10.201.0.1", 32, 53}));
  EXPECT_EQ(parseEgressAllow("192.0.2.0/24"), (EgressAllow{"192.0.2.0", 24, 0}));
  EXPECT_EQ(parseEgressAllow("192.0.2.0/24:443"), (EgressAllow{"192.0.2.0", 24, 443}));
  EXPECT_EQ(parseEgressAllow("0.0.0.0/0"), (EgressAllow{"0.0.0.0", 0, 0}));
  EXPECT_EQ(parseEgressAllow("203.0.113.7"), (EgressAllow{"203.0.113.7", 32, 0}));
}

TEST(EgressRules, AMalformedAllowEntrySaysWhatIsWrong) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "expected ADDRESS[/PREFIX][:PORT]"},
      {"resolver:53", "expected ADDRESS[/PREFIX][:PORT]"},
      {"::1", "egress is IPv4 only"},
      {"fe80::1:80", "egress is IPv4 only"},
      {"10.0.0.1/33", "the prefix length must be a number from 0 to 32"},
      {"10.0.0.1/", "the prefix length must be a number"},
      {"10.0.0.1:0", "the port must not be 0"},
      {"10.0.0.1:65536", "the port must be a number from 0 to 65535"},
      {"10.0.0.1:53x", "the port must be a number"},
      {"10.0.0.1/24", "the address has bits set past /24"},
      {"10.0.0.1 ", "expected ADDRESS[/PREFIX][:PORT]"},
  };
  for (const auto& [text, message] : cases) {
    try {
      parseEgressAllow(text);
      ADD_FAILURE() << "'" << text << "' was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos)
          << "'" << text << "': " << e.what();
      EXPECT_EQ(std::string(e.what()).rfind("'" + std::string(text) + "'", 0), 0) << e.what();
    }
  }
}

TEST(EgressRules, TheTableIsNamedAfterItsDaemonsCgroup) {
  EXPECT_EQ(sandbox::egressTableName("thatchd"), "thatch_thatchd");
  EXPECT_EQ(sandbox::egressTableName("thatch/api-12-3"), "thatch_thatch_api_12_3");
}

TEST(EgressRules, TheScriptReplacesTheTableWithTheAllowListBeforeEveryDrop) {
  std::string script = sandbox::egressRuleset(
      "thatch_t", "thatch0", {parseEgressAllow("10.201.0.1:53"), parseEgressAllow("192.0.2.0/24")});
  // The old table goes first, in the same transaction.
  EXPECT_EQ(script.rfind(sandbox::egressRulesetRemoval("thatch_t"), 0), 0) << script;
  const std::string port =
      "iifname \"thatch0\" ip daddr 10.201.0.1 meta l4proto { tcp, udp } th "
      "dport 53 accept";
  const std::string prefix = "iifname \"thatch0\" ip daddr 192.0.2.0/24 accept";
  size_t input = script.find("chain input"), forward = script.find("chain forward");
  size_t bridge = script.find("table bridge thatch_t");
  ASSERT_NE(input, std::string::npos);
  ASSERT_NE(forward, std::string::npos);
  ASSERT_NE(bridge, std::string::npos);
  // In each inet chain, the allow list comes before the chain's first drop.
  for (auto [begin, end] : {std::pair{input, forward}, std::pair{forward, bridge}}) {
    std::string chain = script.substr(begin, end - begin);
    size_t firstDrop = chain.find(" drop");
    ASSERT_NE(firstDrop, std::string::npos) << chain;
    EXPECT_LT(chain.find(port), firstDrop) << chain;
    EXPECT_LT(chain.find(prefix), firstDrop) << chain;
  }
  std::string inputChain = script.substr(input, forward - input);
  EXPECT_NE(inputChain.find("iifname \"thatch0\" drop"), std::string::npos) << inputChain;
  std::string forwardChain = script.substr(forward, bridge - forward);
  EXPECT_NE(forwardChain.find("169.254.0.0/16"), std::string::npos);
  EXPECT_NE(forwardChain.find("meta nfproto ipv6 drop"), std::string::npos);
  EXPECT_NE(forwardChain.find("oifname \"thatch0\" drop"), std::string::npos);
  EXPECT_NE(
      script.find("iifname \"" + std::string(sandbox::kEgressVethPrefix) + "*\" drop", bridge),
      std::string::npos);
}

TEST(EgressRules, RemovalWorksWhetherOrNotTheTableIsThere) {
  EXPECT_EQ(sandbox::egressRulesetRemoval("thatch_t"),
            "add table inet thatch_t\ndelete table inet thatch_t\n"
            "add table bridge thatch_t\ndelete table bridge thatch_t\n");
}

}  // namespace
