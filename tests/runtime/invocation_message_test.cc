// The invocation message the supervisor sends a sandbox: what goes over the
// channel is the payload and nothing of the supervisor's memory beside it.
#include <capnp/serialize.h>
#include <gtest/gtest.h>

#include <string>

#include "runtime/channel_messages.h"
#include "runtime/runtime.capnp.h"

namespace runtime {
namespace {

// The serialized message, as the sandbox receives it.
std::string serialized(const std::string& payload) {
  capnp::MallocMessageBuilder message(64);
  InvocationRequest request;
  request.requestId = "inv-1";
  request.payload = payload;
  buildInvocation(message, request);
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

TEST(InvocationMessage, CarriesNoBytesFromPastThePayloadsEnd) {
  for (size_t size : {1u, 7u, 18u, 23u, 100u, 4097u}) {
    SCOPED_TRACE(size);
    // Bytes past the end of the string's contents, within its allocation:
    // what another invocation's payload may have left there.
    std::string payload(size + 16, 'S');
    payload.resize(size);
    for (char& c : payload) c = 'p';
    std::string wire = serialized(payload);
    size_t at = wire.find(payload);
    ASSERT_NE(at, std::string::npos);
    EXPECT_EQ(wire.find('S'), std::string::npos) << "heap bytes went out with the payload";
    // The message reads back as exactly the payload.
    auto words = kj::heapArray<capnp::word>(wire.size() / sizeof(capnp::word));
    memcpy(words.begin(), wire.data(), wire.size());
    capnp::FlatArrayMessageReader reader(words);
    auto read = reader.getRoot<wire::Invocation>().getPayload();
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(read.begin()), read.size()), payload);
  }
}

TEST(InvocationMessage, AWholeWordPayloadIsReferencedNotCopied) {
  std::string payload(64, 'w');
  capnp::MallocMessageBuilder message(64);
  InvocationRequest request;
  request.requestId = "inv-1";
  request.payload = payload;
  buildInvocation(message, request);
  auto read = message.getRoot<wire::Invocation>().asReader().getPayload();
  EXPECT_EQ(reinterpret_cast<const char*>(read.begin()), payload.data());
}

}  // namespace
}  // namespace runtime
