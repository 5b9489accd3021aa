// What a new configuration changes, and whether a running thatchd may take
// it (SIGHUP, docs/configuration.md "Reloading"). A key reloads only where
// the table in config_reload.cc says so: its component reads the current
// config when it acts, or is told of a new one. Every other key (a new one
// too, until its component learns to) needs a restart.
#pragma once

#include <string>
#include <vector>

#include "supervisor/config.h"

namespace supervisor {

struct ConfigChange {
  std::vector<std::string> changed;      // every key whose value differs, in the file's order
  std::vector<std::string> needRestart;  // those of them that cannot change while running
  bool operator==(const ConfigChange&) const = default;
};

// The keys ("pool.max_warm", "runtime[0].zygotes", "access_key[1].secret")
// whose values differ between `running` and `next`; a key present in only
// one of them (an entry added or removed) counts as changed.
ConfigChange compareConfigs(const Config& running, const Config& next);

// Whether `key` (as compareConfigs names it) may change without a restart.
bool reloadable(const std::string& key);

}  // namespace supervisor
