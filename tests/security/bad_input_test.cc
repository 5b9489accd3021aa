// Hostile input through thatchd's API, as a client sends it: payloads
// nested past any parser's depth, not UTF-8 or over the limit; names that
// are too long or try to leave the registry; archives that try to leave
// their tree, hold links or devices, or inflate past their limits. Each
// gets a clear error, nothing is stored for a refused deploy, and thatchd
// keeps serving.

#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <set>
#include <string>

#include "tests/daemon.h"
#include "tests/suite_daemon.h"
#include "tests/testing.h"
#include "thatch/thatch.h"

namespace {

using thatch::Status;

constexpr char kEcho[] = "def handler(event, context):\n    return event\n";

class BadInput : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_.start("[limits]\npayload = \"1MiB\"\narchive = \"1MiB\"\n");
    if (!daemon_) return;
    auto client = thatch::Thatch::connect(daemon_->socketPath());
    testing_util::deploySource(*client, "echo", kEcho);
  }
  static void TearDownTestSuite() { daemon_.stop(); }

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    client_ = thatch::Thatch::connect(daemon_->socketPath());
  }

  // thatchd still serves: the echo function answers.
  void TearDown() override {
    if (!client_) return;
    thatch::Result r = client_->invoke("echo", R"({"still": "here"})");
    EXPECT_EQ(r.status, Status::kOk) << r.errorMessage;
    EXPECT_EQ(r.payload, R"({"still":"here"})");
  }

  // The message of the Error a deploy of `path` as `name` throws, or
  // "deployed" when it does not.
  std::string deployError(const std::string& name, const std::string& path) {
    try {
      client_->deploy(name, path);
      return "deployed";
    } catch (const thatch::Error& e) {
      return e.what();
    }
  }

  static testing_util::SuiteDaemon daemon_;
  std::unique_ptr<thatch::Thatch> client_;
};

testing_util::SuiteDaemon BadInput::daemon_;

TEST_F(BadInput, JsonNestedPastThePythonParsersDepthIsABadRequest) {
  for (const char* open : {"[", "{\"a\":"}) {
    std::string payload;
    const int depth = 100'000;  // ~600 KB at most: within the payload limit
    for (int i = 0; i < depth; ++i) payload += open;
    payload += "1";
    payload += std::string(depth, open[0] == '[' ? ']' : '}');
    thatch::Result r = client_->invoke("echo", payload);
    EXPECT_EQ(r.status, Status::kBadRequest) << open;
    EXPECT_NE(r.errorMessage.find("recursion"), std::string::npos) << r.errorMessage;
  }
}

TEST_F(BadInput, APayloadThatIsNotUtf8IsABadRequest) {
  for (std::string payload : {std::string("\"\xff\xfe\""), std::string("{\"a\": \"\xc3\x28\"}"),
                              std::string("\"\xed\xa0\x80\""), std::string("\0", 1)}) {
    thatch::Result r = client_->invoke("echo", payload);
    EXPECT_EQ(r.status, Status::kBadRequest) << r.payload;
  }
}

TEST_F(BadInput, APayloadOverTheLimitIsRefusedBeforeAnySandboxSeesIt) {
  thatch::Result r = client_->invoke("echo", "\"" + std::string((1 << 20) + 1, 'x') + "\"");
  EXPECT_EQ(r.status, Status::kBadRequest);
  EXPECT_NE(r.errorMessage.find("exceeds 1048576 bytes"), std::string::npos) << r.errorMessage;
}

// A message past the connection's read limit (payload limit + 64 KiB) is
// refused from its segment table and closes that connection, whose client
// gets an error (docs/api.md, "Message size"); the next connection is
// served (TearDown).
TEST_F(BadInput, APayloadFarOverTheLimitClosesItsConnection) {
  EXPECT_THROW(client_->invoke("echo", "\"" + std::string(3 << 20, 'x') + "\""), thatch::Error);
  EXPECT_THROW(client_->invoke("echo", "[]"), thatch::Error);
  client_.reset();
  client_ = thatch::Thatch::connect(daemon_->socketPath());
}

TEST_F(BadInput, NamesThatAreTooLongOrLeaveTheRegistryAreRefused) {
  testing_util::TempDir code;
  testing_util::writeFile(code.path() + "/handler.py", kEcho);
  const std::pair<std::string, std::string> cases[] = {
      {std::string(65, 'a'), "is longer than 64 characters"},
      {std::string(100'000, 'a'), "is longer than 64 characters"},
      {"../escape", "only lowercase letters"},
      {"a/b", "only lowercase letters"},
      {".hidden", "only lowercase letters"},
      {"", "the function name is empty"},
      {std::string("nul\0byte", 8), "only lowercase letters"},
      {"caf\xc3\xa9", "only lowercase letters"},
  };
  for (const auto& [name, message] : cases) {
    std::string error = deployError(name, code.path());
    EXPECT_NE(error.find(message), std::string::npos) << name.substr(0, 20) << ": " << error;
  }
  for (const std::string& entry :
       testing_util::directoryEntries(daemon_->stateDir() + "/functions"))
    EXPECT_TRUE(entry == "echo" || entry == ".removed") << entry;
}

// Archives built by tests/fuzz/corpus/archive's seeds: each refused with
// what it did wrong, and nothing stored; the good ones deploy and run.
TEST_F(BadInput, ArchivesThatLeaveTheirTreeHoldLinksOrDevicesOrInflateAreRefused) {
  const std::string corpus = testing_util::repoRoot() + "/tests/fuzz/corpus/archive/";
  const std::pair<const char*, const char*> refused[] = {
      {"symlink-out.tar.gz", "escape"}, {"hardlink.tar.gz", "hard link"},
      {"device.tar.gz", "null"},        {"dotdot.tar", ".."},
      {"absolute.tar", "absolute"},     {"bomb.zip", "handler.py"},
  };
  for (const auto& [file, names] : refused) {
    std::string error = deployError("archived", corpus + file);
    EXPECT_NE(error.find(names), std::string::npos) << file << ": " << error;
  }
  EXPECT_EQ(client_->invoke("archived", "{}").status, Status::kNotFound);
  for (const char* file : {"hello.tar.gz", "hello.zip", "xz.tar.xz", "bz2.tar.bz2"}) {
    EXPECT_EQ(deployError("archived", corpus + file), "deployed") << file;
    thatch::Result r = client_->invoke("archived", "[1]");
    EXPECT_EQ(r.status, Status::kOk) << file << ": " << r.errorMessage;
    EXPECT_EQ(r.payload, "[1]") << file;
  }
  EXPECT_TRUE(client_->remove("archived"));
}

}  // namespace
