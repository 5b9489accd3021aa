// Between api/thatch.capnp's structs and thatch's own types (thatch/types.h),
// for thatchd's server and the client library alike. Every enum converts
// with an exhaustive switch: a value added on one side and not the other
// does not compile.
#pragma once

#include <capnp/blob.h>

#include <string>

#include "api/thatch.capnp.h"
#include "thatch/types.h"

namespace thatch::wire {

// How thatchd's every refusal of an unknown function name begins: clients
// tell it from other refusals by it (docs/api.md).
inline constexpr char kNoSuchFunction[] = "no function named ";
// And of an unknown layer's.
inline constexpr char kNoSuchLayer[] = "no layer named ";
// thatchd's one answer to a wrong, unknown or missing token (daemon/access.h).
inline constexpr char kRefusedToken[] = "thatchd refused the token";

inline std::string text(capnp::Text::Reader t) {
  return std::string(t.cStr(), t.size());
}

inline capnp::Text::Reader text(const std::string& s) {
  return capnp::Text::Reader(s.data(), s.size());
}

inline std::string bytes(capnp::Data::Reader d) {
  return std::string(d.asChars().begin(), d.size());
}

inline capnp::Data::Reader bytes(const std::string& s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

thatch::api::Status statusToWire(thatch::Status status);
// A status this side does not know (a newer peer's) is kCrashed.
thatch::Status statusFromWire(thatch::api::Status status);

thatch::api::NetworkAccess networkToWire(thatch::Network network);
// An access this side does not know (a newer peer's) is kNone: the narrower.
thatch::Network networkFromWire(thatch::api::NetworkAccess network);

thatch::FunctionConfig configFromWire(thatch::api::FunctionConfig::Reader in);
// The timeout must fit the schema's 32 bits of milliseconds (the caller
// checks what it cannot vouch for).
void configToWire(const thatch::FunctionConfig& in, thatch::api::FunctionConfig::Builder out);

}  // namespace thatch::wire
