// soak: a thatchd under a mixed load for a while, and what it lost, did
// twice, left behind and grew. 64 clients (one call in flight each) invoke
// at random: warm calls that echo their id, calls of a function redeployed
// every 2 s (cold starts), handlers that raise, time out or run out of
// memory; beside them a deployer deploys, invokes and removes a function in
// a loop. Every SOAK_SAMPLE seconds: calls, p99, thatchd's RSS and fds.
//
//   soak [SECONDS [OUT_PREFIX]]     (default 600 s, build/bench/soak)
//
// Writes OUT_PREFIX.tsv (the samples) and prints the table and a summary.
// Exits non-zero if a call was lost (no answer 60 s after the end), got
// another call's answer or an unexpected status, if thatchd counted more
// invocations than were sent (one done twice), if anything is left on the
// host, or, for runs of at least 3 minutes, if thatchd's RSS at the end is
// more than 5% above its value after the first minute.

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/load.h"
#include "tests/daemon.h"
#include "tests/testing.h"
#include "thatch/thatch.h"

namespace {

using bench::Clock;
using Status = thatch::api::Status;
using namespace std::chrono_literals;

struct Kind {
  const char* function;
  Status expected;
  unsigned weight;
};

// What the clients call, and what each must answer.
const Kind kKinds[] = {
    {"echo", Status::OK, 70},
    {"fresh", Status::OK, 10},
    {"raises", Status::HANDLER_ERROR, 10},
    {"sleeper", Status::TIMEOUT, 5},
    {"hog", Status::OUT_OF_MEMORY, 5},
};

struct Sample {
  double t = 0;  // seconds since the start
  uint64_t calls = 0, refused = 0;
  double p99ms = 0;
  uint64_t rssKib = 0, fds = 0;
};

struct Totals {
  uint64_t sent = 0, answered = 0, refused = 0, unexpected = 0, crossed = 0;
  std::string firstUnexpected;
  std::vector<double> windowMs;  // latencies since the last sample
};

struct Client {
  kj::Own<bench::Connection> connection;
  std::map<std::string, thatch::api::Function::Client> functions;
};

uint64_t statusKib(pid_t pid, const std::string& key) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string word; status >> word;)
    if (word == key) {
      uint64_t kib = 0;
      status >> kib;
      return kib;
    }
  return 0;
}

kj::Promise<void> callUntil(Client& client, Clock::time_point until, std::mt19937& random,
                            uint64_t& nextId, Totals& totals) {
  if (Clock::now() >= until) return kj::READY_NOW;
  unsigned all = 0;
  for (const Kind& k : kKinds) all += k.weight;
  unsigned pick = std::uniform_int_distribution<unsigned>(0, all - 1)(random);
  const Kind* kind = &kKinds[0];
  for (const Kind& k : kKinds) {
    if (pick < k.weight) {
      kind = &k;
      break;
    }
    pick -= k.weight;
  }
  uint64_t id = nextId++;
  std::string payload = std::to_string(id);
  auto request = client.functions.at(kind->function).invokeRequest();
  request.setPayload(
      kj::arrayPtr(reinterpret_cast<const kj::byte*>(payload.data()), payload.size()));
  ++totals.sent;
  auto start = Clock::now();
  return request.send().then([&client, until, &random, &nextId, &totals, kind, payload,
                              start](capnp::Response<thatch::api::InvokeResult>&& r) {
    ++totals.answered;
    totals.windowMs.push_back(
        std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    Status status = r.getStatus();
    if (status == Status::OVERLOADED) {
      ++totals.refused;
    } else if (status != kind->expected) {
      if (!totals.unexpected++)
        totals.firstUnexpected = std::string(kind->function) + ": status " +
                                 std::to_string(static_cast<int>(status)) + ": " +
                                 r.getError().getMessage().cStr();
    } else if (status == Status::OK) {
      auto bytes = r.getPayload();
      if (std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size()) != payload)
        ++totals.crossed;
    }
    return callUntil(client, until, random, nextId, totals);
  });
}

// Deploys "fresh" again (its next calls start cold) and deploys, invokes
// and removes "doomed", until `until`: the registry changing under load.
// Returns the invocations it made, or throws.
uint64_t deployLoop(const std::string& socket, Clock::time_point until,
                    const std::string& freshDir) {
  auto client = thatch::Thatch::connect(socket);
  uint64_t calls = 0;
  while (Clock::now() < until) {
    client->deploy("fresh", freshDir);
    client->deploy("doomed", freshDir);
    thatch::Result r = client->invoke("doomed", "1");
    ++calls;
    if (r.status != thatch::Status::kOk) throw std::runtime_error("doomed: " + r.errorMessage);
    client->remove("doomed");
    std::this_thread::sleep_for(2s);
  }
  return calls;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 600;
  std::string out = argc > 2 ? argv[2] : "build/bench/soak";
  unsigned clients = static_cast<unsigned>(bench::envNumber("SOAK_CLIENTS", 64));
  double every = bench::envNumber("SOAK_SAMPLE", 5);
  testing_util::HostState before = testing_util::snapshot();
  bool ok = true;
  {
    testing_util::TestDaemon daemon(
        "[limits]\nmemory = \"64MiB\"\ntimeout = \"10s\"\n"
        "[pool]\nconcurrency = 16\nqueue_length = 256\nqueue_timeout = \"60s\"\n");
    testing_util::TempDir code;
    {
      auto client = thatch::Thatch::connect(daemon.socketPath());
      auto deploy = [&](const std::string& name, const std::string& source,
                        thatch::FunctionConfig config = {}) {
        testing_util::deploySource(*client, name, source, config);
      };
      deploy("echo", "def handler(event, context):\n    return event\n");
      deploy("fresh", "def handler(event, context):\n    return event\n");
      deploy("raises", "def handler(event, context):\n    raise ValueError(event)\n");
      thatch::FunctionConfig quick;
      quick.timeout = 200ms;
      deploy("sleeper", "import time\ndef handler(event, context):\n    time.sleep(5)\n", quick);
      thatch::FunctionConfig small;
      small.memoryBytes = 32 << 20;
      deploy("hog",
             "def handler(event, context):\n    hog = []\n    while True:\n"
             "        hog.append(bytearray(1 << 20))\n",
             small);
      testing_util::writeFile(code.path() + "/handler.py",
                              "def handler(event, context):\n    return event\n");
    }
    auto io = kj::setupAsyncIo();
    std::vector<Client> all(clients);
    for (Client& c : all) {
      c.connection = kj::heap<bench::Connection>(io, daemon.socketPath(), "echo");
      for (const Kind& k : kKinds) {
        auto get = c.connection->thatch.getRequest();
        get.setName(k.function);
        c.functions.emplace(k.function, get.send().getFunction());
      }
    }
    auto begin = Clock::now();
    auto until =
        begin + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    auto deployer =
        std::async(std::launch::async, deployLoop, daemon.socketPath(), until, code.path());
    Totals totals;
    std::vector<Sample> samples;
    std::mt19937 random(1);
    uint64_t nextId = 0;
    kj::Vector<kj::Promise<void>> loops;
    for (Client& c : all) loops.add(callUntil(c, until, random, nextId, totals));
    auto everyone = kj::joinPromises(loops.releaseAsArray()).fork();
    // Samples until the end, then waits (bounded) for the calls in flight.
    auto sampleAt = begin;
    uint64_t lastAnswered = 0, lastRefused = 0;
    for (;;) {
      sampleAt += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(every));
      bool last = sampleAt >= until;
      auto wait = std::min(sampleAt, until) - Clock::now();
      io.provider->getTimer()
          .afterDelay(std::max<int64_t>(
                          0, std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count()) *
                      kj::NANOSECONDS)
          .wait(io.waitScope);
      Sample s;
      s.t = std::chrono::duration<double>(Clock::now() - begin).count();
      s.calls = totals.answered - lastAnswered;
      s.refused = totals.refused - lastRefused;
      lastAnswered = totals.answered;
      lastRefused = totals.refused;
      std::sort(totals.windowMs.begin(), totals.windowMs.end());
      s.p99ms = bench::quantile(totals.windowMs, 0.99);
      totals.windowMs.clear();
      s.rssKib = statusKib(daemon.pid(), "VmRSS:");
      s.fds =
          testing_util::directoryEntries("/proc/" + std::to_string(daemon.pid()) + "/fd").size();
      samples.push_back(s);
      if (last) break;
    }
    bool ended = bench::endsWithin(io, everyone.addBranch(), 60s);
    uint64_t lost = totals.sent - totals.answered;
    uint64_t deployerCalls = 0;
    try {
      deployerCalls = deployer.get();
    } catch (const std::exception& e) {
      fprintf(stderr, "soak: the deployer failed: %s\n", e.what());
      ok = false;
    }
    // What thatchd counted, against what was sent.
    uint64_t counted = std::async(std::launch::async, [&] {
                         auto client = thatch::Thatch::connect(daemon.socketPath());
                         uint64_t n = 0;
                         for (const auto& [status, count] : client->stats().invocationsByStatus)
                           n += count;
                         return n;
                       }).get();
    uint64_t sent = totals.sent + deployerCalls;

    std::ofstream tsv(out + ".tsv");
    tsv << "seconds\tcalls_per_s\trefused\tp99_ms\trss_kib\tfds\n";
    printf("soak: %u clients, %.0f s, a sample every %.0f s\n", clients, seconds, every);
    printf("%8s %10s %8s %9s %9s %6s\n", "t (s)", "calls/s", "refused", "p99 ms", "RSS KiB", "fds");
    for (const Sample& s : samples) {
      double span = every;
      printf("%8.0f %10.0f %8llu %9.1f %9llu %6llu\n", s.t, s.calls / span,
             static_cast<unsigned long long>(s.refused), s.p99ms,
             static_cast<unsigned long long>(s.rssKib), static_cast<unsigned long long>(s.fds));
      tsv << s.t << "\t" << s.calls / span << "\t" << s.refused << "\t" << s.p99ms << "\t"
          << s.rssKib << "\t" << s.fds << "\n";
    }
    printf(
        "calls: %llu sent, %llu answered, %llu lost, %llu refused (overloaded), %llu with an "
        "unexpected status, %llu with another call's answer; deployer: %llu calls\n",
        static_cast<unsigned long long>(totals.sent),
        static_cast<unsigned long long>(totals.answered), static_cast<unsigned long long>(lost),
        static_cast<unsigned long long>(totals.refused),
        static_cast<unsigned long long>(totals.unexpected),
        static_cast<unsigned long long>(totals.crossed),
        static_cast<unsigned long long>(deployerCalls));
    printf("thatchd counted %llu invocations for %llu sent: %llu done twice\n",
           static_cast<unsigned long long>(counted), static_cast<unsigned long long>(sent),
           static_cast<unsigned long long>(counted > sent ? counted - sent : 0));
    if (!ended || lost || totals.unexpected || totals.crossed || counted > sent) ok = false;
    if (totals.unexpected)
      fprintf(stderr, "soak: first unexpected: %s\n", totals.firstUnexpected.c_str());
    // RSS: the end against the first sample at or after one minute.
    if (seconds >= 180) {
      auto minute =
          std::find_if(samples.begin(), samples.end(), [](const Sample& s) { return s.t >= 60; });
      if (minute != samples.end()) {
        double growth = 100.0 * (double(samples.back().rssKib) - double(minute->rssKib)) /
                        double(minute->rssKib);
        printf(
            "thatchd RSS: %llu KiB after the first minute, %llu KiB at the end (%+.1f%%; "
            "target within 5%%)\n",
            static_cast<unsigned long long>(minute->rssKib),
            static_cast<unsigned long long>(samples.back().rssKib), growth);
        if (growth > 5) ok = false;
      }
    }
    all.clear();
    int status = daemon.stop();
    if (status != 0) {
      fprintf(stderr, "soak: thatchd exited %d\n%s", status, daemon.log().c_str());
      ok = false;
    }
  }
  std::string left = testing_util::leftBehind(before, testing_util::snapshot());
  printf("left on the host: %s\n", left.empty() ? "nothing" : left.c_str());
  if (!left.empty()) ok = false;
  printf("soak: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
