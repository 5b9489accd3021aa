// thatchd.toml's keys: one table whose rows each read and render one key,
// so that reading and rendering cannot drift apart. Internal to
// supervisor/config*.cc; config.h is the interface.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "supervisor/config.h"

namespace supervisor {

// The [[runtime]] array; its entries' keys are "runtime[N].KEY".
inline constexpr std::string_view kRuntimeKey = "runtime";
// The [[access_key]] array: "access_key[N].KEY".
inline constexpr std::string_view kAccessKeyKey = "access_key";
inline constexpr std::string_view kClientKey = "client";

// Where each key was found, and which keys could not be read (range checks
// skip those: their value is still the default, which would mislead).
struct KeyInfo {
  std::map<std::string, int> lines;
  std::set<std::string> unreadable;

  int lineOf(std::string key) const {
    // A key not in the file (a runtime's missing name) points at the
    // nearest enclosing table that is.
    while (true) {
      if (auto it = lines.find(key); it != lines.end()) return it->second;
      size_t cut = key.find_last_of(".[");
      if (cut == std::string::npos || cut == 0) return 0;
      key.resize(cut);
    }
  }
};

// Reads the TOML document `toml` into `config` (keys left out keep their
// values) and returns the issues with its keys and values, noting in `keys`
// where each key was. A syntax error stops the parse: it is thrown alone, as
// a ConfigError.
std::vector<ConfigIssue> readConfigToml(std::string_view toml, const std::string& sourceName,
                                        Config& config, KeyInfo& keys);

// Every key of `config` with its value as the file would hold it, in the
// file's order; "SECTION.KEY", "runtime[N].KEY", "access_key[N].KEY".
std::vector<std::pair<std::string, std::string>> renderKeys(const Config& config);

// A double as the rendered file holds it: the shortest text that reads back
// to the same value, always a TOML float.
std::string tomlFloat(double value);

}  // namespace supervisor
