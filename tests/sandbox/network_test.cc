// Network namespaces as the sandboxed process sees them. Needs root. The
// egress tests create a bridge, veth pairs and a named namespace, all named
// "tht<pid % 1000>..." and addressed in 10.203.<pid % 250>.0/24, and remove
// them all; no packet leaves the namespaces they create.
#include "sandbox/network.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "base/sys_error.h"
#include "rootfs/sandbox_spec.h"
#include "sandbox/idmap.h"
#include "sandbox/sandbox.h"
#include "tests/testing.h"

namespace {

using base::Fd;
using sandbox::NetMode;
using sandbox::NetSpec;

constexpr char kIp[] = "/sbin/ip";
constexpr int kTimeoutMs = 10'000;

std::string errnoName(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : std::to_string(err);
}

Fd checkedFd(int fd, const std::string& what) {
  if (fd < 0) base::throwSysError(what);
  return Fd(fd);
}

ino_t netnsInode(int nsFd) {
  struct stat st;
  base::check(fstat(nsFd, &st), "fstat(netns)");
  return st.st_ino;
}

ino_t ownNetnsInode() {
  struct stat st;
  base::check(stat("/proc/thread-self/ns/net", &st), "stat(/proc/thread-self/ns/net)");
  return st.st_ino;
}

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (const auto& part : parts) out += (out.empty() ? "" : separator) + part;
  return out;
}

// ---- What a process observes in its network namespace -------------------

// Not /sys/class/net: sysfs shows the namespace of whoever mounted it.
std::vector<std::string> linkNames() {
  struct if_nameindex* links = if_nameindex();
  if (!links) base::throwSysError("if_nameindex");
  std::vector<std::string> names;
  for (struct if_nameindex* link = links; link->if_index != 0; ++link)
    names.push_back(link->if_name);
  if_freenameindex(links);
  std::sort(names.begin(), names.end());
  return names;
}

bool isUp(const std::string& name) {
  Fd sock = checkedFd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket");
  ifreq request{};
  std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
  base::check(ioctl(sock.get(), SIOCGIFFLAGS, &request), "ioctl(SIOCGIFFLAGS, " + name + ")");
  return request.ifr_flags & IFF_UP;
}

// "10.203.7.2/24" for each IPv4 address of `link`.
std::vector<std::string> ipv4Addresses(const std::string& link) {
  ifaddrs* all = nullptr;
  base::check(getifaddrs(&all), "getifaddrs");
  std::vector<std::string> found;
  for (ifaddrs* a = all; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET || link != a->ifa_name) continue;
    char text[INET_ADDRSTRLEN];
    auto* address = reinterpret_cast<sockaddr_in*>(a->ifa_addr);
    auto* mask = reinterpret_cast<sockaddr_in*>(a->ifa_netmask);
    inet_ntop(AF_INET, &address->sin_addr, text, sizeof text);
    found.push_back(std::string(text) + "/" +
                    std::to_string(__builtin_popcount(mask->sin_addr.s_addr)));
  }
  freeifaddrs(all);
  return found;
}

// "eth0 up 10.203.7.2/24, lo up 127.0.0.1/8": every link, its state and
// its IPv4 addresses.
std::string describeLinks() {
  std::vector<std::string> links;
  for (const auto& name : linkNames()) {
    std::string line = name + (isUp(name) ? " up" : " down");
    for (const auto& address : ipv4Addresses(name)) line += " " + address;
    links.push_back(line);
  }
  return join(links, ", ");
}

// "default via 10.203.7.1 dev eth0", or "no default route". /proc/self/net
// shows the reading thread's namespace.
std::string defaultRoute() {
  std::ifstream table("/proc/self/net/route");
  std::string line;
  std::getline(table, line);  // the header
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string link, destination, gateway, flags, refs, use, metric, mask;
    fields >> link >> destination >> gateway >> flags >> refs >> use >> metric >> mask;
    if (destination != "00000000" || mask != "00000000") continue;
    in_addr via{static_cast<in_addr_t>(std::stoul(gateway, nullptr, 16))};
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &via, text, sizeof text);
    return std::string("default via ") + text + " dev " + link;
  }
  return "no default route";
}

sockaddr_in socketAddress(const std::string& ip, uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  if (inet_pton(AF_INET, ip.c_str(), &address.sin_addr) != 1) {
    throw std::invalid_argument("not an IPv4 address: " + ip);
  }
  return address;
}

// A TCP socket connected to ip:port, or the errno of the failed connect.
Fd connectTcp(const std::string& ip, uint16_t port, int& err) {
  Fd sock = checkedFd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket");
  timeval timeout{5, 0};  // bounds connect and recv when nothing answers
  base::check(setsockopt(sock.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout),
              "setsockopt(SO_SNDTIMEO)");
  base::check(setsockopt(sock.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout),
              "setsockopt(SO_RCVTIMEO)");
  sockaddr_in address = socketAddress(ip, port);
  err = connect(sock.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 ? 0 : errno;
  return sock;
}

// "connected", or the errno name of the failed connect.
std::string tryConnect(const std::string& ip, uint16_t port) {
  int err = 0;
  connectTcp(ip, port, err);
  return err == 0 ? "connected" : errnoName(err);
}

// Sends "ping" to ip:port and returns the answer, or what failed.
std::string pingPong(const std::string& ip, uint16_t port) {
  int err = 0;
  Fd sock = connectTcp(ip, port, err);
  if (err != 0) return "connect: " + errnoName(err);
  if (send(sock.get(), "ping", 4, MSG_NOSIGNAL) != 4) return "send: " + errnoName(errno);
  char answer[16];
  ssize_t n = recv(sock.get(), answer, sizeof answer, MSG_WAITALL);
  if (n < 0) return "recv: " + errnoName(errno);
  return std::string(answer, n);
}

// ---- The test's side ------------------------------------------------------

struct Listener {
  Fd fd;
  uint16_t port = 0;
};

// A TCP listener on ip and an ephemeral port, in the calling thread's
// namespace (where the socket stays).
Listener listenTcp(const std::string& ip) {
  Listener listener;
  listener.fd = checkedFd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket");
  sockaddr_in address = socketAddress(ip, 0);
  base::check(bind(listener.fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address),
              "bind(" + ip + ")");
  base::check(listen(listener.fd.get(), 8), "listen");
  socklen_t length = sizeof address;
  base::check(getsockname(listener.fd.get(), reinterpret_cast<sockaddr*>(&address), &length),
              "getsockname");
  listener.port = ntohs(address.sin_port);
  return listener;
}

// Accepts one connection, answers its "ping" with "pong" and returns the
// peer's address, or what went wrong.
std::string servePong(int listenFd) {
  pollfd waiting{listenFd, POLLIN, 0};
  if (poll(&waiting, 1, kTimeoutMs) != 1) return "no connection";
  sockaddr_in peer{};
  socklen_t length = sizeof peer;
  Fd conn = checkedFd(accept4(listenFd, reinterpret_cast<sockaddr*>(&peer), &length, SOCK_CLOEXEC),
                      "accept4");
  timeval timeout{5, 0};
  base::check(setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout),
              "setsockopt(SO_RCVTIMEO)");
  char request[4];
  if (recv(conn.get(), request, sizeof request, MSG_WAITALL) != 4 ||
      std::string(request, 4) != "ping") {
    return "no ping";
  }
  if (send(conn.get(), "pong", 4, MSG_NOSIGNAL) != 4) return "send: " + errnoName(errno);
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &peer.sin_addr, text, sizeof text);
  return text;
}

// A child process in its own namespaces, as a sandbox is, stopped until
// start(); then it runs `probe` on start()'s input and reports the result.
// The destructor kills and reaps it, whatever happened.
class NamespacedChild {
 public:
  using Probe = std::function<std::string(const std::string& input)>;

  // With `unshareFlags` 0 and no `joinNetnsFd` the child keeps the caller's
  // namespaces.
  explicit NamespacedChild(const Probe& probe, int unshareFlags = CLONE_NEWUSER | CLONE_NEWNET,
                           int joinNetnsFd = -1);
  ~NamespacedChild();
  NamespacedChild(const NamespacedChild&) = delete;
  NamespacedChild& operator=(const NamespacedChild&) = delete;

  pid_t pid() const { return pid_; }
  void start(const std::string& input = "");
  std::string report();  // waits for it and reaps it
  std::string run(const std::string& input = "") {
    start(input);
    return report();
  }

 private:
  [[noreturn]] static void runChild(const Probe& probe, int unshareFlags, int joinNetnsFd,
                                    int input, int output);

  pid_t pid_ = -1;
  Fd input_;   // the parent writes start()'s input
  Fd output_;  // "1" once the namespaces are in place, then the report
};

NamespacedChild::NamespacedChild(const Probe& probe, int unshareFlags, int joinNetnsFd) {
  int toChild[2], fromChild[2];
  base::check(pipe2(toChild, O_CLOEXEC), "pipe2");
  Fd childInput(toChild[0]);
  input_.reset(toChild[1]);
  base::check(pipe2(fromChild, O_CLOEXEC), "pipe2");
  output_.reset(fromChild[0]);
  Fd childOutput(fromChild[1]);
  pid_ = static_cast<pid_t>(base::check(fork(), "fork"));
  if (pid_ == 0) {
    input_.reset();
    output_.reset();
    runChild(probe, unshareFlags, joinNetnsFd, childInput.get(), childOutput.get());
  }
  childOutput.reset();
  // configureNetwork must not run before the child is in its own namespace.
  pollfd ready{output_.get(), POLLIN, 0};
  char byte = 0;
  if (poll(&ready, 1, kTimeoutMs) != 1 || read(output_.get(), &byte, 1) != 1 || byte != '1') {
    throw std::runtime_error("the child did not enter its namespaces: " + report());
  }
}

void NamespacedChild::runChild(const Probe& probe, int unshareFlags, int joinNetnsFd, int input,
                               int output) {
  std::string result;
  if (unshareFlags != 0 && unshare(unshareFlags) != 0) {
    result = "0unshare: " + errnoName(errno);
  } else if (joinNetnsFd >= 0 && setns(joinNetnsFd, CLONE_NEWNET) != 0) {
    result = "0setns: " + errnoName(errno);
  } else if (write(output, "1", 1) == 1) {
    // Up to a newline, not EOF: children forked later hold copies of the
    // pipe's write end.
    std::string received;
    char c;
    while (read(input, &c, 1) == 1 && c != '\n') received += c;
    try {
      result = probe(received);
    } catch (const std::exception& e) {
      result = std::string("exception: ") + e.what();
    }
  }
  for (size_t done = 0; done < result.size();) {
    ssize_t n = write(output, result.data() + done, result.size() - done);
    if (n <= 0) break;
    done += n;
  }
  _exit(0);  // never back into the test framework
}

void NamespacedChild::start(const std::string& input) {
  std::string line = input + "\n";
  if (write(input_.get(), line.data(), line.size()) != ssize_t(line.size())) {
    base::throwSysError("write(child input)");
  }
  input_.reset();
}

std::string NamespacedChild::report() {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTimeoutMs);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd readable{output_.get(), POLLIN, 0};
    if (left.count() <= 0 || poll(&readable, 1, static_cast<int>(left.count())) != 1) {
      out += " [timed out]";
      break;
    }
    char buf[512];
    ssize_t n = read(output_.get(), buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, n);
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
  return out;
}

NamespacedChild::~NamespacedChild() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
}

NamespacedChild::Probe probe(std::function<std::string()> look) {
  return [look = std::move(look)](const std::string&) { return look(); };
}

// ---- The host namespace, with iproute2 (independent of the code under test)

void ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv{kIp};
  argv.insert(argv.end(), args.begin(), args.end());
  testing_util::CommandResult result = testing_util::run(argv);
  if (result.exitCode != 0) {
    throw std::runtime_error("ip " + join(args, " ") + ": " + result.err);
  }
}

bool ipQuietly(const std::vector<std::string>& args) {
  std::vector<std::string> argv{kIp};
  argv.insert(argv.end(), args.begin(), args.end());
  return testing_util::run(argv).exitCode == 0;
}

// The test process stays in the host's namespace, so these are the host's.
std::vector<std::string> hostLinksStartingWith(const std::string& prefix) {
  std::vector<std::string> found;
  for (const auto& name : linkNames()) {
    if (name.rfind(prefix, 0) == 0) found.push_back(name);
  }
  return found;
}

bool hostLinkExists(const std::string& name) {
  return if_nametoindex(name.c_str()) != 0;
}

std::string sysfs(const std::string& link, const std::string& attribute) {
  std::string value = testing_util::readFile("/sys/class/net/" + link + "/" + attribute);
  while (!value.empty() && value.back() == '\n') value.pop_back();
  return value;
}

// Removes a host link (the bridge configureNetwork creates) at scope exit.
class HostLinkGuard {
 public:
  explicit HostLinkGuard(std::string name) : name_(std::move(name)) {}
  ~HostLinkGuard() {
    if (hostLinkExists(name_)) ipQuietly({"link", "del", name_});
  }
  HostLinkGuard(const HostLinkGuard&) = delete;
  HostLinkGuard& operator=(const HostLinkGuard&) = delete;

 private:
  std::string name_;
};

// Another machine on the bridge, as far as the sandbox can tell: a named
// namespace with a veth port on the bridge and an address in the sandbox's
// subnet. Its port's MAC is the lowest a random MAC can be, so that a bridge
// that followed its ports' addresses would take it.
class TestHost {
 public:
  TestHost(std::string name, std::string veth, const std::string& bridge, const std::string& cidr)
      : name_(std::move(name)), veth_(std::move(veth)) {
    try {
      ip({"netns", "add", name_});
      ip({"link", "add", veth_, "address", "02:00:00:00:00:01", "type", "veth", "peer", "name",
          "eth0", "netns", name_});
      ip({"link", "set", veth_, "master", bridge, "up"});
      ip({"-n", name_, "addr", "add", cidr, "dev", "eth0"});
      ip({"-n", name_, "link", "set", "eth0", "up"});
      ip({"-n", name_, "link", "set", "lo", "up"});
    } catch (...) {
      remove();
      throw;
    }
  }
  ~TestHost() { remove(); }
  TestHost(const TestHost&) = delete;
  TestHost& operator=(const TestHost&) = delete;

  // A listener inside the test host: the socket keeps the namespace it was
  // made in.
  Listener listen(const std::string& ip) {
    Fd netns = checkedFd(open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC),
                         "open(/run/netns/" + name_ + ")");
    sandbox::NetnsGuard inside(netns.get());
    return listenTcp(ip);
  }

 private:
  void remove() {
    if (hostLinkExists(veth_)) ipQuietly({"link", "del", veth_});
    ipQuietly({"netns", "del", name_});
  }

  std::string name_;
  std::string veth_;
};

std::string capturedStderrOf(const std::function<void()>& action) {
  testing::internal::CaptureStderr();
  action();
  return testing::internal::GetCapturedStderr();
}

// ---- Tests ----------------------------------------------------------------

class NetworkTest : public testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, bridges, veths)";
  }
};

TEST_F(NetworkTest, GuardReturnsToTheOriginalNamespace) {
  ino_t original = ownNetnsInode();
  Fd pooled = sandbox::makeEmptyNetns();
  {
    sandbox::NetnsGuard inside(pooled.get());
    EXPECT_EQ(ownNetnsInode(), netnsInode(pooled.get()));
  }
  EXPECT_EQ(ownNetnsInode(), original);

  EXPECT_THROW(
      {
        sandbox::NetnsGuard inside(pooled.get());
        throw std::runtime_error("failure inside");
      },
      std::runtime_error);
  EXPECT_EQ(ownNetnsInode(), original);

  Fd notANamespace = checkedFd(open("/dev/null", O_RDONLY | O_CLOEXEC), "open(/dev/null)");
  try {
    sandbox::NetnsGuard inside(notANamespace.get());
    ADD_FAILURE() << "entered /dev/null";
  } catch (const base::SysError& e) {
    EXPECT_EQ(e.error(), EINVAL) << e.what();
  }
  EXPECT_EQ(ownNetnsInode(), original);
}

TEST_F(NetworkTest, FreshNamespaceStartsWithLoopbackDown) {
  // The baseline the next tests change: without configureNetwork, lo is down.
  NamespacedChild sandbox(probe(describeLinks));
  EXPECT_EQ(sandbox.run(), "lo down");
}

TEST_F(NetworkTest, NoneModeShowsOnlyLoopbackUp) {
  NamespacedChild sandbox(probe([] { return describeLinks() + " | " + defaultRoute(); }));
  auto attachment = sandbox::configureNetwork(sandbox.pid(), NetSpec{}, "unused");
  ASSERT_NE(attachment, nullptr);
  EXPECT_EQ(sandbox.run(), "lo up 127.0.0.1/8 | no default route");
}

TEST_F(NetworkTest, NoneModeCannotReachTheHostsLoopback) {
  Listener hostService = listenTcp("127.0.0.1");
  ASSERT_EQ(tryConnect("127.0.0.1", hostService.port), "connected");  // it is there, for the host
  uint16_t port = hostService.port;
  NamespacedChild sandbox(probe([port] { return tryConnect("127.0.0.1", port); }));
  auto attachment = sandbox::configureNetwork(sandbox.pid(), NetSpec{}, "unused");
  // Refused rather than unreachable: the sandbox's own loopback is up, and
  // nothing listens on it.
  EXPECT_EQ(sandbox.run(), "ECONNREFUSED");
}

TEST_F(NetworkTest, PooledNamespaceHasOnlyLoopbackUp) {
  auto pooled = std::make_shared<const Fd>(sandbox::makeEmptyNetns());
  Fd another = sandbox::makeEmptyNetns();
  EXPECT_NE(netnsInode(pooled->get()), netnsInode(another.get()));
  EXPECT_NE(netnsInode(pooled->get()), ownNetnsInode());

  Listener hostService = listenTcp("127.0.0.1");
  uint16_t port = hostService.port;
  NamespacedChild sandbox(
      probe([port] { return describeLinks() + " | " + tryConnect("127.0.0.1", port); }), 0,
      pooled->get());
  NetSpec spec;
  spec.emptyNetns = pooled;
  auto attachment = sandbox::configureNetwork(sandbox.pid(), spec, "unused");
  EXPECT_EQ(sandbox.run(), "lo up 127.0.0.1/8 | ECONNREFUSED");
}

TEST_F(NetworkTest, RefusesAChildOutsideTheGivenPooledNamespace) {
  NamespacedChild sandbox(probe(describeLinks));  // in a fresh namespace instead
  NetSpec spec;
  spec.emptyNetns = std::make_shared<const Fd>(sandbox::makeEmptyNetns());
  EXPECT_THROW(sandbox::configureNetwork(sandbox.pid(), spec, "unused"), std::invalid_argument);
}

// The spec owns its share of the pooled namespace: a sandbox built from a
// copy, once every other owner is gone, is cloned into that namespace.
TEST_F(NetworkTest, ASandboxJoinsThePooledNamespaceACopyOfItsSpecCarries) {
  auto pooled = std::make_shared<const Fd>(sandbox::makeEmptyNetns());
  ino_t inode = netnsInode(pooled->get());
  sandbox::IdAllocator ids("/run/thatch/ids", sandbox::IdRange{});
  sandbox::IdLease lease = ids.acquire();
  rootfs::SandboxShape shape;
  shape.hostId = lease.hostId();
  shape.idSlot = lease.slot();
  shape.cwd = "/";  // no code at /var/task
  sandbox::Spec spec = rootfs::sandboxSpec(shape);
  spec.seccomp = std::make_shared<sandbox::SeccompProgram>(sandbox::SeccompProgram{
      {sandbox::kPythonPolicyBpf, sandbox::kPythonPolicyBpf + sandbox::kPythonPolicyBpfLength}});
  spec.net.emptyNetns = std::move(pooled);
  sandbox::Spec copy = spec;
  spec = sandbox::Spec{};

  auto cgroups = sandbox::detectCgroups();
  std::string name = "netns-test-" + std::to_string(getpid());
  sandbox::Sandbox box(copy, {name, ""}, *cgroups, [inode](const sandbox::ChildChannel&) {
    struct stat st;
    return stat("/proc/self/ns/net", &st) == 0 && st.st_ino == inode ? 0 : 1;
  });
  sandbox::Outcome outcome =
      box.wait(sandbox::Sandbox::Clock::now() + std::chrono::milliseconds(kTimeoutMs));
  EXPECT_EQ(outcome.kind, sandbox::Outcome::Kind::kExited);
  EXPECT_EQ(outcome.code, 0) << "the sandbox was not in the pooled namespace";
}

TEST_F(NetworkTest, RefusesAChildInTheCallersNamespace) {
  NamespacedChild sameNamespace(probe(describeLinks), 0);
  EXPECT_THROW(sandbox::configureNetwork(sameNamespace.pid(), NetSpec{}, "unused"),
               std::invalid_argument);
}

class EgressTest : public NetworkTest {
 protected:
  EgressTest() {
    char prefix[16];
    std::snprintf(prefix, sizeof prefix, "tht%03d", getpid() % 1000);
    prefix_ = prefix;
    bridge_ = prefix_ + "br";
    subnet_ = "10.203." + std::to_string(getpid() % 250) + ".";
  }

  void TearDown() override {
    if (IsSkipped()) return;
    // The tests' guards are gone by now, and the library removes its veths.
    std::vector<std::string> leftovers = hostLinksStartingWith(prefix_);
    EXPECT_TRUE(leftovers.empty()) << "left on the host: " << join(leftovers, ", ");
    for (const auto& name : leftovers) ipQuietly({"link", "del", name});
  }

  std::string address(int host) const { return subnet_ + std::to_string(host); }
  std::string veth(int host) const { return prefix_ + "s" + std::to_string(host); }

  NetSpec egressSpec(int host) const {
    NetSpec spec;
    spec.mode = NetMode::kEgress;
    spec.egress.bridge = bridge_;
    spec.egress.bridgeAddress = address(1) + "/24";
    spec.egress.sandboxAddress = address(host) + "/24";
    return spec;
  }

  std::string prefix_;
  std::string bridge_;
  std::string subnet_;
};

TEST_F(EgressTest, SandboxReachesAHostOnTheBridge) {
  HostLinkGuard bridge(bridge_);
  std::string testHostIp = address(3);
  NamespacedChild sandbox([testHostIp](const std::string& port) {
    return describeLinks() + " | " + defaultRoute() + " | " + pingPong(testHostIp, std::stoi(port));
  });
  auto attachment = sandbox::configureNetwork(sandbox.pid(), egressSpec(2), veth(2));
  EXPECT_NE(attachment->describe().find(veth(2)), std::string::npos) << attachment->describe();

  // The host side: the bridge with its address, up, and the veth on it.
  EXPECT_EQ(ipv4Addresses(bridge_), std::vector<std::string>{address(1) + "/24"});
  EXPECT_TRUE(isUp(bridge_));
  EXPECT_TRUE(isUp(veth(2)));
  EXPECT_EQ(std::filesystem::read_symlink("/sys/class/net/" + veth(2) + "/master").filename(),
            bridge_);

  TestHost testHost(prefix_ + "host", prefix_ + "h", bridge_, testHostIp + "/24");
  Listener listener = testHost.listen(testHostIp);
  sandbox.start(std::to_string(listener.port));
  EXPECT_EQ(servePong(listener.fd.get()), address(2));  // the sandbox's own address: no NAT
  EXPECT_EQ(sandbox.report(), "eth0 up " + address(2) + "/24, lo up 127.0.0.1/8 | default via " +
                                  address(1) + " dev eth0 | pong");
}

TEST_F(EgressTest, BridgeKeepsItsMacAsPortsJoin) {
  HostLinkGuard bridge(bridge_);
  NamespacedChild sandbox(probe(describeLinks));
  auto attachment = sandbox::configureNetwork(sandbox.pid(), egressSpec(2), veth(2));
  std::string mac = sysfs(bridge_, "address");
  EXPECT_EQ(sysfs(bridge_, "addr_assign_type"), "3");  // NET_ADDR_SET: chosen, not inherited
  TestHost lowestMac(prefix_ + "host", prefix_ + "h", bridge_, address(3) + "/24");
  EXPECT_EQ(sysfs(bridge_, "address"), mac);
}

TEST_F(EgressTest, AttachmentRemovesTheHostVeth) {
  HostLinkGuard bridge(bridge_);
  {
    NamespacedChild sandbox(probe(describeLinks));
    auto attachment = sandbox::configureNetwork(sandbox.pid(), egressSpec(2), veth(2));
    EXPECT_TRUE(hostLinkExists(veth(2)));
    attachment.reset();
    EXPECT_FALSE(hostLinkExists(veth(2)));
    EXPECT_EQ(sandbox.run(), "lo up 127.0.0.1/8");  // eth0 went with its pair
  }
  {
    // The sandbox dies first: the kernel removes the pair with its namespace
    // (asynchronously), and the attachment copes with either order.
    auto sandbox = std::make_unique<NamespacedChild>(probe(describeLinks));
    auto attachment = sandbox::configureNetwork(sandbox->pid(), egressSpec(3), veth(3));
    sandbox.reset();
    EXPECT_EQ(capturedStderrOf([&] { attachment.reset(); }), "");
    EXPECT_FALSE(hostLinkExists(veth(3)));
  }
}

TEST_F(EgressTest, ConcurrentSandboxesShareOneBridge) {
  HostLinkGuard bridge(bridge_);
  constexpr int kSandboxes = 4;
  // All children first: forking while threads run is best avoided.
  std::vector<std::unique_ptr<NamespacedChild>> sandboxes;
  for (int i = 0; i < kSandboxes; ++i) {
    sandboxes.push_back(std::make_unique<NamespacedChild>(
        probe([] { return describeLinks() + " | " + defaultRoute(); })));
  }
  std::vector<std::unique_ptr<sandbox::NetworkAttachment>> attachments(kSandboxes);
  std::vector<std::string> errors(kSandboxes);
  std::vector<std::thread> threads;
  for (int i = 0; i < kSandboxes; ++i) {
    threads.emplace_back([&, i] {
      try {
        attachments[i] =
            sandbox::configureNetwork(sandboxes[i]->pid(), egressSpec(10 + i), veth(10 + i));
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int i = 0; i < kSandboxes; ++i) {
    EXPECT_EQ(errors[i], "") << "sandbox " << i;
    EXPECT_EQ(sandboxes[i]->run(), "eth0 up " + address(10 + i) + "/24, lo up 127.0.0.1/8 | " +
                                       "default via " + address(1) + " dev eth0");
  }
  EXPECT_EQ(ipv4Addresses(bridge_), std::vector<std::string>{address(1) + "/24"});
}

TEST_F(EgressTest, RejectsBadSpecsAndLeavesNothing) {
  HostLinkGuard bridge(bridge_);
  NamespacedChild sandbox(probe(describeLinks));
  auto rejects = [&](const NetSpec& spec, const std::string& hostVeth) {
    EXPECT_THROW(sandbox::configureNetwork(sandbox.pid(), spec, hostVeth), std::invalid_argument);
  };
  NetSpec noPrefix = egressSpec(2);
  noPrefix.egress.sandboxAddress = address(2);
  rejects(noPrefix, veth(2));
  NetSpec notAnAddress = egressSpec(2);
  notAnAddress.egress.bridgeAddress = "10.203.300.1/24";
  rejects(notAnAddress, veth(2));
  NetSpec theGateway = egressSpec(2);
  theGateway.egress.sandboxAddress = address(1) + "/24";
  rejects(theGateway, veth(2));
  NetSpec longBridge = egressSpec(2);
  longBridge.egress.bridge = prefix_ + "-much-too-long";
  rejects(longBridge, veth(2));
  rejects(egressSpec(2), prefix_ + "-much-too-long");
  rejects(egressSpec(2), "");
  EXPECT_EQ(hostLinksStartingWith(prefix_), std::vector<std::string>{});

  NamespacedChild sameNamespace(probe(describeLinks), 0);
  EXPECT_THROW(sandbox::configureNetwork(sameNamespace.pid(), egressSpec(2), veth(2)),
               std::invalid_argument);
  EXPECT_EQ(hostLinksStartingWith(prefix_), std::vector<std::string>{});
  EXPECT_EQ(sandbox.run(), "lo down");
}

TEST_F(EgressTest, TakenVethNameFailsAndSparesTheOwner) {
  HostLinkGuard bridge(bridge_);
  HostLinkGuard taken(veth(2));
  ip({"link", "add", veth(2), "type", "veth", "peer", "name", prefix_ + "t"});
  NamespacedChild sandbox(probe(describeLinks));
  try {
    sandbox::configureNetwork(sandbox.pid(), egressSpec(2), veth(2));
    ADD_FAILURE() << "configured a sandbox with a taken veth name";
  } catch (const base::SysError& e) {
    EXPECT_EQ(e.error(), EEXIST) << e.what();
    EXPECT_NE(std::string(e.what()).find("rtnl_link_add(veth " + veth(2)), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(hostLinkExists(veth(2)));  // someone else's: left alone
  EXPECT_EQ(sandbox.run(), "lo down");
}

TEST_F(EgressTest, FailureInsideRemovesTheVeth) {
  HostLinkGuard bridge(bridge_);
  NamespacedChild sandbox(probe(describeLinks));
  NetSpec offLink = egressSpec(2);
  offLink.egress.sandboxAddress = address(2) + "/32";  // the gateway is not on-link
  try {
    sandbox::configureNetwork(sandbox.pid(), offLink, veth(2));
    ADD_FAILURE() << "added a default route via an unreachable gateway";
  } catch (const base::SysError& e) {
    EXPECT_EQ(e.error(), ENETUNREACH) << e.what();
    EXPECT_NE(std::string(e.what()).find("rtnl_route_add(default via " + address(1)),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(hostLinkExists(veth(2)));
  EXPECT_EQ(sandbox.run(), "lo up 127.0.0.1/8");
}

}  // namespace
