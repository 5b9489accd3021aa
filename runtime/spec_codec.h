// sandbox::Spec <-> its wire form in a SpawnRequest. The seccomp program is
// not sent: the zygote compiles its own once at start-up.
#pragma once

#include <string>

#include "runtime/runtime.capnp.h"
#include "sandbox/spec.h"

namespace runtime {

struct SpawnNames {
  std::string cgroupName;    // unique among live sandboxes
  std::string hostVethName;  // egress only
};

void encodeSpec(const sandbox::Spec& spec, const SpawnNames& names, wire::SandboxSpec::Builder out);

// Throws std::invalid_argument for values out of range.
sandbox::Spec decodeSpec(wire::SandboxSpec::Reader in, SpawnNames* names);

}  // namespace runtime
