// api/wire.h: thatch's own types and api/thatch.capnp's agree, value by
// value, and what only a newer peer knows arrives as the documented fallback.
#include "api/wire.h"

#include <capnp/message.h>
#include <capnp/schema.h>
#include <gtest/gtest.h>

#include <iterator>
#include <string>

namespace {

namespace schema = thatch::api;

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
  auto enumerants = capnp::Schema::from<schema::Status>().getEnumerants();
  ASSERT_EQ(enumerants.size(), std::size(thatch::kAllStatuses));
  for (thatch::Status status : thatch::kAllStatuses) {
    schema::Status onWire = thatch::wire::statusToWire(status);
    EXPECT_EQ(snakeCase(enumerants[static_cast<uint16_t>(onWire)].getProto().getName()),
              thatch::statusName(status));
    EXPECT_EQ(thatch::wire::statusFromWire(onWire), status) << thatch::statusName(status);
  }
}

TEST(Wire, AStatusOnlyANewerPeerKnowsIsCrashed) {
  EXPECT_EQ(thatch::wire::statusFromWire(static_cast<schema::Status>(999)),
            thatch::Status::kCrashed);
}

TEST(Wire, EveryNetworkHasTheSchemasNameAndRoundTrips) {
  auto enumerants = capnp::Schema::from<schema::NetworkAccess>().getEnumerants();
  ASSERT_EQ(enumerants.size(), 2u);
  for (thatch::Network network : {thatch::Network::kNone, thatch::Network::kEgress}) {
    schema::NetworkAccess onWire = thatch::wire::networkToWire(network);
    EXPECT_EQ(std::string(enumerants[static_cast<uint16_t>(onWire)].getProto().getName().cStr()),
              thatch::networkName(network));
    EXPECT_EQ(thatch::wire::networkFromWire(onWire), network);
    EXPECT_EQ(thatch::networkNamed(thatch::networkName(network)), network);
  }
  EXPECT_EQ(thatch::wire::networkFromWire(static_cast<schema::NetworkAccess>(7)),
            thatch::Network::kNone);
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
  config.tmpNoexec = true;
  config.layers = {{"deps", 3}, {"shared", 1}};
  capnp::MallocMessageBuilder message;
  auto out = message.initRoot<schema::FunctionConfig>();
  thatch::wire::configToWire(config, out);
  EXPECT_EQ(thatch::wire::configFromWire(out.asReader()), config);
}

// A client from before layers sends none: the function has none.
TEST(Wire, AConfigWithoutLayersHasNone) {
  capnp::MallocMessageBuilder message;
  auto out = message.initRoot<schema::FunctionConfig>();
  thatch::wire::configToWire({}, out);
  EXPECT_FALSE(out.hasLayers());
  EXPECT_TRUE(thatch::wire::configFromWire(out.asReader()).layers.empty());
}

}  // namespace
