// The API end to end: a real thatchd on its Unix socket, driven through the
// public library (include/thatch/thatch.h) and through raw bytes, with what
// it leaves on the host checked afterwards.
#include <capnp/rpc-twoparty.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <kj/async-io.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "api/thatch.capnp.h"
#include "sandbox/cgroup.h"
#include "tests/daemon.h"
#include "tests/suite_daemon.h"
#include "tests/testing.h"
#include "thatch/embedded.h"
#include "thatch/thatch.h"

namespace {

using namespace std::chrono_literals;
using testing_util::deploySource;
using testing_util::TestDaemon;
using thatch::Status;

using testing_util::example;
using testing_util::repoRoot;

// A deploy naming `directory` on thatchd's host, sent with Cap'n Proto
// directly (the library sends archives): "ok", or thatchd's refusal. Runs
// its own event loop, so not on a thread that has a Thatch.
std::string deployDirectoryRaw(const std::string& address, const std::string& directory) {
  auto io = kj::setupAsyncIo();
  try {
    auto connection = io.provider->getNetwork()
                          .parseAddress(kj::str(address.c_str()))
                          .wait(io.waitScope)
                          ->connect()
                          .wait(io.waitScope);
    capnp::TwoPartyClient client(*connection);
    auto thatch = client.bootstrap().castAs<thatch::api::Thatch>();
    auto request = thatch.deployRequest();
    request.setName("from-host");
    request.getCode().setDirectory(directory);
    request.send().wait(io.waitScope);
    return "ok";
  } catch (const kj::Exception& e) {
    std::string message = e.getDescription().cStr();
    std::string prefix = "remote exception: ";
    return message.rfind(prefix, 0) == 0 ? message.substr(prefix.size()) : message;
  }
}

// A connected Unix socket to `path` for raw-byte tests; -1 on failure.
int rawConnect(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Until the peer closes (true) or `timeout` passes (false).
bool waitForClose(int fd, std::chrono::milliseconds timeout) {
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buffer[4096];
  for (;;) {
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET;
  }
}

// One thatchd for the suite (starting one costs ~0.5 s), with small limits
// so that each outcome is cheap to provoke. Any call under 1 s is short
// enough to send another ahead behind it (the default is 1 ms, which a
// loaded host's calls may not be).
class ApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_.start(
        "[limits]\npids = 16\nresult = \"1MiB\"\narchive = \"4MiB\"\ntimeout = \"5s\"\n"
        "[pool]\nsend_ahead_under_us = 1000000\n");
  }
  static void TearDownTestSuite() { daemon_.stop(); }

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    client_ = thatch::Thatch::connect(daemon_->socketPath());
  }

  static testing_util::SuiteDaemon daemon_;
  std::unique_ptr<thatch::Thatch> client_;
};

testing_util::SuiteDaemon ApiTest::daemon_;

TEST_F(ApiTest, DeployThenInvokeColdThenWarm) {
  thatch::FunctionInfo info = client_->deploy("hello", example("hello"));
  EXPECT_EQ(info.name, "hello");
  EXPECT_GE(info.version, 1u);
  EXPECT_EQ(info.fileCount, 1u);
  EXPECT_EQ(info.config.handler, "handler.handler");

  thatch::Result first = client_->invoke("hello", R"({"name":"socket"})");
  ASSERT_EQ(first.status, Status::kOk) << first.errorMessage;
  EXPECT_EQ(first.payload, R"({"greeting":"hello, socket"})");
  EXPECT_TRUE(first.cold);
  EXPECT_EQ(first.version, info.version);
  EXPECT_GT(first.start.count(), 0);
  EXPECT_GT(first.run.count(), 0);

  thatch::Result second = client_->invoke("hello", "{}");
  ASSERT_EQ(second.status, Status::kOk) << second.errorMessage;
  EXPECT_EQ(second.payload, R"({"greeting":"hello, world"})");
  EXPECT_FALSE(second.cold);
  EXPECT_EQ(second.sandboxId, first.sandboxId);
}

TEST_F(ApiTest, ListInfoVersionsAndRemove) {
  client_->deploy("listed", example("echo"));
  thatch::FunctionConfig config;
  config.memoryBytes = 64ull << 20;
  config.timeout = 1500ms;
  config.env = {{"GREETING", "hi"}};
  client_->deploy("listed", example("echo"), config);

  std::vector<thatch::FunctionInfo> all = client_->list();
  auto listed = std::find_if(all.begin(), all.end(), [](auto& f) { return f.name == "listed"; });
  ASSERT_NE(listed, all.end());
  EXPECT_EQ(listed->version, 2u);
  EXPECT_EQ(listed->config.memoryBytes, 64ull << 20);
  EXPECT_EQ(listed->config.timeout, 1500ms);
  EXPECT_EQ(listed->config.env, config.env);

  std::vector<thatch::FunctionInfo> versions = client_->versions("listed");
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(versions[0].version, 1u);
  EXPECT_EQ(versions[0].config.memoryBytes, 0u);
  EXPECT_EQ(client_->info("listed").version, 2u);

  EXPECT_EQ(client_->invoke("listed", "[1]").payload, "[1]");
  EXPECT_TRUE(client_->remove("listed"));
  EXPECT_FALSE(client_->remove("listed"));
  thatch::Result gone = client_->invoke("listed", "{}");
  EXPECT_EQ(gone.status, Status::kNotFound);
  EXPECT_NE(gone.errorMessage.find("'listed'"), std::string::npos) << gone.errorMessage;
  for (auto lookup : {std::function<void()>([&] { client_->info("listed"); }),
                      std::function<void()>([&] { client_->versions("listed"); }),
                      std::function<void()>([&] { client_->prewarm("listed", 1); })}) {
    try {
      lookup();
      ADD_FAILURE() << "a removed function was found";
    } catch (const thatch::Error& e) {
      EXPECT_EQ(e.kind(), thatch::Error::Kind::kNotFound) << e.what();
      EXPECT_EQ(std::string(e.what()), "no function named 'listed'");
    }
  }
}

TEST_F(ApiTest, LayersArePublishedUsedAndRemovedOnlyWhenUnused) {
  testing_util::TempDir layer;
  std::filesystem::create_directories(layer.path() + "/data");
  testing_util::writeFile(layer.path() + "/data/word.txt", "from a layer");
  thatch::LayerInfo published = client_->publishLayer("api-data", layer.path());
  EXPECT_EQ(published.name, "api-data");
  EXPECT_EQ(published.version, 1u);
  EXPECT_EQ(published.fileCount, 1u);
  EXPECT_EQ(published.codeBytes, 12u);
  EXPECT_EQ(client_->publishLayer("api-data", layer.path()).version, 2u);
  std::vector<thatch::LayerInfo> all = client_->listLayers();
  auto listed = std::find_if(all.begin(), all.end(), [](auto& l) { return l.name == "api-data"; });
  ASSERT_NE(listed, all.end());
  EXPECT_EQ(listed->version, 2u);
  ASSERT_EQ(client_->layerVersions("api-data").size(), 2u);
  EXPECT_EQ(client_->layerVersions("api-data")[0].createdUnixMs, published.createdUnixMs);

  testing_util::TempDir code;
  testing_util::writeFile(code.path() + "/handler.py",
                          "def handler(event, context):\n"
                          "    return open('/opt/data/word.txt').read()\n");
  thatch::FunctionConfig config;
  config.layers = {{"api-data", 1}};
  EXPECT_EQ(client_->deploy("api-layered", code.path(), config).config.layers, config.layers);
  thatch::Result result = client_->invoke("api-layered", "{}");
  ASSERT_EQ(result.status, Status::kOk) << result.errorMessage << result.traceback;
  EXPECT_EQ(result.payload, R"("from a layer")");

  config.layers = {{"api-data", 1}, {"api-nothing", 1}};
  try {
    client_->deploy("api-layered", code.path(), config);
    ADD_FAILURE() << "a layer that is not stored was accepted";
  } catch (const thatch::Error& e) {
    EXPECT_EQ(e.kind(), thatch::Error::Kind::kRefused);
    EXPECT_EQ(std::string(e.what()), "there is no layer named 'api-nothing'");
  }
  EXPECT_EQ(client_->versions("api-layered").size(), 1u);
  try {
    client_->removeLayer("api-data");
    ADD_FAILURE() << "a layer in use was removed";
  } catch (const thatch::Error& e) {
    EXPECT_EQ(e.kind(), thatch::Error::Kind::kRefused);
    EXPECT_EQ(std::string(e.what()).rfind("layer 'api-data' is used by function 'api-layered'", 0),
              0u)
        << e.what();
  }
  EXPECT_TRUE(client_->remove("api-layered"));
  EXPECT_TRUE(client_->removeLayer("api-data"));
  EXPECT_FALSE(client_->removeLayer("api-data"));
  try {
    client_->layerVersions("api-data");
    ADD_FAILURE() << "a removed layer was found";
  } catch (const thatch::Error& e) {
    EXPECT_EQ(e.kind(), thatch::Error::Kind::kNotFound);
    EXPECT_EQ(std::string(e.what()), "no layer named 'api-data'");
  }
  try {
    client_->publishLayer("Bad Layer", layer.path());
    ADD_FAILURE() << "a bad layer name was accepted";
  } catch (const thatch::Error& e) {
    EXPECT_EQ(e.kind(), thatch::Error::Kind::kRefused);
    EXPECT_NE(std::string(e.what()).find("layer name 'Bad Layer'"), std::string::npos) << e.what();
  }
  // Published again, the numbers go on.
  EXPECT_EQ(client_->publishLayer("api-data", layer.path()).version, 3u);
  EXPECT_TRUE(client_->removeLayer("api-data"));
}

TEST_F(ApiTest, EveryStatusArrivesOverTheSocket) {
  client_->deploy("raises", example("raises"));
  thatch::Result raised = client_->invoke("raises", "{}");
  EXPECT_EQ(raised.status, Status::kHandlerError);
  EXPECT_FALSE(raised.errorType.empty());
  EXPECT_NE(raised.traceback.find("Traceback"), std::string::npos) << raised.traceback;

  client_->deploy("echo", example("echo"));
  EXPECT_EQ(client_->invoke("echo", "{not json").status, Status::kBadRequest);

  thatch::FunctionConfig quick;
  quick.timeout = 300ms;
  client_->deploy("spins", example("spins"), quick);
  thatch::Result spun = client_->invoke("spins", "{}");
  EXPECT_EQ(spun.status, Status::kTimeout) << spun.errorMessage;

  thatch::FunctionConfig small;
  small.memoryBytes = 48ull << 20;
  deploySource(*client_, "hog",
               "def handler(event, context):\n    return len(b'x' * (256 << 20))\n", small);
  EXPECT_EQ(client_->invoke("hog", "{}").status, Status::kOutOfMemory);

  deploySource(*client_, "forkbomb", testing_util::kForkBombHandler);
  EXPECT_EQ(client_->invoke("forkbomb", "{}").status, Status::kTooManyProcesses);

  deploySource(*client_, "big", "def handler(event, context):\n    return 'x' * (2 << 20)\n");
  EXPECT_EQ(client_->invoke("big", "{}").status, Status::kResultTooLarge);

  client_->deploy("segfault", example("segfault"));
  EXPECT_EQ(client_->invoke("segfault", "{}").status, Status::kCrashed);

  deploySource(*client_, "broken", "import does_not_exist\n");
  thatch::Result broken = client_->invoke("broken", "{}");
  EXPECT_EQ(broken.status, Status::kStartFailed);
  EXPECT_NE(broken.errorMessage.find("does_not_exist"), std::string::npos);

  EXPECT_EQ(client_->invoke("never-deployed", "{}").status, Status::kNotFound);

  // Overloaded: one at a time, no queue, and two calls in flight.
  thatch::FunctionConfig single;
  single.concurrency = 1;
  single.timeout = 2s;
  deploySource(*client_, "slow",
               "import time\ndef handler(event, context):\n    time.sleep(0.5)\n    return 1\n",
               single);
  EXPECT_EQ(client_->invoke("slow", "{}").status, Status::kOk);  // warm, so both would fit
  // The daemon's queue is 64 long: fill it, and one more is refused.
  std::vector<kj::Promise<thatch::Result>> calls;
  for (int i = 0; i < 66; ++i) calls.push_back(client_->invokeAsync("slow", "{}"));
  std::map<Status, int> counts;
  for (auto& call : calls) counts[call.wait(client_->waitScope()).status]++;
  EXPECT_GE(counts[Status::kOverloaded], 1) << "the 66th call over a queue of 64";
  EXPECT_GE(counts[Status::kOk], 2);
}

TEST_F(ApiTest, TheSocketIsForRootAndItsGroup) {
  struct stat st;
  ASSERT_EQ(stat(daemon_->socketPath().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  client_->ping();
  // Each connection is logged with the peer's uid and pid.
  std::string expected = "peer=\"uid 0 pid " + std::to_string(getpid()) + "\"";
  EXPECT_NE(daemon_->log().find(expected), std::string::npos) << daemon_->log();
}

TEST_F(ApiTest, BadDeploysAreRefusedWithTheReason) {
  try {
    client_->deploy("Bad Name", example("hello"));
    ADD_FAILURE() << "a bad name was accepted";
  } catch (const thatch::Error& e) {
    EXPECT_EQ(e.kind(), thatch::Error::Kind::kRefused);
    EXPECT_NE(std::string(e.what()).find("Bad Name"), std::string::npos) << e.what();
  }
  thatch::FunctionConfig config;
  config.runtime = "cobol";
  try {
    client_->deploy("x", example("hello"), config);
    ADD_FAILURE() << "an unknown runtime was accepted";
  } catch (const thatch::Error& e) {
    EXPECT_NE(std::string(e.what()).find("runtime 'cobol' is not one of"), std::string::npos)
        << e.what();
  }
  // Over limits.archive (4 MiB): incompressible bytes.
  testing_util::TempDir code;
  std::string noise(5 << 20, 0);
  uint32_t x = 12345;
  for (char& c : noise) c = static_cast<char>((x = x * 1103515245 + 12345) >> 24);
  testing_util::writeFile(code.path() + "/handler.py", "def handler(e, c):\n    return 1\n");
  testing_util::writeFile(code.path() + "/noise.bin", noise);
  try {
    client_->deploy("noisy", code.path());
    ADD_FAILURE() << "an archive over the limit was accepted";
  } catch (const thatch::Error& e) {
    EXPECT_NE(std::string(e.what()).find("over the limit of 4MiB"), std::string::npos) << e.what();
  }
  try {
    client_->deploy("missing", "/nonexistent/code");
    ADD_FAILURE() << "a missing path was accepted";
  } catch (const thatch::Error& e) {
    EXPECT_EQ(e.kind(), thatch::Error::Kind::kLocal);
  }
  client_->ping();  // the connection survived every refusal
}

TEST_F(ApiTest, GarbageAndOversizedMessagesCloseOnlyThatConnection) {
  client_->deploy("echo", example("echo"));
  // Random bytes: not a Cap'n Proto message.
  int garbage = rawConnect(daemon_->socketPath());
  ASSERT_GE(garbage, 0);
  std::string junk(4096, 0);
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>(i * 7919);
  ASSERT_EQ(write(garbage, junk.data(), junk.size()), ssize_t(junk.size()));
  EXPECT_TRUE(waitForClose(garbage, 5000ms));
  close(garbage);
  // A segment table announcing 2^31 words: over the traversal limit, refused
  // before anything is allocated.
  int huge = rawConnect(daemon_->socketPath());
  ASSERT_GE(huge, 0);
  uint32_t header[2] = {0, 0x7fffffff};
  ASSERT_EQ(write(huge, header, sizeof header), ssize_t(sizeof header));
  EXPECT_TRUE(waitForClose(huge, 5000ms));
  close(huge);
  // A message cut short, then the connection closed.
  int truncated = rawConnect(daemon_->socketPath());
  ASSERT_GE(truncated, 0);
  uint32_t partial[3] = {0, 100, 0};
  ASSERT_EQ(write(truncated, partial, sizeof partial), ssize_t(sizeof partial));
  close(truncated);
  // Many connections that say nothing and go.
  for (int i = 0; i < 200; ++i) {
    int fd = rawConnect(daemon_->socketPath());
    ASSERT_GE(fd, 0);
    close(fd);
  }
  EXPECT_EQ(client_->invoke("echo", "\"still here\"").payload, "\"still here\"");
}

TEST_F(ApiTest, APayloadOverTheLimitIsABadRequest) {
  client_->deploy("echo", example("echo"));
  std::string payload = "\"" + std::string((6 << 20) + 10, 'a') + "\"";
  thatch::Result result = client_->invoke("echo", payload);
  EXPECT_EQ(result.status, Status::kBadRequest);
  EXPECT_NE(result.errorMessage.find("exceeds"), std::string::npos) << result.errorMessage;
}

// The count of sandboxes killed because their caller went away.
uint64_t cancelledKills(thatch::Thatch& client) {
  auto kills = client.stats().killsByReason;
  return kills.count("cancelled") ? kills["cancelled"] : 0;
}

using testing_util::eventually;
using testing_util::processesNamed;

// The host process of a running kNamingHandler's sandbox, once it has
// named itself `name` (running `meanwhile` while it waits); -1 if it never
// did.
pid_t waitUntilRunning(const std::string& name, const std::function<void()>& meanwhile = {}) {
  std::vector<pid_t> pids;
  eventually([&] {
    if (meanwhile) meanwhile();
    pids = processesNamed(name);
    return !pids.empty();
  });
  return pids.empty() ? -1 : pids[0];
}

TEST_F(ApiTest, AClientThatHangsUpCancelsItsInvocation) {
  thatch::FunctionConfig patient;
  patient.timeout = 60s;
  deploySource(*client_, "named-spinner", testing_util::kNamingHandler, patient);
  uint64_t before = cancelledKills(*client_);
  std::string name = testing_util::uniqueProcessName();
  client_.reset();  // a forked child must not inherit this thread's event loop
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      auto caller = thatch::Thatch::connect(daemon_->socketPath());
      caller->invokeAsync("named-spinner", testing_util::namingEvent(name, "spin"))
          .wait(caller->waitScope());
    } catch (...) {
    }
    _exit(0);
  }
  // Once its sandbox spins, the caller goes: no goodbye, the kernel closes
  // its socket.
  pid_t sandbox = waitUntilRunning(name);
  std::string cgroup = sandbox > 0 ? testing_util::memoryCgroupOf(sandbox) : "";
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  ASSERT_GT(sandbox, 0) << "the invocation never ran";
  ASSERT_FALSE(cgroup.empty());
  client_ = thatch::Thatch::connect(daemon_->socketPath());
  EXPECT_TRUE(eventually([&] { return cancelledKills(*client_) == before + 1; }))
      << "the spinning invocation outlived its caller";
  EXPECT_TRUE(eventually([&] { return processesNamed(name).empty(); })) << "its sandbox runs on";
  EXPECT_TRUE(eventually([&] { return !testing_util::exists(cgroup); }))
      << "its cgroup (and what may be left in it) is still there: " << cgroup;
}

TEST_F(ApiTest, DroppingTheCallCancelsIt) {
  thatch::FunctionConfig patient;
  patient.timeout = 60s;
  deploySource(*client_, "named-spinner", testing_util::kNamingHandler, patient);
  uint64_t before = cancelledKills(*client_);
  std::string name = testing_util::uniqueProcessName();
  std::string cgroup;
  {
    auto call = client_->invokeAsync("named-spinner", testing_util::namingEvent(name, "spin"));
    pid_t sandbox = waitUntilRunning(name, [&] { client_->waitScope().poll(); });
    ASSERT_GT(sandbox, 0) << "the invocation never ran";
    cgroup = testing_util::memoryCgroupOf(sandbox);
    ASSERT_FALSE(cgroup.empty());
  }  // dropped: Cap'n Proto sends a Finish, and thatchd gives up the call
  EXPECT_TRUE(eventually([&] { return cancelledKills(*client_) == before + 1; }));
  EXPECT_TRUE(eventually([&] { return processesNamed(name).empty(); })) << "its sandbox runs on";
  EXPECT_TRUE(eventually([&] { return !testing_util::exists(cgroup); })) << cgroup;
}

// 64 clients, each on its own connection and thread, 1,000 calls each:
// every answer is the one its call asked for (the echo of its own payload),
// and thatchd counted each call once.
TEST_F(ApiTest, SixtyFourClientsGetEveryResultExactlyOnce) {
  thatch::FunctionConfig config;
  config.concurrency = 16;
  client_->deploy("echo64", example("echo"), config);
  constexpr int kClients = 64, kCalls = 1000;
  std::atomic<int> wrong{0}, failed{0};
  thatch::Stats before = client_->stats();
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      try {
        auto client = thatch::Thatch::connect(daemon_->socketPath());
        // One call in flight per client: 64 in all, within the function's
        // concurrency (16) and the queue (64) behind it.
        for (int i = 0; i < kCalls; ++i) {
          std::string sent = "[" + std::to_string(c) + "," + std::to_string(i) + "]";
          thatch::Result result = client->invoke("echo64", sent);
          if (result.status != Status::kOk || result.payload != sent) {
            if (wrong++ == 0)
              ADD_FAILURE() << "sent " << sent << ", got " << thatch::statusName(result.status)
                            << " " << result.payload << " " << result.errorMessage;
          }
        }
      } catch (const std::exception& e) {
        if (failed++ == 0) ADD_FAILURE() << "client " << c << ": " << e.what();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  thatch::Stats stats = client_->stats();
  EXPECT_EQ(stats.invocationsByStatus["ok"] - before.invocationsByStatus["ok"],
            uint64_t(kClients * kCalls));
  EXPECT_LE(stats.liveSandboxes, 16u + 8u) << "more sandboxes than the concurrency allows";
  // 48 wait behind the 16 running: most were sent ahead into a busy sandbox
  // (docs/thatching.md), and each result above still went to its own caller.
  EXPECT_GT(stats.sentAhead - before.sentAhead, uint64_t(kClients * kCalls / 4));
  EXPECT_LE(stats.sentAheadStarted - before.sentAheadStarted, stats.sentAhead - before.sentAhead);
}

// One client's calls back to back: the sandbox polls between them and
// thatchd polls for each answer, which comes through the sandbox's shared
// page (supervisor/busy_poll.h) when it fits, else through its channel.
// Every result is its own call's, whichever way it came.
// The shared answer page (runtime/shared_answer.h), forced: a thatchd of
// its own watches every answer's page and polls for it however long it
// takes ([testing] answer_page_always), so that these tests do not depend
// on calls landing within the busy-polling window of each other.
class SharedPageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    daemon_ = std::make_unique<TestDaemon>("[testing]\nanswer_page_always = true\n");
    client_ = thatch::Thatch::connect(daemon_->socketPath());
  }
  void TearDown() override {
    if (!daemon_) return;
    client_.reset();
    EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
  }

  std::unique_ptr<TestDaemon> daemon_;
  std::unique_ptr<thatch::Thatch> client_;
};

TEST_F(SharedPageTest, EveryAnswerThatFitsComesThroughThePage) {
  client_->deploy("echo-page", example("echo"));
  thatch::Stats before = client_->stats();
  constexpr int kCalls = 2000;
  int wrong = 0;
  for (int i = 0; i < kCalls; ++i) {
    // Every tenth is larger than the page (64 KiB): it takes the channel.
    std::string sent =
        "[" + std::to_string(i) + ",\"" + std::string(i % 10 == 0 ? 100'000 : 16, 'x') + "\"]";
    thatch::Result result = client_->invoke("echo-page", sent);
    if ((result.status != Status::kOk || result.payload != sent) && wrong++ == 0)
      ADD_FAILURE() << "call " << i << ": " << thatch::statusName(result.status) << " "
                    << result.payload.substr(0, 80) << " " << result.errorMessage;
  }
  EXPECT_EQ(wrong, 0);
  thatch::Stats after = client_->stats();
  EXPECT_EQ(after.answeredInPage - before.answeredInPage, uint64_t(kCalls - kCalls / 10));
}

// A handler that finds its sandbox's shared answer page in its own address
// space and marks it answered, with a length past the page (with ctypes,
// as any code in the sandbox could), when asked to.
constexpr char kScribbler[] = R"PY(
import ctypes
def handler(event, context):
    if not event.get("scribble"):
        return {"scribbled": False}
    for line in open("/proc/self/maps"):
        if "thatch-answer" in line:
            header = (2).to_bytes(4, "little") + (1 << 30).to_bytes(4, "little")
            ctypes.memmove(int(line.split("-")[0], 16), header, len(header))
            return {"scribbled": True}
    return {"page": "not found"}
)PY";

// The scribble is what thatchd reads: that call is a crash, its sandbox is
// not used again, and the next calls are served.
TEST_F(SharedPageTest, ASandboxThatScribblesOnItsPageSpoilsOnlyItsOwnAnswer) {
  deploySource(*client_, "scribbler", kScribbler);
  thatch::Result first = client_->invoke("scribbler", "{}");
  ASSERT_EQ(first.status, Status::kOk) << first.errorMessage;
  thatch::Result spoiled = client_->invoke("scribbler", R"({"scribble": true})");
  EXPECT_EQ(spoiled.status, Status::kCrashed) << thatch::statusName(spoiled.status);
  EXPECT_NE(spoiled.errorMessage.find("answer in its shared page is not valid"), std::string::npos)
      << spoiled.errorMessage;
  EXPECT_EQ(spoiled.sandboxId, first.sandboxId) << "the first call's sandbox was warm";
  thatch::Result next = client_->invoke("scribbler", "{}");
  EXPECT_EQ(next.status, Status::kOk) << next.errorMessage;
  EXPECT_EQ(next.payload, R"({"scribbled":false})");
  EXPECT_NE(next.sandboxId, spoiled.sandboxId);
  EXPECT_EQ(client_->invoke("scribbler", "{}").status, Status::kOk);
}

TEST_F(ApiTest, StatsAddUp) {
  client_->deploy("hello", example("hello"));
  thatch::Stats before = client_->stats();
  for (int i = 0; i < 5; ++i) ASSERT_EQ(client_->invoke("hello", "{}").status, Status::kOk);
  thatch::Stats after = client_->stats();
  EXPECT_EQ(after.invocationsByStatus["ok"], before.invocationsByStatus["ok"] + 5);
  EXPECT_EQ(after.coldStarts + after.warmStarts, before.coldStarts + before.warmStarts + 5);
  ASSERT_EQ(after.histograms.count("run"), 1u);
  uint64_t runs = 0;
  for (uint64_t n : after.histograms["run"]) runs += n;
  EXPECT_GE(runs, 5u);
}

TEST_F(ApiTest, PrewarmStartsSandboxesThatTheNextCallsUse) {
  thatch::FunctionConfig config;
  config.concurrency = 4;
  client_->deploy("warmed", example("hello"), config);
  EXPECT_EQ(client_->prewarm("warmed", 3), 3u);
  EXPECT_EQ(client_->prewarm("warmed", 3), 0u) << "three were already warm";
  thatch::Result result = client_->invoke("warmed", "{}");
  EXPECT_EQ(result.status, Status::kOk);
  EXPECT_FALSE(result.cold);
  EXPECT_THROW(client_->prewarm("nobody", 1), thatch::Error);
}

// thatchd's own lifecycle, each with a daemon of its own.
class ApiDaemonTest : public testing_util::LeavesNothing {};

TEST_F(ApiDaemonTest, NoDaemonIsAOneLineConnectError) {
  testing_util::TempDir dir;
  try {
    thatch::Thatch::connect(dir.path() + "/none.sock");
    ADD_FAILURE() << "connected to nothing";
  } catch (const thatch::Error& e) {
    EXPECT_EQ(e.kind(), thatch::Error::Kind::kConnect);
    EXPECT_EQ(std::string(e.what()),
              "cannot connect to " + dir.path() + "/none.sock: no such file — is thatchd running?");
  }
}

// A thatchd whose zygote cannot start exits at start-up with the reason, and
// what it created (its cgroup subdirectory) does not outlive it (TearDown
// compares the cgroups).
TEST_F(ApiDaemonTest, AZygoteThatCannotStartStopsThatchdCleanly) {
  try {
    TestDaemon daemon("zygote = \"/bin/false\"\n");
    ADD_FAILURE() << "thatchd started without a zygote";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("exited at start"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("thatch-zygote (python3.11) exited during start-up"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(ApiDaemonTest, ASecondDaemonOnTheSameSocketIsRefused) {
  TestDaemon first;
  testing_util::TempDir dir;
  testing_util::writeFile(dir.path() + "/second.toml", "state_dir = \"" + dir.path() +
                                                           "/state\"\nsocket = \"" +
                                                           first.socketPath() +
                                                           "\"\ncgroup_subdir = \"thatch/second\"\n"
                                                           "[[runtime]]\nname = \"python3.11\"\n");
  testing_util::CommandResult second = testing_util::run(
      {testing_util::testBinDir() + "/../bin/thatchd", "--config", dir.path() + "/second.toml"});
  EXPECT_EQ(second.exitCode, 1);
  EXPECT_NE(second.err.find("another thatchd is serving on " + first.socketPath()),
            std::string::npos)
      << second.err;
  thatch::Thatch::connect(first.socketPath())->ping();  // the first one is untouched
}

TEST_F(ApiDaemonTest, AStaleSocketFileIsReplacedAndRemovedOnStop) {
  testing_util::TempDir dir;
  chmod(dir.path().c_str(), 0711);
  // A socket file nobody listens on, as a thatchd killed with SIGKILL leaves.
  std::string path = dir.path() + "/stale.sock";
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  close(fd);
  {
    TestDaemon daemon("", "", path);
    thatch::Thatch::connect(path)->ping();
    ASSERT_EQ(daemon.stop(), 0);
  }
  EXPECT_FALSE(testing_util::exists(path)) << "thatchd left its socket behind";
}

// The invocation runs until the test releases it, after thatchd has
// begun to drain.
TEST_F(ApiDaemonTest, AnInvocationInFlightAtSigtermGetsItsResult) {
  TestDaemon daemon;
  auto client = thatch::Thatch::connect(daemon.socketPath());
  deploySource(*client, "held", testing_util::kNamingHandler);
  std::string name = testing_util::uniqueProcessName();
  auto call = client->invokeAsync("held", testing_util::namingEvent(name, "hold"));
  pid_t sandbox = waitUntilRunning(name, [&] { client->waitScope().poll(); });
  ASSERT_GT(sandbox, 0) << "the invocation never ran";
  kill(daemon.pid(), SIGTERM);
  ASSERT_TRUE(eventually([&] { return daemon.log().find(", draining\n") != std::string::npos; }))
      << daemon.log();
  testing_util::release(sandbox);
  thatch::Result result = call.wait(client->waitScope());
  EXPECT_EQ(result.status, Status::kOk) << result.errorMessage;
  EXPECT_EQ(result.payload, "\"" + name + "\"");
  EXPECT_EQ(daemon.stop(), 0) << daemon.log();
}

TEST_F(ApiDaemonTest, TcpWhenConfigured) {
  int port = 20000 + getpid() % 20000;
  TestDaemon daemon("tcp_listen = \"127.0.0.1:" + std::to_string(port) +
                    "\"\ntcp_without_token = true\n");
  EXPECT_EQ(deployDirectoryRaw("127.0.0.1:" + std::to_string(port), example("hello")),
            "deploying from a directory on thatchd's host is for root on the Unix socket; send "
            "an archive");
  auto client = thatch::Thatch::connect("tcp:127.0.0.1:" + std::to_string(port));
  client->deploy("hello", example("hello"));  // as an archive
  EXPECT_EQ(client->invoke("hello", "{}").status, Status::kOk);
  EXPECT_NE(daemon.log().find("peer=\"tcp 127.0.0.1:"), std::string::npos) << daemon.log();
}

// socket_group lets its members in; they may deploy archives, but not name
// directories on thatchd's host (which thatchd reads as root).
TEST_F(ApiDaemonTest, TheSocketGroupMayConnectButNotReadTheHost) {
  TestDaemon daemon("socket_group = \"nogroup\"\n");
  struct stat st;
  ASSERT_EQ(stat(daemon.socketPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, 65534u);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  int pipeFds[2];
  ASSERT_EQ(pipe(pipeFds), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(pipeFds[0]);
    std::string answer = "cannot drop to nobody";
    if (setgroups(0, nullptr) == 0 && setgid(65534) == 0 && setuid(65534) == 0)
      answer = deployDirectoryRaw("unix:" + daemon.socketPath(), "/etc");
    (void)!write(pipeFds[1], answer.data(), answer.size());
    _exit(0);
  }
  close(pipeFds[1]);
  std::string answer;
  char buffer[512];
  for (ssize_t n; (n = read(pipeFds[0], buffer, sizeof buffer)) > 0;) answer.append(buffer, n);
  close(pipeFds[0]);
  waitpid(child, nullptr, 0);
  EXPECT_EQ(answer,
            "deploying from a directory on thatchd's host is for root on the Unix socket; send "
            "an archive");
  EXPECT_NE(daemon.log().find("peer=\"uid 65534 pid " + std::to_string(child)), std::string::npos)
      << daemon.log();
}

// Layers are stored as functions are: a thatchd killed and started again
// lists the same versions, and the function that uses one still sees it.
TEST_F(ApiDaemonTest, LayersSurviveAKilledThatchd) {
  TestDaemon daemon;
  testing_util::TempDir layer;
  testing_util::writeFile(layer.path() + "/word.txt", "kept");
  {
    auto client = thatch::Thatch::connect(daemon.socketPath());
    client->publishLayer("kept", layer.path());
    client->publishLayer("kept", layer.path());
    thatch::FunctionConfig config;
    config.layers = {{"kept", 2}};
    testing_util::deploySource(*client, "reader", R"PY(
def handler(event, context):
    return open("/opt/word.txt").read()
)PY",
                               config);
  }
  daemon.kill9();
  daemon.restart();
  auto client = thatch::Thatch::connect(daemon.socketPath());
  std::vector<thatch::LayerInfo> versions = client->layerVersions("kept");
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(versions[1].version, 2u);
  EXPECT_EQ(client->info("reader").config.layers, (std::vector<thatch::LayerRef>{{"kept", 2}}));
  thatch::Result result = client->invoke("reader", "{}");
  ASSERT_EQ(result.status, Status::kOk) << result.errorMessage << result.traceback;
  EXPECT_EQ(result.payload, R"("kept")");
  EXPECT_EQ(client->publishLayer("kept", layer.path()).version, 3u);
}

TEST_F(ApiDaemonTest, InProcessRunsTheSupervisorInThisProgram) {
  testing_util::TempDir dir;
  chmod(dir.path().c_str(), 0711);
  std::string subdir = "thatch/inproc-" + std::to_string(getpid());
  testing_util::writeFile(
      dir.path() + "/thatchd.toml",
      "cgroup_subdir = \"" + subdir + "\"\n[[runtime]]\nname = \"python3.11\"\nstem_cells = 0\n");
  std::vector<std::string> log;
  {
    thatch::InProcessOptions options;
    options.configPath = dir.path() + "/thatchd.toml";
    options.stateDir = dir.path() + "/state";
    options.zygotePath = testing_util::testBinDir() + "/../bin/thatch-zygote";
    options.log = [&log](std::string_view line) { log.emplace_back(line); };
    auto local = thatch::startInProcess(options);
    local->deploy("hello", example("hello"));
    thatch::Result result = local->invoke("hello", R"({"name":"in process"})");
    EXPECT_EQ(result.status, Status::kOk) << result.errorMessage;
    EXPECT_EQ(result.payload, R"({"greeting":"hello, in process"})");
    EXPECT_EQ(local->list().size(), 1u);
    // A layer's directory is read in place, as a function's is.
    testing_util::TempDir layer;
    testing_util::writeFile(layer.path() + "/greeting.txt", "in place");
    local->publishLayer("words", layer.path());
    testing_util::TempDir code;
    testing_util::writeFile(code.path() + "/handler.py",
                            "def handler(event, context):\n"
                            "    return open('/opt/greeting.txt').read()\n");
    thatch::FunctionConfig config;
    config.layers = {{"words", 1}};
    local->deploy("reader", code.path(), config);
    result = local->invoke("reader", "{}");
    EXPECT_EQ(result.status, Status::kOk) << result.errorMessage << result.traceback;
    EXPECT_EQ(result.payload, R"("in place")");
  }
  // Its events went to the program's sink, not to stderr.
  ASSERT_FALSE(log.empty());
  EXPECT_TRUE(std::any_of(log.begin(), log.end(), [](const std::string& line) {
    return line.rfind("thatchd: invocation function=hello", 0) == 0;
  })) << log.back();
  sandbox::detectCgroups("thatch")->remove("inproc-" + std::to_string(getpid()));
}

}  // namespace
