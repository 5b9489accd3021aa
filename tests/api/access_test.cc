// Access control of the network API (docs/api.md, "Access control"): a
// real thatchd whose TCP listener wants a [[client]]'s token, driven
// through the library and the CLI.
#include "daemon/access.h"

#include <arpa/inet.h>
#include <capnp/rpc-twoparty.h>
#include <gtest/gtest.h>
#include <kj/async-io.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "api/thatch.capnp.h"
#include "base/fd.h"
#include "tests/daemon.h"
#include "tests/suite_daemon.h"
#include "tests/testing.h"
#include "thatch/thatch.h"

namespace {

using testing_util::example;
using thatch::Error;
using thatch::Status;

std::string sha256Hex(const std::string& text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  std::string hex;
  char two[3];
  for (unsigned char byte : digest) {
    snprintf(two, sizeof two, "%02x", byte);
    hex += two;
  }
  return hex;
}

std::string clientToml(const std::string& name, const std::string& token,
                       const std::string& allow) {
  return "[[client]]\nname = \"" + name + "\"\ntoken_sha256 = \"" + sha256Hex(token) +
         "\"\nallow = " + allow + "\n";
}

// A port of its own per test process (as api_test.cc's TcpWhenConfigured,
// offset from it).
int tcpPort() {
  return 20000 + (getpid() + 7919) % 20000;
}

// One thatchd: TCP on loopback, clients with each grant; "hello" and
// "other" deployed through the socket.
class AccessTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_.start("tcp_listen = \"" + address().substr(4) + "\"\n" +
                  clientToml("hello-only", "token-hello", "[\"invoke:hello\"]") +
                  clientToml("invoker", "token-invoker", "[\"invoke:*\"]") +
                  clientToml("deployer", "token-deployer", "[\"deploy\"]") +
                  clientToml("admin", "token-admin", "[\"admin\"]") +
                  clientToml("scraper", "token-metrics", "[\"metrics\"]"));
    if (!daemon_) return;
    auto local = thatch::Thatch::connect(daemon_->socketPath());
    local->deploy("hello", example("hello"));
    local->deploy("other", example("echo"));
  }
  static void TearDownTestSuite() { daemon_.stop(); }

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
  }

  static std::string address() { return "tcp:127.0.0.1:" + std::to_string(tcpPort()); }

  static std::unique_ptr<thatch::Thatch> as(const std::string& token) {
    return thatch::Thatch::connect(address(), {token, ""});
  }

  // What `call` throws: its kind and message.
  template <typename Call>
  static std::pair<Error::Kind, std::string> errorOf(Call call) {
    try {
      call();
    } catch (const Error& e) {
      return {e.kind(), e.what()};
    }
    return {Error::Kind::kLocal, "no error"};
  }

  static testing_util::SuiteDaemon daemon_;
};

testing_util::SuiteDaemon AccessTest::daemon_;

constexpr char kRefused[] =
    "thatchd refused the token (give a [[client]]'s token: THATCH_TOKEN, "
    "ConnectOptions::token)";

TEST_F(AccessTest, AWrongOrMissingTokenIsRefusedAlikeAndNamesNothing) {
  auto wrong = errorOf([] { as("not-a-token"); });
  EXPECT_EQ(wrong.first, Error::Kind::kRefused);
  EXPECT_EQ(wrong.second, kRefused);
  // A token one character off a real one: the same answer.
  EXPECT_EQ(errorOf([] { as("token-admiN"); }), wrong);
  {
    auto none = thatch::Thatch::connect(address());
    EXPECT_EQ(errorOf([&] { none->list(); }), wrong);
    EXPECT_EQ(errorOf([&] { none->invoke("hello", "{}"); }).second, kRefused);
    EXPECT_EQ(errorOf([&] { none->invoke("nothing", "{}"); }).second, kRefused);
  }
  ASSERT_TRUE(testing_util::eventually([] {
    return daemon_->log().find("login_refused") != std::string::npos;
  })) << daemon_->log();
  std::string log = daemon_->log();
  EXPECT_EQ(log.find("not-a-token"), std::string::npos) << "a token was logged:\n" << log;
  EXPECT_EQ(log.find("token-admiN"), std::string::npos) << "a token was logged:\n" << log;
}

// Logins on one connection, with Cap'n Proto directly (the library logs
// in once per connection): what thatchd answered each.
std::vector<std::string> loginsOnOneConnection(const std::string& hostPort,
                                               const std::vector<std::string>& tokens) {
  auto io = kj::setupAsyncIo();
  auto connection = io.provider->getNetwork()
                        .parseAddress(kj::str(hostPort.c_str()))
                        .wait(io.waitScope)
                        ->connect()
                        .wait(io.waitScope);
  capnp::TwoPartyClient client(*connection);
  auto login = client.bootstrap().castAs<thatch::api::Login>();
  std::vector<std::string> answers;
  for (const std::string& token : tokens) {
    auto request = login.loginRequest();
    request.setToken(token);
    try {
      answers.push_back("client " + std::string(request.send().wait(io.waitScope).getClient()));
    } catch (const kj::Exception& e) {
      answers.push_back(e.getDescription().cStr());
    }
  }
  return answers;
}

TEST_F(AccessTest, FailedLoginsAreBoundedPerConnection) {
  std::string hostPort = address().substr(4);
  std::string refused = "remote exception: thatchd refused the token";
  EXPECT_EQ(
      loginsOnOneConnection(hostPort, {"guess", "token-admin", "guess", "guess", "token-admin"}),
      (std::vector<std::string>{refused, "client admin", refused, refused, refused}));
  EXPECT_TRUE(testing_util::eventually([] {
    return daemon_->log().find("reason=\"too many failed logins\"") != std::string::npos;
  })) << daemon_->log();
  // A new connection starts again.
  EXPECT_EQ(loginsOnOneConnection(hostPort, {"token-admin"}),
            (std::vector<std::string>{"client admin"}));
}

TEST_F(AccessTest, InvokeOneFunctionSeesAndInvokesOnlyIt) {
  auto client = as("token-hello");
  EXPECT_EQ(client->invoke("hello", "{}").status, Status::kOk);
  std::vector<thatch::FunctionInfo> listed = client->list();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].name, "hello");
  EXPECT_EQ(client->info("hello").name, "hello");
  // `other` exists, `nothing` does not: the same answer for both.
  thatch::Result other = client->invoke("other", "{}");
  thatch::Result nothing = client->invoke("nothing", "{}");
  EXPECT_EQ(other.status, Status::kNotFound);
  EXPECT_EQ(nothing.status, Status::kNotFound);
  auto infoOther = errorOf([&] { client->info("other"); });
  auto infoNothing = errorOf([&] { client->info("nothing"); });
  EXPECT_EQ(infoOther.first, Error::Kind::kNotFound);
  EXPECT_EQ(infoOther.second, "no function named 'other'");
  EXPECT_EQ(infoNothing.second, "no function named 'nothing'");
  // Not deploy, remove, stats or layers: methods this Thatch does not serve.
  auto deploy = errorOf([&] { client->deploy("hello", example("echo")); });
  EXPECT_EQ(deploy.first, Error::Kind::kRefused);
  EXPECT_EQ(deploy.second,
            "this client may not call Thatch.deploy: its allow list does not grant it");
  EXPECT_NE(errorOf([&] { client->remove("hello"); }).second.find("may not call Thatch.remove"),
            std::string::npos);
  EXPECT_NE(errorOf([&] { client->stats(); }).second.find("may not call Thatch.stats"),
            std::string::npos);
  EXPECT_NE(errorOf([&] { client->listLayers(); }).second.find("Thatch.listLayers"),
            std::string::npos);
  client->ping();
  client.reset();  // one Thatch per thread at a time: each has its event loop
  EXPECT_EQ(as("token-admin")->info("hello").version, 1u) << "a refused deploy deployed";
}

TEST_F(AccessTest, InvokeEverythingInvokesButDoesNotDeploy) {
  auto client = as("token-invoker");
  EXPECT_EQ(client->invoke("other", "{\"a\":1}").status, Status::kOk);
  EXPECT_EQ(client->list().size(), 2u);
  EXPECT_EQ(errorOf([&] { client->deploy("third", example("hello")); }).first,
            Error::Kind::kRefused);
  EXPECT_EQ(errorOf([&] { client->stats(); }).first, Error::Kind::kRefused);
}

TEST_F(AccessTest, DeployDeploysAndRemovesButDoesNotInvoke) {
  auto client = as("token-deployer");
  EXPECT_EQ(client->deploy("third", example("hello")).name, "third");
  EXPECT_EQ(client->list().size(), 3u);
  auto invoke = errorOf([&] { client->invoke("third", "{}"); });
  EXPECT_EQ(invoke.second,
            "this client may not call Function.invoke: its allow list does not grant it");
  EXPECT_EQ(errorOf([&] { client->prewarm("third", 1); }).first, Error::Kind::kRefused);
  EXPECT_TRUE(client->remove("third"));
  EXPECT_EQ(errorOf([&] { client->stats(); }).first, Error::Kind::kRefused);
}

TEST_F(AccessTest, AdminDoesEverything) {
  auto client = as("token-admin");
  EXPECT_EQ(client->invoke("hello", "{}").status, Status::kOk);
  EXPECT_GE(client->stats().coldStarts, 1u);
  client->deploy("fourth", example("hello"));
  EXPECT_EQ(client->invoke("fourth", "{}").status, Status::kOk);
  EXPECT_TRUE(client->remove("fourth"));
  EXPECT_EQ(client->listLayers().size(), 0u);
}

TEST_F(AccessTest, MetricsAloneSeesNoFunction) {
  auto client = as("token-metrics");
  EXPECT_EQ(client->list().size(), 0u);
  EXPECT_EQ(client->invoke("hello", "{}").status, Status::kNotFound);
  EXPECT_TRUE(testing_util::eventually([] {
    return daemon_->log().find("login peer=\"tcp 127.0.0.1:") != std::string::npos &&
           daemon_->log().find("client=scraper") != std::string::npos;
  })) << daemon_->log();
}

// The socket's file mode is its guard: no token needed, and one given is
// not refused.
TEST_F(AccessTest, TheUnixSocketNeedsNoToken) {
  EXPECT_GE(thatch::Thatch::connect(daemon_->socketPath())->stats().coldStarts, 1u);
  auto withToken = thatch::Thatch::connect(daemon_->socketPath(), {"anything", ""});
  EXPECT_EQ(withToken->list().size(), 2u);
}

TEST_F(AccessTest, TheCliReadsThatchToken) {
  std::string thatchBin = testing_util::testBinDir() + "/../bin/thatch";
  auto r = testing_util::run(
      {"/usr/bin/env", "THATCH_TOKEN=token-hello", thatchBin, "--socket", address(), "ls"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("hello"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("other"), std::string::npos) << r.out;
  r = testing_util::run({"/usr/bin/env", "THATCH_TOKEN=token-hello", thatchBin, "--socket",
                         address(), "invoke", "other"});
  EXPECT_EQ(r.exitCode, 5) << r.err;
  r = testing_util::run(
      {"/usr/bin/env", "THATCH_TOKEN=wrong", thatchBin, "--socket", address(), "ls"});
  EXPECT_EQ(r.exitCode, 4);
  EXPECT_EQ(r.err, std::string("thatch: ") + kRefused + "\n");
  r = testing_util::run(
      {"/usr/bin/env", "-u", "THATCH_TOKEN", thatchBin, "--socket", address(), "ls"});
  EXPECT_EQ(r.exitCode, 4);
  EXPECT_EQ(r.err, std::string("thatch: ") + kRefused + "\n");
}

// With socket_requires_token, the socket's clients log in too.
TEST(AccessSocket, SocketRequiresToken) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  testing_util::TestDaemon daemon("socket_requires_token = true\n" +
                                  clientToml("ops", "token-ops", "[\"invoke:*\"]"));
  try {
    thatch::Thatch::connect(daemon.socketPath())->list();
    ADD_FAILURE() << "listed without a token";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), kRefused);
  }
  EXPECT_EQ(thatch::Thatch::connect(daemon.socketPath(), {"token-ops", ""})->list().size(), 0u);
  EXPECT_EQ(daemon.stop(), 0) << daemon.log();
}

// A reload (SIGHUP) changes the clients for new logins: a token taken out
// of the config is refused from then on, one put in is let in; the socket
// (its own config key, unchanged) keeps its rule.
TEST(AccessReload, ANewClientListGovernsNewLogins) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  testing_util::TestDaemon daemon("socket_requires_token = true\n" +
                                  clientToml("old", "token-old", "[\"invoke:*\"]"));
  EXPECT_EQ(thatch::Thatch::connect(daemon.socketPath(), {"token-old", ""})->list().size(), 0u);
  std::string path = daemon.dir() + "/thatchd.toml";
  std::string config = testing_util::readFile(path);
  size_t at = config.find("name = \"old\"");
  ASSERT_NE(at, std::string::npos) << config;
  config.replace(at, std::string("name = \"old\"").size(), "name = \"new\"");
  config.replace(config.find(sha256Hex("token-old")), 64, sha256Hex("token-new"));
  testing_util::writeFile(path, config);
  ASSERT_EQ(kill(daemon.pid(), SIGHUP), 0);
  ASSERT_TRUE(testing_util::eventually([&] {
    return daemon.log().find("config_reloaded") != std::string::npos;
  })) << daemon.log();
  EXPECT_NE(daemon.log().find("changed=client[0].name,client[0].token_sha256"), std::string::npos)
      << daemon.log();
  try {
    thatch::Thatch::connect(daemon.socketPath(), {"token-old", ""})->list();
    ADD_FAILURE() << "a token taken out of the config still logs in";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), kRefused);
  }
  EXPECT_EQ(thatch::Thatch::connect(daemon.socketPath(), {"token-new", ""})->list().size(), 0u);
  EXPECT_EQ(daemon.stop(), 0) << daemon.log();
}

}  // namespace

namespace {

// daemon/access.h's answer for the HTTP /metrics scrape.
TEST(AccessMetrics, BearerTokenOfAClientWithMetricsOrAdmin) {
  thatchd::Clients clients({{"scraper", sha256Hex("scrape-token"), {"metrics"}},
                            {"ops", sha256Hex("ops-token"), {"admin"}},
                            {"ci", sha256Hex("ci-token"), {"invoke:*", "deploy", "read"}}});
  EXPECT_TRUE(thatchd::mayScrapeMetrics(clients, "Bearer scrape-token"));
  EXPECT_TRUE(thatchd::mayScrapeMetrics(clients, "bearer ops-token"));
  EXPECT_FALSE(thatchd::mayScrapeMetrics(clients, "Bearer ci-token"));
  EXPECT_FALSE(thatchd::mayScrapeMetrics(clients, "Bearer scrape-tokeN"));
  EXPECT_FALSE(thatchd::mayScrapeMetrics(clients, "Basic scrape-token"));
  EXPECT_FALSE(thatchd::mayScrapeMetrics(clients, "Bearer "));
  EXPECT_FALSE(thatchd::mayScrapeMetrics(clients, ""));
}

}  // namespace

namespace {

// A self-signed certificate for localhost in `dir` (cert.pem, key.pem).
void makeCertificate(const std::string& dir, const std::string& name) {
  auto r = testing_util::run({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                              "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                              dir + "/" + name + "-key.pem", "-out", dir + "/" + name + ".pem",
                              "-days", "2", "-subj", "/CN=localhost", "-addext",
                              "subjectAltName=DNS:localhost,IP:127.0.0.1"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
}

// tls_cert and tls_key: the TCP listener speaks TLS; a client verifies it
// against the CA it is given.
// A client that connects to the TLS listener and never says a word is
// dropped after tls_handshake_timeout: its connection is closed.
TEST(AccessTls, AClientThatNeverHandshakesIsDropped) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  testing_util::TempDir certs;
  makeCertificate(certs.path(), "server");
  int port = 20000 + (getpid() + 4001) % 20000;
  testing_util::TestDaemon daemon(
      "tcp_listen = \"127.0.0.1:" + std::to_string(port) + "\"\ntls_cert = \"" + certs.path() +
      "/server.pem\"\n" + "tls_key = \"" + certs.path() + "/server-key.pem\"\n" +
      "tls_handshake_timeout = \"200ms\"\n" + clientToml("ops", "token-ops", "[\"admin\"]"));
  base::Fd silent(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_GE(silent.get(), 0) << strerror(errno);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(silent.get(), reinterpret_cast<sockaddr*>(&to), sizeof to), 0)
      << strerror(errno);
  // thatchd closes it: the read sees end of file (it blocks until then;
  // the receive timeout only bounds a failing test).
  timeval guard{120, 0};
  ASSERT_EQ(setsockopt(silent.get(), SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof guard), 0);
  char byte;
  EXPECT_EQ(read(silent.get(), &byte, 1), 0) << strerror(errno);
  EXPECT_TRUE(testing_util::eventually([&] {
    return daemon.log().find("error=\"no TLS handshake within 200ms\"") != std::string::npos;
  })) << daemon.log();
  // The listener still serves the next one.
  auto client = thatch::Thatch::connect("tls:localhost:" + std::to_string(port),
                                        {"token-ops", certs.path() + "/server.pem"});
  EXPECT_EQ(client->list().size(), 0u);
  EXPECT_EQ(daemon.stop(), 0) << daemon.log();
}

TEST(AccessTls, ACallSucceedsWithTheCaAndFailsClearlyWithout) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  testing_util::TempDir certs;
  makeCertificate(certs.path(), "server");
  makeCertificate(certs.path(), "stranger");
  int port = 20000 + (getpid() + 3001) % 20000;
  testing_util::TestDaemon daemon("tcp_listen = \"127.0.0.1:" + std::to_string(port) +
                                  "\"\ntls_cert = \"" + certs.path() + "/server.pem\"\n" +
                                  "tls_key = \"" + certs.path() + "/server-key.pem\"\n" +
                                  clientToml("ops", "token-ops", "[\"admin\"]"));
  std::string address = "tls:localhost:" + std::to_string(port);
  {
    auto client = thatch::Thatch::connect(address, {"token-ops", certs.path() + "/server.pem"});
    client->deploy("hello", example("hello"));
    EXPECT_EQ(client->invoke("hello", "{}").status, Status::kOk);
  }
  auto failure = [&](const std::string& ca) -> std::string {
    try {
      thatch::Thatch::connect(address, {"token-ops", ca});
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), Error::Kind::kConnect) << e.what();
      return e.what();
    }
    return "connected";
  };
  // A wrong CA, and the system's (which never signed this certificate).
  for (const std::string& ca : {certs.path() + "/stranger.pem", std::string()}) {
    std::string message = failure(ca);
    EXPECT_EQ(message.rfind("cannot connect to " + address + ": TLS: ", 0), 0u) << message;
    EXPECT_NE(message.find("TLS peer's certificate is not trusted"), std::string::npos) << message;
  }
  // Plain TCP to a TLS listener gets nowhere, and is logged.
  try {
    thatch::Thatch::connect("tcp:127.0.0.1:" + std::to_string(port), {"token-ops", ""});
    ADD_FAILURE() << "plain TCP logged in to a TLS listener";
  } catch (const Error& e) {
    EXPECT_NE(e.kind(), Error::Kind::kRefused) << e.what();
  }
  EXPECT_TRUE(testing_util::eventually([&] {
    return daemon.log().find("tls_handshake_failed") != std::string::npos;
  })) << daemon.log();
  EXPECT_NE(daemon.log().find("listening address=tls:127.0.0.1:"), std::string::npos)
      << daemon.log();
  // The CLI, with THATCH_TLS_CA.
  auto r = testing_util::run(
      {"/usr/bin/env", "THATCH_TOKEN=token-ops", "THATCH_TLS_CA=" + certs.path() + "/server.pem",
       testing_util::testBinDir() + "/../bin/thatch", "--socket", address, "invoke", "hello"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  r = testing_util::run({"/usr/bin/env", "-u", "THATCH_TLS_CA", "THATCH_TOKEN=token-ops",
                         testing_util::testBinDir() + "/../bin/thatch", "--socket", address, "ls"});
  EXPECT_EQ(r.exitCode, 3);
  EXPECT_NE(r.err.find("TLS: "), std::string::npos) << r.err;
  EXPECT_EQ(daemon.stop(), 0) << daemon.log();
}

}  // namespace
