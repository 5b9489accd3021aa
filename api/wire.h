// Between api/thatch.capnp's structs and the C++ types on either side of
// the socket: thatchd's (supervisor::) and the public header's (thatch::).
// Their FunctionConfigs have the same fields, so one template serves both.
#pragma once

#include <capnp/blob.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "api/thatch.capnp.h"

namespace api {

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

// Config: supervisor::FunctionConfig or thatch::FunctionConfig.
template <typename Config>
Config configFromWire(thatch::api::FunctionConfig::Reader in) {
  using Network = decltype(Config::network);
  Config config;
  config.runtime = text(in.getRuntime());
  config.handler = text(in.getHandler());
  config.memoryBytes = in.getMemoryBytes();
  config.timeout = std::chrono::milliseconds(in.getTimeoutMs());
  config.concurrency = in.getConcurrency();
  for (thatch::api::EnvVar::Reader var : in.getEnv())
    config.env.emplace_back(text(var.getName()), text(var.getValue()));
  config.network =
      in.getNetwork() == thatch::api::NetworkAccess::EGRESS ? Network::kEgress : Network::kNone;
  config.raw = in.getRaw();
  return config;
}

// The timeout must fit the schema's 32 bits of milliseconds (the caller
// checks what it cannot vouch for).
template <typename Config>
void configToWire(const Config& in, thatch::api::FunctionConfig::Builder out) {
  using Network = decltype(Config::network);
  out.setRuntime(text(in.runtime));
  out.setHandler(text(in.handler));
  out.setMemoryBytes(in.memoryBytes);
  out.setTimeoutMs(static_cast<uint32_t>(in.timeout.count()));
  out.setConcurrency(in.concurrency);
  auto env = out.initEnv(in.env.size());
  for (size_t i = 0; i < in.env.size(); ++i) {
    env[i].setName(text(in.env[i].first));
    env[i].setValue(text(in.env[i].second));
  }
  out.setNetwork(in.network == Network::kEgress ? thatch::api::NetworkAccess::EGRESS
                                                : thatch::api::NetworkAccess::NONE);
  out.setRaw(in.raw);
}

}  // namespace api
