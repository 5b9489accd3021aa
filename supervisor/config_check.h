// Range and consistency checks of a Config, whatever built it: the file's
// reader or a program. Internal to supervisor/config*.cc; config.h is the
// interface (validateConfig).
#pragma once

#include <vector>

#include "supervisor/config.h"
#include "supervisor/config_keys.h"

namespace supervisor {

// Every issue with the values of `config`. `keys` says where the file set
// each key (issues carry its line) and which keys it failed to read (those
// are not checked again); empty for a config built by a program.
std::vector<ConfigIssue> checkConfig(const Config& config, const KeyInfo& keys);

}  // namespace supervisor
