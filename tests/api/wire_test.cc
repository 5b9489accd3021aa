// api/wire.h: thatch's own types and api/thatch.capnp's agree, value by
// value, and what only a newer peer knows arrives as the documented fallback.
#include "api/wire.h"

#include <capnp/message.h>
#include <capnp/schema.h>
#include <gtest/gtest.h>

#include <iterator>
#include <string>

namespace {

namespace wire = thatch::api;

// "outOfMemory" -> "out_of_memory"
std::string snakeCase(kj::StringPtr camel) {
  std::string out;
  for (char c : camel) {
    if (c >= 'A' && c <= 'Z') {
      out += '_';
      out += static_cast<char>(c - 'A' + 'a');
    } else {
      out += c;
    }
  }
  return out;
}

TEST(Wire, EveryStatusHasTheSchemasNameAndRoundTrips) {
  auto enumerants = capnp::Schema::from<wire::Status>().getEnumerants();
  ASSERT_EQ(enumerants.size(), std::size(thatch::kAllStatuses));
  for (thatch::Status status : thatch::kAllStatuses) {
    wire::Status onWire = api::statusToWire(status);
    EXPECT_EQ(snakeCase(enumerants[static_cast<uint16_t>(onWire)].getProto().getName()),
              thatch::statusName(status));
    EXPECT_EQ(api::statusFromWire(onWire), status) << thatch::statusName(status);
  }
}

TEST(Wire, AStatusOnlyANewerPeerKnowsIsCrashed) {
  EXPECT_EQ(api::statusFromWire(static_cast<wire::Status>(999)), thatch::Status::kCrashed);
}

TEST(Wire, EveryNetworkHasTheSchemasNameAndRoundTrips) {
  auto enumerants = capnp::Schema::from<wire::NetworkAccess>().getEnumerants();
  ASSERT_EQ(enumerants.size(), 2u);
  for (thatch::Network network : {thatch::Network::kNone, thatch::Network::kEgress}) {
    wire::NetworkAccess onWire = api::networkToWire(network);
    EXPECT_EQ(std::string(enumerants[static_cast<uint16_t>(onWire)].getProto().getName().cStr()),
              thatch::networkName(network));
    EXPECT_EQ(api::networkFromWire(onWire), network);
    EXPECT_EQ(thatch::networkNamed(thatch::networkName(network)), network);
  }
  EXPECT_EQ(api::networkFromWire(static_cast<wire::NetworkAccess>(7)), thatch::Network::kNone);
  EXPECT_EQ(thatch::networkNamed("bridge"), std::nullopt);
}

TEST(Wire, AFunctionConfigRoundTrips) {
  thatch::FunctionConfig config;
  config.runtime = "python3.11-numpy";
  config.handler = "pkg.mod.run";
  config.memoryBytes = 96ull << 20;
  config.timeout = std::chrono::milliseconds(1500);
  config.concurrency = 3;
  config.env = {{"A", "1"}, {"B", "x=y"}};
  config.network = thatch::Network::kEgress;
  config.raw = true;
  capnp::MallocMessageBuilder message;
  auto out = message.initRoot<wire::FunctionConfig>();
  api::configToWire(config, out);
  EXPECT_EQ(api::configFromWire(out.asReader()), config);
}

}  // namespace
