// What a client of thatchd may do: the words of an `allow` list, for the
// Cap'n Proto API's [[client]] entries and the HTTP API's [[access_key]]
// entries alike (docs/api.md, "Access control"). A value: daemon/access.h
// builds the capabilities and answers from it.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace supervisor {

struct Grants {
  bool invokeAll = false;        // "invoke:*" (or the older "invoke")
  std::set<std::string> invoke;  // "invoke:NAME": these functions by name
  bool read = false;             // "read": see every function and layer
  bool deploy = false;           // "deploy" (or "write"): deploy and remove functions and layers
  bool stats = false;            // "admin" alone: the daemon's counters
  bool metrics = false;          // "metrics": the HTTP /metrics scrape

  bool mayInvoke(const std::string& function) const {
    return invokeAll || invoke.count(function) > 0;
  }
  // Whether `function` exists is told only to a client that may see it:
  // to any other, it does not.
  bool maySee(const std::string& function) const { return read || deploy || mayInvoke(function); }
  bool operator==(const Grants&) const = default;
};

// Adds what `word` allows to `into`; false if `word` is not one of the
// vocabulary's (the function name of "invoke:NAME" is checked too).
bool addGrant(std::string_view word, Grants& into);

// What `allow` lists; words that are not the vocabulary's grant nothing
// (the config's checks refuse them first).
Grants grantsOf(const std::vector<std::string>& allow);

// Everything ("admin"): a caller the socket's file mode let in, or the
// program that embeds thatchd.
Grants allGrants();

// The vocabulary, for messages: "invoke:NAME", "invoke:*", ...
extern const char kGrantWords[];

}  // namespace supervisor
