// api/thatch.capnp as its users meet it: the generated C++ and the `capnp`
// tool read and write the same named structs.
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "api/thatch.capnp.h"
#include "tests/testing.h"

namespace {

std::string schema() {
  return testing_util::testBinDir() + "/../../api/thatch.capnp";
}

// Runs `command` with `input` on its stdin; returns its stdout.
std::string run(const std::string& command, const std::string& input) {
  testing_util::TempDir dir;
  std::string in = dir.path() + "/in", out = dir.path() + "/out";
  testing_util::writeFile(in, input);
  int status = system((command + " < " + in + " > " + out).c_str());
  EXPECT_EQ(status, 0) << command;
  return testing_util::readFile(out);
}

TEST(ApiSchema, TheCapnpToolDecodesWhatCppWrites) {
  capnp::MallocMessageBuilder message;
  auto result = message.initRoot<thatch::api::InvokeResult>();
  result.setStatus(thatch::api::Status::OUT_OF_MEMORY);
  result.getError().setMessage("the sandbox ran out of memory");
  result.setCold(true);
  result.getTimings().setStartNs(2500000);
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  std::string bytes(reinterpret_cast<const char*>(words.begin()),
                    words.size() * sizeof(capnp::word));
  std::string text = run("capnp decode " + schema() + " InvokeResult", bytes);
  EXPECT_NE(text.find("status = outOfMemory"), std::string::npos) << text;
  EXPECT_NE(text.find("message = \"the sandbox ran out of memory\""), std::string::npos) << text;
  EXPECT_NE(text.find("startNs = 2500000"), std::string::npos) << text;
}

TEST(ApiSchema, CppReadsWhatTheCapnpToolEncodes) {
  std::string bytes = run("capnp encode " + schema() + " DeployRequest",
                          R"((name = "hello", code = (archive = "PK"), config = (timeoutMs = 500,)"
                          R"( env = [(name = "GREETING", value = "hi")], network = egress)))");
  ASSERT_EQ(bytes.size() % sizeof(capnp::word), 0u);
  kj::ArrayPtr<const capnp::word> words(reinterpret_cast<const capnp::word*>(bytes.data()),
                                        bytes.size() / sizeof(capnp::word));
  capnp::FlatArrayMessageReader reader(words);
  auto request = reader.getRoot<thatch::api::DeployRequest>();
  EXPECT_EQ(std::string(request.getName().cStr()), "hello");
  ASSERT_TRUE(request.getCode().isArchive());
  EXPECT_EQ(request.getCode().getArchive().size(), 2u);
  auto config = request.getConfig();
  EXPECT_EQ(std::string(config.getRuntime().cStr()), "python3.11");  // the schema's default
  EXPECT_EQ(std::string(config.getHandler().cStr()), "handler.handler");
  EXPECT_EQ(config.getTimeoutMs(), 500u);
  EXPECT_EQ(config.getNetwork(), thatch::api::NetworkAccess::EGRESS);
  ASSERT_EQ(config.getEnv().size(), 1u);
  EXPECT_EQ(std::string(config.getEnv()[0].getValue().cStr()), "hi");
}

}  // namespace
