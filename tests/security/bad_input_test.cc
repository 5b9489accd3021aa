// Hostile input through thatchd's API, as a client sends it: payloads
// nested past any parser's depth, not UTF-8 or over the limit; names that
// are too long or try to leave the registry; archives that try to leave
// their tree, hold links or devices, or inflate past their limits. Each
// gets a clear error, nothing is stored for a refused deploy, and thatchd
// keeps serving.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

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

// Deploys as a flood: a thatchd of its own, its state directory on a small
// tmpfs, so that a registry that kept what it must not fills it.
class Deploys : public testing_util::LeavesNothing {
 protected:
  void start(const std::string& toml, const std::string& tmpfsSize) {
    daemon_ = std::make_unique<testing_util::TestDaemon>(toml);
    ASSERT_EQ(daemon_->stop(), 0);
    tmpfs_ = std::make_unique<testing_util::TmpfsMount>(daemon_->stateDir(),
                                                        "size=" + tmpfsSize + ",mode=0711");
    daemon_->restart();
  }

  void TearDown() override {
    if (daemon_) {
      EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
    }
    daemon_.reset();
    tmpfs_.reset();
    LeavesNothing::TearDown();
  }

  std::unique_ptr<thatch::Thatch> connect() {
    return thatch::Thatch::connect(daemon_->socketPath());
  }

  // The entries of STATE/functions, those being deleted (.tmp-*) among them.
  std::set<std::string> functionsDirEntries() {
    std::set<std::string> names;
    for (const auto& entry :
         std::filesystem::directory_iterator(daemon_->stateDir() + "/functions"))
      names.insert(entry.path().filename().string());
    return names;
  }

  // Until the versions past retention are deleted (on a thread of thatchd's).
  bool waitForNoRemovals() {
    for (int i = 0; i < 6000; ++i) {
      bool pending = false;
      for (const std::string& name : functionsDirEntries()) pending |= name.rfind(".tmp-", 0) == 0;
      if (!pending) return true;
      usleep(10'000);
    }
    return false;
  }

  std::unique_ptr<testing_util::TestDaemon> daemon_;
  std::unique_ptr<testing_util::TmpfsMount> tmpfs_;
};

// 10,000 deploys of one function, from four clients at once, each calling
// it now and then: each deploy is a new version, the newest five stay
// ([registry] keep_versions), the others leave the disk (a 32 MiB tmpfs
// would not hold 10,000 versions); the function answers from its newest
// version throughout and after a restart.
TEST_F(Deploys, TenThousandOfOneFunctionKeepItsNewestVersionsOnly) {
  start("[registry]\nkeep_versions = 5\n", "32m");
  testing_util::TempDir code;
  testing_util::writeFile(code.path() + "/handler.py", kEcho);
  constexpr int kClients = 4, kEach = 2500;
  std::vector<std::future<std::string>> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.push_back(std::async(std::launch::async, [&]() -> std::string {
      auto client = thatch::Thatch::connect(daemon_->socketPath());
      for (int i = 1; i <= kEach; ++i) {
        thatch::FunctionInfo info = client->deploy("many", code.path());
        if (i % 500 != 0) continue;
        thatch::Result r = client->invoke("many", "[1]");
        if (r.status != Status::kOk || r.payload != "[1]" || r.version < info.version)
          return "deploy " + std::to_string(info.version) + ": " + r.errorMessage + " " +
                 r.payload + " from version " + std::to_string(r.version);
      }
      return "";
    }));
  }
  for (auto& client : clients) EXPECT_EQ(client.get(), "");
  // A version whose call still ran while others deployed outlives its
  // retention until the next deploy (docs/registry.md, "Retention"):
  // nothing runs now, so this one leaves exactly the newest five.
  EXPECT_EQ(connect()->deploy("many", code.path()).version, 10001u);
  std::vector<uint64_t> kept;
  for (const thatch::FunctionInfo& v : connect()->versions("many")) kept.push_back(v.version);
  EXPECT_EQ(kept, (std::vector<uint64_t>{9997, 9998, 9999, 10000, 10001}));
  EXPECT_TRUE(waitForNoRemovals()) << "versions past retention still being deleted";
  EXPECT_EQ(testing_util::directoryEntries(daemon_->stateDir() + "/functions/many"),
            (std::set<std::string>{"9997", "9998", "9999", "10000", "10001"}));
  EXPECT_LT(tmpfs_->usedBytes(), 1u << 20);
  thatch::Result r = connect()->invoke("many", "{}");
  EXPECT_EQ(r.status, Status::kOk) << r.errorMessage;
  EXPECT_EQ(r.version, 10001u);

  ASSERT_EQ(daemon_->stop(), 0) << daemon_->log();
  daemon_->restart();
  EXPECT_EQ(connect()->versions("many").size(), 5u);
  EXPECT_EQ(connect()->deploy("many", code.path()).version, 10002u);
  EXPECT_EQ(connect()->invoke("many", "[2]").payload, "[2]");
}

// Deploys of ever new functions until [registry] max_stored: the one over
// it is refused with what to do, nothing of it is stored, what was stored
// still serves, and a remove makes room.
TEST_F(Deploys, PastMaxStoredAreRefusedWithAClearError) {
  start("[registry]\nmax_stored = \"1MiB\"\n", "16m");
  testing_util::deploySource(*connect(), "kept", kEcho);
  testing_util::TempDir code;
  testing_util::writeFile(code.path() + "/handler.py", kEcho);
  std::string noise(300'000, '\0');
  std::mt19937_64 random(1);
  for (char& c : noise) c = static_cast<char>(random());  // incompressible
  testing_util::writeFile(code.path() + "/data.bin", noise);
  int deployed = 0;
  std::string refusal;
  for (; deployed < 10; ++deployed) {
    try {
      connect()->deploy("filler" + std::to_string(deployed), code.path());
    } catch (const thatch::Error& e) {
      refusal = e.what();
      break;
    }
  }
  EXPECT_EQ(deployed, 3);  // 3 x ~300 KiB and the echo function fit in 1 MiB, 4 do not
  EXPECT_NE(refusal.find("thatchd's registry is full"), std::string::npos) << refusal;
  EXPECT_NE(refusal.find("max_stored"), std::string::npos) << refusal;
  EXPECT_EQ(connect()->invoke("filler3", "{}").status, Status::kNotFound);
  EXPECT_EQ(connect()->invoke("kept", "[3]").payload, "[3]");
  EXPECT_TRUE(connect()->remove("filler0"));
  EXPECT_EQ(connect()->deploy("filler3", code.path()).version, 1u);
}

}  // namespace
