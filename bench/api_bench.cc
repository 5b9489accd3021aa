// End-to-end latency and throughput of warm invocations through thatchd's
// socket, beside a no-op call (Thatch.ping) to the same server in the same
// run: the ratio is what thatch adds over Cap'n Proto itself.
//
//   api-bench [SECONDS_PER_POINT] [--profile CLIENTS]
//
// --profile measures only the warm invoke with CLIENTS clients, after
// printing thatchd's pid: a steady load to attach a profiler to.
//
// Its thatchd is build/bin's (beside build/bench), run like the tests' with
// a state directory, socket and cgroup subtree of its own. The function's
// concurrency is 64, a sandbox per client; a second thatchd measures 1
// client without busy polling, and a third 16 and 64 clients with the
// concurrency at the number of cores, where calls queue and are sent ahead
// into the busy sandboxes.
#include <capnp/rpc-twoparty.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "api/thatch.capnp.h"
#include "base/socket_stream.h"
#include "supervisor/busy_poll.h"
#include "supervisor/config.h"
#include "tests/daemon.h"
#include "thatch/thatch.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr unsigned kMaxClients = 64;

struct Point {
  double p50us = 0, p99us = 0, perSecond = 0;
  uint64_t calls = 0, failures = 0;
};

// One client: a connection of its own, one call in flight at a time.
struct Connection {
  explicit Connection(kj::Own<kj::AsyncIoStream> s)
      : stream(kj::mv(s)),
        client(*stream),
        thatch(client.bootstrap().castAs<thatch::api::Thatch>()) {
    auto get = thatch.getRequest();
    get.setName("hello");
    function = get.send().getFunction();
  }
  kj::Own<kj::AsyncIoStream> stream;
  capnp::TwoPartyClient client;
  thatch::api::Thatch::Client thatch;
  thatch::api::Function::Client function = nullptr;
};

enum class Call { kPing, kInvoke };

struct Run {
  Call call;
  Clock::time_point measureFrom, until;
  std::vector<double> latencies;
  uint64_t failures = 0;
};

kj::Promise<void> callRepeatedly(Connection& c, Run& run) {
  auto start = Clock::now();
  if (start >= run.until) return kj::READY_NOW;
  kj::Promise<bool> done = nullptr;
  if (run.call == Call::kPing) {
    done = c.thatch.pingRequest().send().then([](auto&&) { return true; });
  } else {
    auto request = c.function.invokeRequest();
    static const char kPayload[] = R"({"name":"bench"})";
    request.setPayload(
        kj::arrayPtr(reinterpret_cast<const kj::byte*>(kPayload), sizeof kPayload - 1));
    done = request.send().then([](capnp::Response<thatch::api::InvokeResult>&& r) {
      return r.getStatus() == thatch::api::Status::OK;
    });
  }
  return done.then([&c, &run, start](bool ok) {
    auto end = Clock::now();
    if (!ok) run.failures++;
    if (start >= run.measureFrom)
      run.latencies.push_back(std::chrono::duration<double, std::micro>(end - start).count());
    return callRepeatedly(c, run);
  });
}

// Runs every client's call loop over `run` until its end.
void runSlice(kj::AsyncIoContext& io, std::vector<kj::Own<Connection>>& connections,
              unsigned clients, Run& run) {
  auto loops = kj::heapArrayBuilder<kj::Promise<void>>(clients);
  for (unsigned c = 0; c < clients; ++c) loops.add(callRepeatedly(*connections[c], run));
  kj::joinPromises(loops.finish()).wait(io.waitScope);
}

Point summarize(Run& run, double seconds) {
  std::vector<double>& all = run.latencies;
  std::sort(all.begin(), all.end());
  Point point;
  point.calls = all.size();
  point.failures = run.failures;
  if (!all.empty()) {
    point.p50us = all[all.size() / 2];
    point.p99us = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  point.perSecond = all.size() / seconds;
  return point;
}

// The no-op and the warm invoke with `clients` connections driven by this
// one thread (as a load generator does: the client side costs as little CPU
// as it can), each making one call at a time. The two alternate in slices
// of 250 ms (after 20 ms unmeasured, to let the previous slice's calls
// drain), `seconds` of each in all: both see the same moments of a host
// whose speed drifts by a quarter within a minute.
// Without the no-op (`withPing` false), the first point is empty.
std::pair<Point, Point> measure(kj::AsyncIoContext& io,
                                std::vector<kj::Own<Connection>>& connections, unsigned clients,
                                double seconds, bool withPing) {
  constexpr auto kSlice = std::chrono::milliseconds(250);
  Run runs[2];
  runs[0].call = Call::kPing;
  runs[1].call = Call::kInvoke;
  auto calls = kj::arrayPtr(runs + (withPing ? 0 : 1), runs + 2);
  // A first unmeasured stretch of each, for warm caches and connections.
  for (Run& run : calls) {
    run.measureFrom = run.until = Clock::now() + std::chrono::milliseconds(300);
    runSlice(io, connections, clients, run);
  }
  int slices =
      std::max(1, static_cast<int>(seconds / std::chrono::duration<double>(kSlice).count()));
  for (int i = 0; i < slices; ++i) {
    for (Run& run : calls) {
      run.measureFrom = Clock::now() + std::chrono::milliseconds(20);
      run.until = run.measureFrom + kSlice;
      runSlice(io, connections, clients, run);
    }
  }
  double measured = slices * std::chrono::duration<double>(kSlice).count();
  return {summarize(runs[0], measured), summarize(runs[1], measured)};
}

// One thatchd with `hello` deployed and `warm` sandboxes prewarmed.
struct Daemon {
  Daemon(unsigned concurrency, unsigned busyPollUs)
      : daemon("[pool]\nconcurrency = " + std::to_string(concurrency) +
               "\nmax_warm = " + std::to_string(kMaxClients) +
               "\nqueue_length = 256\n[host]\nmax_warm_memory = \"16GiB\"\nbusy_poll_us = " +
               std::to_string(busyPollUs) + "\n"),
        admin(thatch::Thatch::connect(daemon.socketPath())) {
    admin->deploy("hello", testing_util::example("hello"));
    // Every client finds a warm sandbox: this measures thatching, not starts.
    warm = admin->prewarm("hello", kMaxClients);
  }
  testing_util::TestDaemon daemon;
  std::unique_ptr<thatch::Thatch> admin;
  unsigned warm = 0;
};

// The load generator speaks Cap'n Proto itself, on its own event loop (a
// thread has one; the admin connection's is elsewhere).
std::vector<Point> measureAll(const Daemon& d, const std::vector<unsigned>& clientCounts,
                              double seconds, bool withPing = true) {
  std::vector<Point> points;
  std::thread([&] {
    auto io = kj::setupAsyncIo();
    std::vector<kj::Own<Connection>> connections;
    for (unsigned c = 0; c < kMaxClients; ++c) {
      auto stream = io.provider->getNetwork()
                        .parseAddress(kj::str("unix:", d.daemon.socketPath().c_str()))
                        .wait(io.waitScope)
                        ->connect()
                        .wait(io.waitScope);
      connections.push_back(
          kj::heap<Connection>(base::socketStreamFrom(io.unixEventPort, kj::mv(stream))));
    }
    for (unsigned clients : clientCounts) {
      auto [noop, invoke] = measure(io, connections, clients, seconds, withPing);
      points.push_back(noop);
      points.push_back(invoke);
    }
  }).join();
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

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3.0;
  unsigned profileClients = 0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--profile" && i + 1 < argc) {
      profileClients = static_cast<unsigned>(atoi(argv[++i]));
      if (profileClients < 1 || profileClients > kMaxClients) profileClients = 0;
      if (!profileClients) {
        fprintf(stderr, "api-bench: --profile takes 1 to %u clients\n", kMaxClients);
        return 2;
      }
    } else if (i == 1 && atof(argv[i]) > 0) {
      seconds = atof(argv[i]);
    } else {
      fprintf(stderr, "usage: api-bench [SECONDS_PER_POINT] [--profile CLIENTS]\n");
      return 2;
    }
  }
  try {
    unsigned concurrency =
        getenv("BENCH_CONCURRENCY") ? atoi(getenv("BENCH_CONCURRENCY")) : kMaxClients;
    const std::vector<unsigned> clientCounts = {1u, 16u, kMaxClients};
    if (profileClients) {
      Daemon d(concurrency, supervisor::HostConfig{}.busyPoll.count());
      printf("thatchd pid %d; warm invokes from %u clients for %.1f s\n", d.daemon.pid(),
             profileClients, seconds);
      fflush(stdout);
      Point invoke = measureAll(d, {profileClients}, seconds, /*withPing=*/false)[1];
      printf("warm invoke: p50 %.1f us, p99 %.1f us, %.0f calls/s, %llu failures\n", invoke.p50us,
             invoke.p99us, invoke.perSecond, static_cast<unsigned long long>(invoke.failures));
      return 0;
    }
    std::vector<Point> points, pointsWithoutPolling, pointsAtCores;
    const std::vector<unsigned> queuedClientCounts = {16u, kMaxClients};
    unsigned cores = supervisor::BusyPoll::usableCores();
    thatch::Stats stats, statsAtCores;
    {
      Daemon d(concurrency, /*busyPollUs=*/0);
      printf(
          "thatchd (busy_poll_us = 0) up; %u warm sandboxes of examples/hello; %.1f s per "
          "point\n",
          d.warm, seconds);
      pointsWithoutPolling = measureAll(d, {1u}, seconds);
    }
    {
      Daemon d(concurrency, supervisor::HostConfig{}.busyPoll.count());
      printf("thatchd (default config) up; %u warm sandboxes of examples/hello\n\n", d.warm);
      points = measureAll(d, clientCounts, seconds);
      stats = d.admin->stats();
    }
    {
      // As many sandboxes as cores: the rest of the clients' calls queue,
      // and are sent ahead into the busy sandboxes (docs/thatching.md).
      Daemon d(cores, supervisor::HostConfig{}.busyPoll.count());
      printf("thatchd (concurrency = %u cores) up\n\n", cores);
      pointsAtCores = measureAll(d, queuedClientCounts, seconds);
      statsAtCores = d.admin->stats();
    }
    printf("%-8s %-14s %10s %10s %12s %9s\n", "clients", "call", "p50 us", "p99 us", "calls/s",
           "failures");
    double ratioAt1 = 0, bestThroughput = 0;
    for (size_t i = 0; i < clientCounts.size(); ++i) {
      const Point& noop = points[2 * i];
      const Point& warmInvoke = points[2 * i + 1];
      printPoints("", clientCounts[i], noop, warmInvoke);
      if (clientCounts[i] == 1) ratioAt1 = warmInvoke.p50us / noop.p50us;
      bestThroughput = std::max(bestThroughput, warmInvoke.perSecond);
    }
    printPoints("(busy_poll_us = 0)", 1, pointsWithoutPolling[0], pointsWithoutPolling[1]);
    std::string atCores = "(concurrency = " + std::to_string(cores) + ")";
    for (size_t i = 0; i < queuedClientCounts.size(); ++i) {
      printPoints(atCores.c_str(), queuedClientCounts[i], pointsAtCores[2 * i],
                  pointsAtCores[2 * i + 1]);
      bestThroughput = std::max(bestThroughput, pointsAtCores[2 * i + 1].perSecond);
    }
    printf("\nwarm invoke p50 / no-op p50, 1 client: %.2fx (target <= 1.5x)\n", ratioAt1);
    printf("warm invocations/s, best of all points: %.0f (target >= 15000)\n", bestThroughput);
    printf("thatchd: %llu cold starts, %llu warm starts; sandboxes killed:",
           static_cast<unsigned long long>(stats.coldStarts),
           static_cast<unsigned long long>(stats.warmStarts));
    for (const auto& [reason, count] : stats.killsByReason)
      printf(" %s %llu", reason.c_str(), static_cast<unsigned long long>(count));
    printf("\nthatchd %s: %llu of %llu warm invocations were sent ahead\n", atCores.c_str(),
           static_cast<unsigned long long>(statsAtCores.sentAheadStarted),
           static_cast<unsigned long long>(statsAtCores.warmStarts));
    printf("thatchd: %llu of %llu warm invocations answered through the shared page\n",
           static_cast<unsigned long long>(stats.answeredInPage),
           static_cast<unsigned long long>(stats.warmStarts));
  } catch (const std::exception& e) {
    fprintf(stderr, "api-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
