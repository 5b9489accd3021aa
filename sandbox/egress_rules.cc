#include "sandbox/egress_rules.h"

#include <arpa/inet.h>

#include <charconv>
#include <stdexcept>

namespace sandbox {

namespace {

unsigned parseNumber(std::string_view text, unsigned most, std::string_view what,
                     std::string_view whole) {
  unsigned value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value > most)
    throw std::invalid_argument("'" + std::string(whole) + "': " + std::string(what) +
                                " must be a number from 0 to " + std::to_string(most));
  return value;
}

std::string allowMatch(const EgressAllow& allow) {
  std::string match = "ip daddr " + allow.address;
  if (allow.prefix != 32) match += "/" + std::to_string(allow.prefix);
  if (allow.port) match += " meta l4proto { tcp, udp } th dport " + std::to_string(allow.port);
  return match;
}

}  // namespace

EgressAllow parseEgressAllow(std::string_view text) {
  EgressAllow allow;
  if (text.find(':') != text.rfind(':'))
    throw std::invalid_argument("'" + std::string(text) +
                                "': egress is IPv4 only (sandboxes have no IPv6 route)");
  std::string_view rest = text;
  if (size_t colon = rest.find(':'); colon != std::string_view::npos) {
    allow.port =
        static_cast<uint16_t>(parseNumber(rest.substr(colon + 1), 65535, "the port", text));
    if (!allow.port)
      throw std::invalid_argument("'" + std::string(text) + "': the port must not be 0");
    rest = rest.substr(0, colon);
  }
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    allow.prefix = parseNumber(rest.substr(slash + 1), 32, "the prefix length", text);
    rest = rest.substr(0, slash);
  }
  in_addr address{};
  if (inet_pton(AF_INET, std::string(rest).c_str(), &address) != 1)
    throw std::invalid_argument("'" + std::string(text) +
                                "': expected ADDRESS[/PREFIX][:PORT] with an IPv4 address");
  uint32_t mask = allow.prefix ? ~uint32_t{0} << (32 - allow.prefix) : 0;
  if ((ntohl(address.s_addr) & ~mask) != 0)
    throw std::invalid_argument("'" + std::string(text) + "': the address has bits set past /" +
                                std::to_string(allow.prefix));
  char printed[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &address, printed, sizeof printed);
  allow.address = printed;
  return allow;
}

std::string egressTableName(std::string_view owner) {
  std::string name = "thatch_";
  for (char c : owner) name += (isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return name;
}

std::string egressRuleset(const std::string& table, const std::string& bridge,
                          const std::vector<EgressAllow>& allow) {
  const std::string from = "iifname \"" + bridge + "\" ";
  std::string allowed;
  for (const EgressAllow& entry : allow) allowed += "    " + from + allowMatch(entry) + " accept\n";
  return egressRulesetRemoval(table) + "table inet " + table +
         " {\n"
         "  chain input {\n"
         "    type filter hook input priority filter; policy accept;\n"
         "    " +
         from + "ct state established,related accept\n" + allowed + "    " + from +
         "drop\n"
         "  }\n"
         "  chain forward {\n"
         "    type filter hook forward priority filter; policy accept;\n" +
         allowed + "    " + from +
         "meta nfproto ipv6 drop\n"
         "    " +
         from +
         "ip daddr { 0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16, 224.0.0.0/3 } drop\n"
         "    " +
         from + "oifname \"" + bridge +
         "\" drop\n"
         "  }\n"
         "}\n"
         "table bridge " +
         table +
         " {\n"
         "  chain forward {\n"
         "    type filter hook forward priority filter; policy accept;\n"
         "    iifname \"" +
         kEgressVethPrefix +
         "*\" drop\n"
         "  }\n"
         "}\n";
}

std::string egressRulesetRemoval(const std::string& table) {
  // "add" first: deleting a table that is not there would fail the script.
  return "add table inet " + table + "\ndelete table inet " + table + "\n" + "add table bridge " +
         table + "\ndelete table bridge " + table + "\n";
}

}  // namespace sandbox
