// The egress firewall thatchd installs (sandbox/egress_rules.h), tried
// from egress sandboxes against listeners on this machine only: thatchd
// runs in a network namespace of its own (the test's "host"), routed to a
// second one (the "outside": a world address and the metadata address),
// and every listener says afterwards whether anything reached it. A
// thatchd with `firewall = false` on the same namespaces shows that each
// attempt would otherwise connect.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>

#include "base/fd.h"
#include "sandbox/egress_rules.h"
#include "tests/daemon.h"
#include "tests/testing.h"
#include "thatch/thatch.h"

namespace {

using testing_util::run;
using testing_util::TestDaemon;
using thatch::Status;

constexpr char kWorld[] = "192.0.2.2";  // the outside's address (TEST-NET-1)
constexpr char kHostOutside[] = "192.0.2.1";
constexpr char kMetadata[] = "169.254.169.254";
constexpr char kBridge[] = "10.201.0.1";
constexpr int kOwnPort = 7001, kAllowedPort = 7002, kWorldPort = 7003, kMetadataPort = 80,
              kSandboxPort = 7004;

// What an egress sandbox runs: a TCP connect, "ok" or why not (a dropped
// SYN: "timeout", after 2 s); or, asked
// to listen, its address; or, asked to accept, what accept() says.
constexpr char kProber[] = R"PY(
import errno, socket
listener = None
def handler(event, context):
    global listener
    if event.get('listen'):
        listener = socket.socket()
        listener.bind(('0.0.0.0', event['listen']))
        listener.listen(8)
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.connect(('192.0.2.2', 9))
        return probe.getsockname()[0]
    if event.get('accept'):
        listener.setblocking(False)
        try:
            listener.accept()
            return 'accepted'
        except OSError as e:
            return errno.errorcode[e.errno]
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((event['host'], event['port']))
        return 'ok'
    except socket.timeout:
        return 'timeout'
    except OSError as e:
        return errno.errorcode[e.errno]
)PY";

void ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/sbin/ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  testing_util::CommandResult r = run(argv);
  ASSERT_EQ(r.exitCode, 0) << "ip failed: " << r.err;
}

// A TCP listener in the calling thread's network namespace.
base::Fd listenOn(const char* address, int port) {
  base::Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in where{};
  where.sin_family = AF_INET;
  where.sin_port = htons(port);
  inet_pton(AF_INET, address, &where.sin_addr);
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&where), sizeof where), 0)
      << address << ":" << port << ": " << strerror(errno);
  EXPECT_EQ(listen(fd.get(), 16), 0);
  return fd;
}

// Whether a connection is waiting on `listener` (accepted and closed).
bool reached(const base::Fd& listener) {
  base::Fd connection(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  return static_cast<bool>(connection);
}

class Egress : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    std::string id = std::to_string(getpid());
    host_ = "thx-host-" + id;
    outside_ = "thx-out-" + id;
    own_.reset(open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
    ip({"netns", "add", host_});
    ip({"netns", "add", outside_});
    ip({"-n", host_, "link", "set", "lo", "up"});
    ip({"-n", outside_, "link", "set", "lo", "up"});
    ip({"-n", host_, "link", "add", "up0", "type", "veth", "peer", "name", "down0", "netns",
        outside_});
    ip({"-n", host_, "addr", "add", std::string(kHostOutside) + "/24", "dev", "up0"});
    ip({"-n", host_, "addr", "add", "169.254.0.1/16", "dev", "up0"});
    ip({"-n", host_, "link", "set", "up0", "up"});
    ip({"-n", outside_, "addr", "add", std::string(kWorld) + "/24", "dev", "down0"});
    ip({"-n", outside_, "addr", "add", std::string(kMetadata) + "/16", "dev", "down0"});
    ip({"-n", outside_, "link", "set", "down0", "up"});
    ip({"-n", outside_, "route", "add", "10.201.0.0/16", "via", kHostOutside});
    ASSERT_EQ(
        run({"/sbin/ip", "netns", "exec", host_, "/sbin/sysctl", "-qw", "net.ipv4.ip_forward=1"})
            .exitCode,
        0);
    // The outside's listeners, then the host's; this thread stays in the
    // host's namespace, where thatchd starts, until TearDown.
    enter(outside_);
    world_ = listenOn(kWorld, kWorldPort);
    metadata_ = listenOn(kMetadata, kMetadataPort);
    enter(host_);
    own_port_ = listenOn("0.0.0.0", kOwnPort);
    allowed_ = listenOn("0.0.0.0", kAllowedPort);
  }

  void TearDown() override {
    daemon_.reset();
    world_.reset();
    metadata_.reset();
    own_port_.reset();
    allowed_.reset();
    if (own_) {
      ASSERT_EQ(setns(own_.get(), CLONE_NEWNET), 0) << strerror(errno);
    }
    if (!host_.empty()) {
      run({"/sbin/ip", "netns", "del", host_});
      run({"/sbin/ip", "netns", "del", outside_});
    }
  }

  void enter(const std::string& netns) {
    base::Fd fd(open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd) << netns << ": " << strerror(errno);
    ASSERT_EQ(setns(fd.get(), CLONE_NEWNET), 0) << strerror(errno);
  }

  // thatchd in the host's namespace, `prober` deployed with egress.
  void startThatchd(bool firewall) {
    daemon_ = std::make_unique<TestDaemon>(std::string("[network]\nfirewall = ") +
                                           (firewall ? "true" : "false") + "\nallow = [\"" +
                                           kBridge + ":" + std::to_string(kAllowedPort) + "\"]\n");
    client_ = thatch::Thatch::connect(daemon_->socketPath());
    thatch::FunctionConfig egress;
    egress.network = thatch::Network::kEgress;
    egress.timeout = std::chrono::seconds(60);  // the dropped connects give up after 2 s
    testing_util::deploySource(*client_, "prober", kProber, egress);
    testing_util::deploySource(*client_, "neighbour", kProber, egress);
  }

  std::string connect(const std::string& host, int port) {
    thatch::Result r = client_->invoke(
        "prober", "{\"host\": \"" + host + "\", \"port\": " + std::to_string(port) + "}");
    EXPECT_EQ(r.status, Status::kOk) << r.errorMessage << r.traceback;
    return r.payload;
  }

  // The firewall's tables in the host's namespace, as "FAMILY NAME".
  std::set<std::string> tables() { return testing_util::firewallTables("thatch_"); }

  // Every attempt, and which listener each reached: the same calls for
  // the firewalled thatchd and the one without.
  std::map<std::string, std::string> attempts() {
    std::map<std::string, std::string> seen;
    seen["world"] = connect(kWorld, kWorldPort);
    seen["world reached"] = reached(world_) ? "yes" : "no";
    seen["metadata"] = connect(kMetadata, kMetadataPort);
    seen["metadata reached"] = reached(metadata_) ? "yes" : "no";
    seen["host on the bridge"] = connect(kBridge, kOwnPort);
    seen["host outside"] = connect(kHostOutside, kOwnPort);
    seen["host reached"] = reached(own_port_) ? "yes" : "no";
    seen["allowed"] = connect(kBridge, kAllowedPort);
    seen["allowed reached"] = reached(allowed_) ? "yes" : "no";
    thatch::Result listening =
        client_->invoke("neighbour", "{\"listen\": " + std::to_string(kSandboxPort) + "}");
    EXPECT_EQ(listening.status, Status::kOk) << listening.errorMessage << listening.traceback;
    std::string neighbour = listening.payload.substr(1, listening.payload.size() - 2);
    seen["neighbour"] = connect(neighbour, kSandboxPort);
    seen["neighbour reached"] = client_->invoke("neighbour", "{\"accept\": true}").payload;
    return seen;
  }

  std::string host_, outside_;
  base::Fd own_, world_, metadata_, own_port_, allowed_;
  std::unique_ptr<TestDaemon> daemon_;
  std::unique_ptr<thatch::Thatch> client_;
};

TEST_F(Egress, TheFirewallKeepsSandboxesToTheWorldAndTheAllowList) {
  startThatchd(true);
  std::string table = sandbox::egressTableName(daemon_->cgroupSubdir());
  EXPECT_EQ(tables(), (std::set<std::string>{"bridge " + table, "inet " + table}));
  std::map<std::string, std::string> seen = attempts();
  EXPECT_EQ(seen["world"], "\"ok\"");
  EXPECT_EQ(seen["world reached"], "yes");
  EXPECT_EQ(seen["metadata"], "\"timeout\"");
  EXPECT_EQ(seen["metadata reached"], "no");
  EXPECT_EQ(seen["host on the bridge"], "\"timeout\"");
  EXPECT_EQ(seen["host outside"], "\"timeout\"");
  EXPECT_EQ(seen["host reached"], "no");
  EXPECT_EQ(seen["allowed"], "\"ok\"");
  EXPECT_EQ(seen["allowed reached"], "yes");
  EXPECT_EQ(seen["neighbour"], "\"timeout\"");
  EXPECT_EQ(seen["neighbour reached"], "\"EAGAIN\"");
  // Removed when thatchd stops.
  EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
  EXPECT_EQ(tables(), std::set<std::string>{});
}

// The control: the same attempts, on the same namespaces, with the
// firewall off, all connect (so the test above can fail).
TEST_F(Egress, WithoutTheFirewallEveryAttemptConnects) {
  startThatchd(false);
  EXPECT_EQ(tables(), std::set<std::string>{});
  std::map<std::string, std::string> seen = attempts();
  for (const char* attempt :
       {"world", "metadata", "host on the bridge", "host outside", "allowed", "neighbour"})
    EXPECT_EQ(seen[attempt], "\"ok\"") << attempt;
  for (const char* listener :
       {"world reached", "metadata reached", "host reached", "allowed reached"})
    EXPECT_EQ(seen[listener], "yes") << listener;
  EXPECT_EQ(seen["neighbour reached"], "\"accepted\"");
}

}  // namespace
