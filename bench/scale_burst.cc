// burst: F distinct functions, each invoked once at the same moment (every
// call sent before any answer is awaited): cold, then the same burst again
// warm, its baseline.
#include <cstdio>
#include <map>
#include <stdexcept>
#include <thread>

#include "api/wire.h"
#include "bench/load.h"
#include "bench/scale.h"
#include "thatch/thatch.h"

namespace bench {
namespace {

std::string functionName(unsigned i) {
  char name[32];
  snprintf(name, sizeof name, "burst-%03u", i);
  return name;
}

// What one burst saw: the latency of each call from the moment they were
// all sent, and thatchd's own start time of each.
struct Burst {
  std::vector<double> latenciesUs, startUs;
  unsigned cold = 0, failures = 0;
  std::map<std::string, unsigned> failed;  // by status
  double seconds = 0;                      // until the last answer
};

Burst burstOnce(kj::AsyncIoContext& io, std::vector<kj::Own<Connection>>& connections) {
  Burst burst;
  auto sent = Clock::now();
  auto calls = kj::heapArrayBuilder<kj::Promise<void>>(connections.size());
  for (auto& connection : connections)
    calls.add(
        invokeOnce(*connection)
            .then([&burst, sent](Outcome outcome) {
              burst.latenciesUs.push_back(
                  std::chrono::duration<double, std::micro>(Clock::now() - sent).count());
              burst.startUs.push_back(outcome.startNs / 1000.0);
              burst.cold += outcome.cold;
              if (outcome.status != thatch::api::Status::OK) {
                burst.failures++;
                burst.failed[thatch::statusName(thatch::wire::statusFromWire(outcome.status))]++;
              }
            })
            .eagerlyEvaluate(nullptr));  // timed as each answer comes, not when the last has
  // A bound for failing: on a loaded 2-core host a cold burst of 200 has
  // taken up to a minute.
  bool ended = endsWithin(io, kj::joinPromises(calls.finish()), std::chrono::seconds(300));
  if (!ended) throw std::runtime_error("a burst's calls still unanswered after 300 s");
  burst.seconds = std::chrono::duration<double>(Clock::now() - sent).count();
  return burst;
}

void printBurst(const char* what, const Burst& burst) {
  Point client = summarize(burst.latenciesUs, burst.seconds);
  Point start = summarize(burst.startUs, burst.seconds);
  printf("%-6s %6zu %6u %8u %9.1f %9.1f %9.1f %12.1f %12.1f\n", what, burst.latenciesUs.size(),
         burst.cold, burst.failures, client.p50us / 1000, client.p99us / 1000, client.maxUs / 1000,
         start.p50us / 1000, start.p99us / 1000);
  if (burst.failures) {
    printf("       failed:");
    for (const auto& [status, count] : burst.failed) printf(" %s %u", status.c_str(), count);
    printf("\n");
  }
}

}  // namespace

bool burst() {
  unsigned functions = static_cast<unsigned>(envNumber("BENCH_BURST_FUNCTIONS", 200));
  unsigned rounds = static_cast<unsigned>(envNumber("BENCH_BURST_ROUNDS", 2));
  printf("== burst: %u distinct functions invoked at once, cold, then again warm; %u rounds\n",
         functions, rounds);
  fflush(stdout);
  // Room for every function's sandbox to stay warm (64 MiB each).
  auto daemon = startDaemon(
      "[limits]\nmemory = \"64MiB\"\n[host]\nmax_warm = " + std::to_string(functions + 64) +
      "\nmax_sandboxes = " + std::to_string(functions + 128) + "\nmax_warm_memory = \"" +
      std::to_string((functions + 64) * 64) + "MiB\"\n");
  auto admin = thatch::Thatch::connect(daemon->socketPath());
  std::vector<Burst> colds, warms;
  for (unsigned round = 0; round < rounds; ++round) {
    // A fresh set of functions each round: nothing of the last is warm.
    auto deploying = Clock::now();
    for (unsigned i = 0; i < functions; ++i) {
      admin->remove(functionName(i));
      admin->deploy(functionName(i), testing_util::example("hello"));
    }
    double deploySeconds = std::chrono::duration<double>(Clock::now() - deploying).count();
    if (!testing_util::eventually([&] { return admin->stats().liveSandboxes == 0; },
                                  std::chrono::seconds(60)))
      throw std::runtime_error("the last round's sandboxes were still live 60 s after removal");
    printf("round %u: %u functions deployed in %.1f s\n", round + 1, functions, deploySeconds);
    fflush(stdout);
    std::string error;
    std::thread([&] {
      try {
        auto io = kj::setupAsyncIo();
        std::vector<kj::Own<Connection>> connections;
        for (unsigned i = 0; i < functions; ++i) {
          connections.push_back(kj::heap<Connection>(io, daemon->socketPath(), functionName(i)));
          connections.back()->function.whenResolved().wait(io.waitScope);
        }
        colds.push_back(burstOnce(io, connections));
        warms.push_back(burstOnce(io, connections));
      } catch (const std::exception& e) {
        error = e.what();
      }
    }).join();
    if (!error.empty()) throw std::runtime_error(error);
  }
  printf("%-6s %6s %6s %8s %9s %9s %9s %12s %12s\n", "burst", "calls", "cold", "failures", "p50 ms",
         "p99 ms", "max ms", "start p50 ms", "start p99 ms");
  Burst cold, warm;
  for (unsigned round = 0; round < rounds; ++round) {
    printBurst("cold", colds[round]);
    printBurst("warm", warms[round]);
    for (auto [all, one] : {std::pair{&cold, &colds[round]}, std::pair{&warm, &warms[round]}}) {
      all->latenciesUs.insert(all->latenciesUs.end(), one->latenciesUs.begin(),
                              one->latenciesUs.end());
      all->cold += one->cold;
      all->failures += one->failures;
    }
  }
  Point c = summarize(cold.latenciesUs, 1), w = summarize(warm.latenciesUs, 1);
  printf(
      "burst of %u, all rounds: cold p50 %.1f ms, p99 %.1f ms (target p99 <= 100 ms); warm p50 "
      "%.1f ms, p99 %.1f ms; cold p99 / warm p99 %.1fx\n",
      functions, c.p50us / 1000, c.p99us / 1000, w.p50us / 1000, w.p99us / 1000,
      w.p99us > 0 ? c.p99us / w.p99us : 0.0);
  admin.reset();
  int status = daemon->stop();
  if (status != 0) fprintf(stderr, "burst: thatchd exited with status %d\n", status);
  unsigned calls = functions * rounds;
  return status == 0 && cold.failures == 0 && warm.failures == 0 && cold.cold == calls &&
         warm.cold == 0;
}

}  // namespace bench
