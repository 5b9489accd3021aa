// End-to-end latency and throughput of warm invocations through thatchd's
// socket, beside a no-op call (Thatch.ping) to the same server in the same
// run: the ratio is what thatch adds over Cap'n Proto itself.
//
//   api-bench [SECONDS_PER_POINT] [--overload] [--tcp] [--profile CLIENTS]
//
// --tcp measures only a warm invoke over TCP with a [[client]]'s token
// beside the same over the Unix socket, in alternating slices.
// --overload measures only the points with the concurrency at the number of
// cores and the overload point below; --profile measures only the warm
// invoke with CLIENTS clients, after printing thatchd's pid: a steady load
// to attach a profiler to.
//
// Its thatchd is build/bin's (beside build/bench), run like the tests' with
// a state directory, socket and cgroup subtree of its own. The function's
// concurrency is 64, a sandbox per client; a second thatchd measures 1
// client without busy polling, and a third 16 and 64 clients with the
// concurrency at the number of cores, where calls queue and are sent ahead
// into the busy sandboxes. Overload: 64 clients on a fourth thatchd whose
// pools have the default settings (concurrency 8, 8 warm, a queue of 64),
// measured in turn with the third's points, beside the best of them.
#include <openssl/sha.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "bench/load.h"
#include "supervisor/busy_poll.h"
#include "supervisor/config.h"
#include "tests/daemon.h"
#include "thatch/thatch.h"

namespace {

using bench::Point;
using bench::Run;
constexpr unsigned kMaxClients = 64;

std::string poolConfig(unsigned concurrency, unsigned busyPollUs) {
  return "[pool]\nconcurrency = " + std::to_string(concurrency) +
         "\nmax_warm = " + std::to_string(kMaxClients) +
         "\nqueue_length = 256\n[host]\nmax_warm_memory = \"16GiB\"\nbusy_poll_us = " +
         std::to_string(busyPollUs) + "\n";
}

// One thatchd with `hello` deployed and as many sandboxes prewarmed as its
// pool keeps, up to one per client: this measures thatching, not starts.
// Its admin connections come and go (a thread has one kj loop, hence one
// thatch::Thatch, and two daemons may be up at once).
struct Daemon {
  explicit Daemon(const std::string& config) : daemon(config) {
    auto admin = thatch::Thatch::connect(daemon.socketPath());
    admin->deploy("hello", testing_util::example("hello"));
    warm = admin->prewarm("hello", kMaxClients);
  }
  thatch::Stats stats() const { return thatch::Thatch::connect(daemon.socketPath())->stats(); }
  testing_util::TestDaemon daemon;
  unsigned warm = 0;
};

// A series to measure: a call with `clients` of a daemon's connections
// (to its socket, or to `address` logged in with `token`).
struct Series {
  const Daemon* daemon;
  unsigned clients;
  Run::Call call;
  std::string address = "";
  std::string token = "";
  kj::TlsContext* tls = nullptr;  // for a tls: address
};

// The load generator runs on its own event loop (a thread has one; the
// admin connections' are elsewhere), with kMaxClients connections to each
// daemon; the series are measured in turn, slice by slice.
std::vector<Point> measureAll(const std::vector<Series>& series, double seconds) {
  std::vector<Point> points;
  std::string error;
  std::thread([&] {
    try {
      auto io = kj::setupAsyncIo();
      std::vector<std::pair<const Daemon*, std::string>> daemons;       // and the address
      std::deque<std::vector<kj::Own<bench::Connection>>> connections;  // stays in place
      std::vector<Run> runs(series.size());
      for (size_t i = 0; i < series.size(); ++i) {
        std::pair<const Daemon*, std::string> key{series[i].daemon, series[i].address};
        auto known = std::find(daemons.begin(), daemons.end(), key);
        if (known == daemons.end()) {
          daemons.push_back(key);
          std::string address =
              key.second.empty() ? series[i].daemon->daemon.socketPath() : key.second;
          connections.push_back(bench::connectMany(io, address, "hello", kMaxClients,
                                                   series[i].token, series[i].tls));
          known = daemons.end() - 1;
        }
        runs[i].call = series[i].call;
        runs[i].clients = series[i].clients;
        runs[i].connections = &connections[known - daemons.begin()];
      }
      std::vector<Run*> order;
      for (Run& run : runs) order.push_back(&run);
      bench::measureAlternating(io, order, seconds);
      for (Run& run : runs) points.push_back(run.summary());
    } catch (const std::exception& e) {
      error = e.what();
    }
  }).join();
  if (!error.empty()) throw std::runtime_error(error);
  return points;
}

// The no-op and the warm invoke with each of `clientCounts` clients, each
// client making one call at a time: pairs of points, no-op first.
std::vector<Point> measurePairs(const Daemon& d, const std::vector<unsigned>& clientCounts,
                                double seconds) {
  std::vector<Point> points;
  for (unsigned clients : clientCounts) {
    auto pair =
        measureAll({{&d, clients, Run::Call::kPing}, {&d, clients, Run::Call::kInvoke}}, seconds);
    points.insert(points.end(), pair.begin(), pair.end());
  }
  return points;
}

void printPoints(const char* label, unsigned clients, const Point& noop, const Point& invoke) {
  for (auto [name, p] : {std::pair{"no-op ping", noop}, std::pair{"warm invoke", invoke}})
    printf("%-8u %-14s %10.1f %10.1f %12.0f %9llu  %s\n", clients, name, p.p50us, p.p99us,
           p.perSecond, static_cast<unsigned long long>(p.failures), label);
  printf("%-8u %-14s %10.2fx %9.2fx %11.2fx  %s\n", clients, "invoke/no-op",
         invoke.p50us / noop.p50us, invoke.p99us / noop.p99us, invoke.perSecond / noop.perSecond,
         label);
}

void printHeader() {
  printf("%-8s %-14s %10s %10s %12s %9s\n", "clients", "call", "p50 us", "p99 us", "calls/s",
         "failures");
}

// The points with the concurrency at the number of cores and, in turn with
// them, 64 clients on a function with the default pool settings. Returns
// the best warm invocations/s of the points at cores.
double measureAtCoresAndOverload(double seconds) {
  unsigned cores = supervisor::BusyPoll::usableCores();
  unsigned busyPoll = supervisor::HostConfig{}.busyPoll.count();
  // As many sandboxes as cores: the rest of the clients' calls queue, and
  // are sent ahead into the busy sandboxes (docs/thatching.md).
  Daemon atCores(poolConfig(cores, busyPoll));
  Daemon defaults("");
  printf("thatchd (concurrency = %u cores) up; thatchd (default pool settings) up, %u warm\n\n",
         cores, defaults.warm);
  const std::vector<unsigned> clientCounts = {16u, kMaxClients};
  std::vector<Series> series;
  for (unsigned clients : clientCounts) {
    series.push_back({&atCores, clients, Run::Call::kPing});
    series.push_back({&atCores, clients, Run::Call::kInvoke});
  }
  series.push_back({&defaults, kMaxClients, Run::Call::kInvoke});
  std::vector<Point> points = measureAll(series, seconds);
  thatch::Stats stats = atCores.stats();
  printHeader();
  std::string label = "(concurrency = " + std::to_string(cores) + ")";
  double best = 0;
  unsigned bestClients = 0;
  for (size_t i = 0; i < clientCounts.size(); ++i) {
    printPoints(label.c_str(), clientCounts[i], points[2 * i], points[2 * i + 1]);
    if (points[2 * i + 1].perSecond > best) {
      best = points[2 * i + 1].perSecond;
      bestClients = clientCounts[i];
    }
  }
  const Point& overload = points.back();
  printf("%-8u %-14s %10.1f %10.1f %12.0f %9llu  (default pool settings)\n", kMaxClients,
         "warm invoke", overload.p50us, overload.p99us, overload.perSecond,
         static_cast<unsigned long long>(overload.failures));
  printf("\nthatchd %s: %llu of %llu warm invocations were sent ahead\n", label.c_str(),
         static_cast<unsigned long long>(stats.sentAheadStarted),
         static_cast<unsigned long long>(stats.warmStarts));
  printf(
      "overload: %u clients, default pool settings: %.0f invocations/s; best point (concurrency "
      "= %u, %u clients): %.0f/s; ratio %.2f (target >= 0.90)\n",
      kMaxClients, overload.perSecond, cores, bestClients, best,
      best > 0 ? overload.perSecond / best : 0.0);
  return best;
}

std::string sha256Hex(const std::string& text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  std::string hex;
  for (unsigned char byte : digest) {
    char two[3];
    snprintf(two, sizeof two, "%02x", byte);
    hex += two;
  }
  return hex;
}

std::string tomlClient(const std::string& token) {
  return "[[client]]\nname = \"bench\"\ntoken_sha256 = \"" + sha256Hex(token) +
         "\"\nallow = [\"invoke:hello\"]\n";
}

// A warm invoke over TCP, logged in with a token, beside the same over the
// Unix socket, and over TLS (a second thatchd, tls_cert): 1 and 16
// clients, all measured in alternating slices in the same run.
void measureTcpWithToken(double seconds) {
  const std::string token = "api-bench token";
  std::string pool = poolConfig(kMaxClients, supervisor::HostConfig{}.busyPoll.count());
  std::string hostPort = "127.0.0.1:" + std::to_string(20000 + (getpid() + 4099) % 20000);
  std::string tlsPort = std::to_string(20000 + (getpid() + 5099) % 20000);
  testing_util::TempDir certs;
  std::string cert = certs.path() + "/cert.pem", key = certs.path() + "/key.pem";
  if (testing_util::run({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                         "-days", "2", "-subj", "/CN=localhost", "-addext",
                         "subjectAltName=DNS:localhost"})
          .exitCode != 0)
    throw std::runtime_error("openssl req failed: cannot make a certificate");
  Daemon d("tcp_listen = \"" + hostPort + "\"\n" + pool + tomlClient(token));
  Daemon tlsDaemon("tcp_listen = \"127.0.0.1:" + tlsPort + "\"\ntls_cert = \"" + cert +
                   "\"\ntls_key = \"" + key + "\"\n" + pool + tomlClient(token));
  std::string pem = testing_util::readFile(cert);
  kj::TlsCertificate trusted(kj::StringPtr(pem.c_str()));
  kj::TlsContext::Options options;
  options.useSystemTrustStore = false;
  options.trustedCertificates = kj::arrayPtr(&trusted, 1);
  kj::TlsContext tls(kj::mv(options));
  printf(
      "thatchd (tcp_listen %s) and thatchd (tls_cert, tcp_listen 127.0.0.1:%s) up, a "
      "[[client]] with invoke:hello\n\n",
      hostPort.c_str(), tlsPort.c_str());
  std::vector<Series> series;
  for (unsigned clients : {1u, 16u}) {
    series.push_back({&d, clients, Run::Call::kInvoke});
    series.push_back({&d, clients, Run::Call::kInvoke, "tcp:" + hostPort, token});
    series.push_back({&tlsDaemon, clients, Run::Call::kInvoke});
    series.push_back(
        {&tlsDaemon, clients, Run::Call::kInvoke, "tls:localhost:" + tlsPort, token, &tls});
  }
  std::vector<Point> points = measureAll(series, seconds);
  printHeader();
  for (size_t i = 0; i < points.size(); i += 4) {
    unsigned clients = series[i].clients;
    const Point* p = &points[i];
    const char* names[] = {"unix invoke", "tcp+token", "unix (2nd)", "tls+token"};
    for (int k = 0; k < 4; ++k)
      printf("%-8u %-14s %10.1f %10.1f %12.0f %9llu\n", clients, names[k], p[k].p50us, p[k].p99us,
             p[k].perSecond, static_cast<unsigned long long>(p[k].failures));
    printf("%-8u %-14s %10.2fx %9.2fx %11.2fx%s\n", clients, "tcp/unix", p[1].p50us / p[0].p50us,
           p[1].p99us / p[0].p99us, p[1].perSecond / p[0].perSecond,
           clients == 1 ? "  (target p50 <= 1.2x)" : "");
    printf("%-8u %-14s %10.2fx %9.2fx %11.2fx\n", clients, "tls/unix", p[3].p50us / p[2].p50us,
           p[3].p99us / p[2].p99us, p[3].perSecond / p[2].perSecond);
  }
  printf("\n");
}

int profile(unsigned clients, double seconds) {
  Daemon d(poolConfig(kMaxClients, supervisor::HostConfig{}.busyPoll.count()));
  printf("thatchd pid %d; warm invokes from %u clients for %.1f s\n", d.daemon.pid(), clients,
         seconds);
  fflush(stdout);
  Point invoke = measureAll({{&d, clients, Run::Call::kInvoke}}, seconds)[0];
  printf("warm invoke: p50 %.1f us, p99 %.1f us, %.0f calls/s, %llu failures\n", invoke.p50us,
         invoke.p99us, invoke.perSecond, static_cast<unsigned long long>(invoke.failures));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3.0;
  unsigned profileClients = 0;
  bool overloadOnly = false, tcpOnly = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--profile" && i + 1 < argc) {
      profileClients = static_cast<unsigned>(atoi(argv[++i]));
      if (profileClients < 1 || profileClients > kMaxClients) profileClients = 0;
      if (!profileClients) {
        fprintf(stderr, "api-bench: --profile takes 1 to %u clients\n", kMaxClients);
        return 2;
      }
    } else if (arg == "--overload") {
      overloadOnly = true;
    } else if (arg == "--tcp") {
      tcpOnly = true;
    } else if (i == 1 && atof(argv[i]) > 0) {
      seconds = atof(argv[i]);
    } else {
      fprintf(stderr,
              "usage: api-bench [SECONDS_PER_POINT] [--overload] [--tcp] [--profile CLIENTS]\n");
      return 2;
    }
  }
  try {
    unsigned concurrency =
        getenv("BENCH_CONCURRENCY") ? atoi(getenv("BENCH_CONCURRENCY")) : kMaxClients;
    if (profileClients) return profile(profileClients, seconds);
    if (overloadOnly) {
      measureAtCoresAndOverload(seconds);
      return 0;
    }
    if (tcpOnly) {
      measureTcpWithToken(seconds);
      return 0;
    }
    const std::vector<unsigned> clientCounts = {1u, 16u, kMaxClients};
    unsigned busyPoll = supervisor::HostConfig{}.busyPoll.count();
    std::vector<Point> points, pointsWithoutPolling;
    thatch::Stats stats;
    {
      Daemon d(poolConfig(concurrency, /*busyPollUs=*/0));
      printf(
          "thatchd (busy_poll_us = 0) up; %u warm sandboxes of examples/hello; %.1f s per "
          "point\n",
          d.warm, seconds);
      pointsWithoutPolling = measurePairs(d, {1u}, seconds);
    }
    {
      Daemon d(poolConfig(concurrency, busyPoll));
      printf("thatchd (default config) up; %u warm sandboxes of examples/hello\n\n", d.warm);
      points = measurePairs(d, clientCounts, seconds);
      stats = d.stats();
    }
    printHeader();
    double ratioAt1 = 0, bestThroughput = 0;
    for (size_t i = 0; i < clientCounts.size(); ++i) {
      const Point& noop = points[2 * i];
      const Point& warmInvoke = points[2 * i + 1];
      printPoints("", clientCounts[i], noop, warmInvoke);
      if (clientCounts[i] == 1) ratioAt1 = warmInvoke.p50us / noop.p50us;
      bestThroughput = std::max(bestThroughput, warmInvoke.perSecond);
    }
    printPoints("(busy_poll_us = 0)", 1, pointsWithoutPolling[0], pointsWithoutPolling[1]);
    printf("\nwarm invoke p50 / no-op p50, 1 client: %.2fx (target <= 1.5x)\n", ratioAt1);
    printf("thatchd: %llu cold starts, %llu warm starts; sandboxes killed:",
           static_cast<unsigned long long>(stats.coldStarts),
           static_cast<unsigned long long>(stats.warmStarts));
    for (const auto& [reason, count] : stats.killsByReason)
      printf(" %s %llu", reason.c_str(), static_cast<unsigned long long>(count));
    printf("\nthatchd: %llu of %llu warm invocations answered through the shared page\n\n",
           static_cast<unsigned long long>(stats.answeredInPage),
           static_cast<unsigned long long>(stats.warmStarts));
    bestThroughput = std::max(bestThroughput, measureAtCoresAndOverload(seconds));
    printf("warm invocations/s, best of all points: %.0f (target >= 15000)\n", bestThroughput);
  } catch (const std::exception& e) {
    fprintf(stderr, "api-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
