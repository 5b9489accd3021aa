// End-to-end latency and throughput of warm invocations through thatchd's
// socket, beside a no-op call (Thatch.ping) to the same server in the same
// run: the ratio is what thatch adds over Cap'n Proto itself.
//
//   api-bench THATCHD EXAMPLES_DIR [SECONDS_PER_POINT]
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "sandbox/cgroup.h"
#include "thatch/thatch.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr unsigned kMaxClients = 64;

// A thatchd of the benchmark's own: temp state, socket and cgroup subtree.
class Daemon {
 public:
  explicit Daemon(const std::string& binary) {
    char pattern[] = "/tmp/thatch-api-bench.XXXXXX";
    if (!mkdtemp(pattern)) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    chmod(dir_.c_str(), 0711);
    socket_ = dir_ + "/thatchd.sock";
    cgroup_ = "bench-" + std::to_string(getpid());
    std::ofstream(dir_ + "/thatchd.toml")
        << "state_dir = \"" << dir_ << "/state\"\nsocket = \"" << socket_
        << "\"\ncgroup_subdir = \"thatch/" << cgroup_ << "\"\n"
        << "[pool]\nconcurrency = " << kMaxClients << "\nmax_warm = " << kMaxClients
        << "\nqueue_length = 256\n[host]\nmax_warm_memory = \"16GiB\"\n[[runtime]]\nname = \"python3.11\"\nstem_cells = 0\n";
    std::string log = dir_ + "/thatchd.log";
    pid_ = fork();
    if (pid_ == 0) {
      if (!freopen(log.c_str(), "w", stderr)) _exit(126);
      execl(binary.c_str(), "thatchd", "--config", (dir_ + "/thatchd.toml").c_str(), nullptr);
      _exit(127);
    }
    for (int i = 0; i < 200; ++i) {
      std::ifstream in(log);
      std::string text((std::istreambuf_iterator<char>(in)), {});
      if (text.find("thatchd: ready") != std::string::npos) return;
      usleep(100'000);
    }
    throw std::runtime_error("thatchd did not start; see " + log);
  }

  ~Daemon() {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    try {
      sandbox::detectCgroups("thatch")->remove(cgroup_);
    } catch (const std::exception&) {
    }
    std::filesystem::remove_all(dir_);
  }

  const std::string& socket() const { return socket_; }

 private:
  std::string dir_, socket_, cgroup_;
  pid_t pid_ = -1;
};

struct Point {
  double p50us = 0, p99us = 0, perSecond = 0;
  uint64_t calls = 0, failures = 0;
};

// `clients` threads, each on its own connection making one call at a time
// for `seconds` (after a short warm-up); every call's latency is kept.
template <typename Call>
Point measure(const std::string& socket, unsigned clients, double seconds, Call call) {
  std::atomic<bool> measuring{false}, stop{false};
  std::atomic<uint64_t> failures{0};
  std::vector<std::vector<double>> latencies(clients);
  std::vector<std::thread> threads;
  for (unsigned c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      auto client = thatch::Thatch::connect(socket);
      while (!stop) {
        auto start = Clock::now();
        if (!call(*client)) failures++;
        double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
        if (measuring) latencies[c].push_back(us);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  measuring = true;
  auto begin = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  measuring = false;
  double elapsed = std::chrono::duration<double>(Clock::now() - begin).count();
  stop = true;
  for (std::thread& t : threads) t.join();

  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  Point point;
  point.calls = all.size();
  point.failures = failures;
  if (!all.empty()) {
    point.p50us = all[all.size() / 2];
    point.p99us = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  point.perSecond = all.size() / elapsed;
  return point;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: api-bench THATCHD EXAMPLES_DIR [SECONDS_PER_POINT]\n");
    return 2;
  }
  double seconds = argc > 3 ? atof(argv[3]) : 3.0;
  try {
    Daemon daemon(argv[1]);
    auto admin = thatch::Thatch::connect(daemon.socket());
    admin->deploy("hello", std::string(argv[2]) + "/hello");
    // Every client finds a warm sandbox: this measures thatching, not starts.
    unsigned warm = admin->prewarm("hello", kMaxClients);
    printf("thatchd up; %u warm sandboxes of examples/hello; %.1f s per point\n\n", warm, seconds);

    auto ping = [](thatch::Thatch& t) {
      t.ping();
      return true;
    };
    auto invoke = [](thatch::Thatch& t) {
      return t.invoke("hello", R"({"name":"bench"})").status == thatch::Status::kOk;
    };
    printf("%-8s %-14s %10s %10s %12s %9s\n", "clients", "call", "p50 us", "p99 us", "calls/s",
           "failures");
    double ratioAt1 = 0, bestThroughput = 0;
    for (unsigned clients : {1u, 16u, kMaxClients}) {
      Point noop = measure(daemon.socket(), clients, seconds, ping);
      Point warmInvoke = measure(daemon.socket(), clients, seconds, invoke);
      for (auto [name, p] : {std::pair{"no-op ping", noop}, std::pair{"warm invoke", warmInvoke}})
        printf("%-8u %-14s %10.1f %10.1f %12.0f %9llu\n", clients, name, p.p50us, p.p99us,
               p.perSecond, static_cast<unsigned long long>(p.failures));
      printf("%-8u %-14s %10.2fx %9.2fx %11.2fx\n", clients, "invoke/no-op",
             warmInvoke.p50us / noop.p50us, warmInvoke.p99us / noop.p99us,
             warmInvoke.perSecond / noop.perSecond);
      if (clients == 1) ratioAt1 = warmInvoke.p50us / noop.p50us;
      bestThroughput = std::max(bestThroughput, warmInvoke.perSecond);
    }
    printf("\nwarm invoke p50 / no-op p50, 1 client: %.2fx (target <= 1.5x)\n", ratioAt1);
    printf("warm invocations/s, best of 1/16/64 clients: %.0f (target >= 15000)\n",
           bestThroughput);
    thatch::Stats stats = admin->stats();
    printf("thatchd: %llu cold starts, %llu warm starts; sandboxes killed:",
           static_cast<unsigned long long>(stats.coldStarts),
           static_cast<unsigned long long>(stats.warmStarts));
    for (const auto& [reason, count] : stats.killsByReason)
      printf(" %s %llu", reason.c_str(), static_cast<unsigned long long>(count));
    printf("\n");
  } catch (const std::exception& e) {
    fprintf(stderr, "api-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
