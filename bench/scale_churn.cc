// churn: every call cold (no warm sandbox kept), 1, 4 and 16 clients, in
// turn with as many parallel loops of bwrap running python3 -c 'print(1)';
// what is left behind afterwards.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "bench/load.h"
#include "bench/scale.h"
#include "thatch/thatch.h"

extern char** environ;

namespace bench {
namespace {

// The bwrap line of every peer comparison (bench/run.sh, cold-start); no
// argument has a space in it.
constexpr const char kBwrapLine[] =
    "bwrap --unshare-all --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 "
    "--symlink usr/bin /bin --proc /proc --dev /dev --tmpfs /tmp /usr/bin/python3 -c print(1)";

std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  for (std::string word; in >> word;) out.push_back(word);
  return out;
}

// One series of starts: their latencies and how long they took in all.
struct Starts {
  std::vector<double> latenciesUs;
  uint64_t failures = 0;
  double seconds = 0;
  void add(const Starts& slice) {
    latenciesUs.insert(latenciesUs.end(), slice.latenciesUs.begin(), slice.latenciesUs.end());
    failures += slice.failures;
    seconds += slice.seconds;
  }
};

// `loops` threads each running bwrap after bwrap until `until`.
Starts bwrapSlice(unsigned loops, Clock::time_point until) {
  Starts slice;
  std::mutex mutex;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  std::vector<std::string> args = words(kBwrapLine);
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < loops; ++i) {
    threads.emplace_back([&] {
      while (Clock::now() < until) {
        auto begun = Clock::now();
        pid_t pid;
        int status = -1;
        if (posix_spawnp(&pid, "bwrap", &actions, nullptr, argv.data(), environ) == 0)
          waitpid(pid, &status, 0);
        double us = std::chrono::duration<double, std::micro>(Clock::now() - begun).count();
        std::lock_guard lock(mutex);
        slice.latenciesUs.push_back(us);
        slice.failures += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  posix_spawn_file_actions_destroy(&actions);
  slice.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return slice;
}

// thatchd's cold calls from `clients` connections until `until`.
Starts thatchSlice(kj::AsyncIoContext& io, Run& run, Clock::time_point until) {
  size_t counted = run.latencies.size();
  uint64_t failures = run.failures, cold = run.cold;
  auto start = Clock::now();
  run.measureFrom = start;
  run.until = until;
  runSlice(io, run);
  Starts slice;
  slice.latenciesUs.assign(run.latencies.begin() + counted, run.latencies.end());
  // A call that came back warm is no cold start either.
  uint64_t calls = slice.latenciesUs.size();
  slice.failures = (run.failures - failures) + (calls - (run.cold - cold));
  slice.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return slice;
}

void printStarts(const char* what, unsigned clients, const Starts& starts) {
  Point p = summarize(starts.latenciesUs, starts.seconds);
  printf("%-8u %-14s %10.1f %10.1f %10.1f %10llu\n", clients, what, p.perSecond, p.p50us / 1000,
         p.p99us / 1000, static_cast<unsigned long long>(starts.failures));
}

// What is left of the sandboxes once thatchd has none: their cgroups (and
// the processes in them) while it runs.
struct Leftovers {
  size_t cgroups = 0, processes = 0;
};
Leftovers sandboxLeftovers(const testing_util::TestDaemon& daemon) {
  Leftovers left;
  std::string runtimeDir = runtimeCgroupDir(daemon);
  for (const std::string& name : subdirectoriesStartingWith(runtimeDir, "sbx-")) {
    ++left.cgroups;
    left.processes += cgroupProcesses(runtimeDir + "/" + name).size();
  }
  return left;
}

long difference(size_t after, size_t before) {
  return static_cast<long>(after) - static_cast<long>(before);
}

}  // namespace

bool churn() {
  double seconds = envNumber("BENCH_CHURN_SECONDS", 30);
  auto slice = std::chrono::duration<double>(envNumber("BENCH_CHURN_SLICE", 5));
  const std::vector<unsigned> clientCounts = {1u, 4u, 16u};
  const unsigned maxClients = clientCounts.back();
  printf(
      "== churn: every call cold ([pool] max_warm = 0), beside parallel bwrap loops; %.0f s of "
      "each per point, in turns of %.1f s\n",
      seconds, slice.count());
  fflush(stdout);
  testing_util::HostState before = testing_util::snapshot();
  auto daemon = startDaemon("[pool]\nmax_warm = 0\nconcurrency = " + std::to_string(maxClients) +
                            "\nqueue_length = 256\n");
  auto admin = thatch::Thatch::connect(daemon->socketPath());
  admin->deploy("hello", testing_util::example("hello"));

  struct Measured {
    Starts thatch, bwrap;
  };
  std::vector<Measured> measured(clientCounts.size());
  std::string error;
  std::thread([&] {
    try {
      auto io = kj::setupAsyncIo();
      auto connections = connectMany(io, daemon->socketPath(), "hello", maxClients);
      for (size_t i = 0; i < clientCounts.size(); ++i) {
        Run run;
        run.connections = &connections;
        run.clients = clientCounts[i];
        thatchSlice(io, run, Clock::now() + std::chrono::seconds(1));  // unmeasured
        int turns = std::max(1, static_cast<int>(seconds / slice.count()));
        for (int t = 0; t < turns; ++t) {
          auto length = std::chrono::duration_cast<Clock::duration>(slice);
          measured[i].thatch.add(thatchSlice(io, run, Clock::now() + length));
          measured[i].bwrap.add(bwrapSlice(clientCounts[i], Clock::now() + length));
        }
        if (run.failures)
          fprintf(stderr, "churn: %llu calls failed, the first %s\n",
                  static_cast<unsigned long long>(run.failures), run.firstFailure.c_str());
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
  }).join();
  if (!error.empty()) throw std::runtime_error(error);

  // A call that failed, or came back warm, is no cold start: "missed".
  printf("%-8s %-14s %10s %10s %10s %10s\n", "clients", "starts", "per s", "p50 ms", "p99 ms",
         "missed");
  for (size_t i = 0; i < clientCounts.size(); ++i) {
    printStarts("thatch cold", clientCounts[i], measured[i].thatch);
    printStarts("bwrap", clientCounts[i], measured[i].bwrap);
    Point t = summarize(measured[i].thatch.latenciesUs, measured[i].thatch.seconds);
    Point b = summarize(measured[i].bwrap.latenciesUs, measured[i].bwrap.seconds);
    printf("%-8u %-14s %9.2fx\n", clientCounts[i], "thatch/bwrap",
           b.perSecond > 0 ? t.perSecond / b.perSecond : 0.0);
    if (clientCounts[i] == 4)
      printf(
          "targets at 4 clients: >= 200 cold starts/s (%.0f), p99 <= 20 ms (%.1f), >= 7x "
          "bwrap (%.2fx)\n",
          t.perSecond, t.p99us / 1000, b.perSecond > 0 ? t.perSecond / b.perSecond : 0.0);
  }

  // Leaks: once every sandbox has ended, none of their cgroups is left
  // while thatchd runs; once it has stopped, the host is as before.
  bool settled = testing_util::eventually(
      [&] { return admin->stats().liveSandboxes == 0 && sandboxLeftovers(*daemon).cgroups == 0; },
      std::chrono::seconds(30));
  Leftovers running = sandboxLeftovers(*daemon);
  admin.reset();
  int status = daemon->stop();
  // What thatchd itself left below its cgroup subdirectory (which the
  // daemon's destructor then removes, with whatever is left in it).
  size_t directories = cgroupDirectoriesBelow(daemon->cgroupSubdir()).size();
  daemon.reset();
  testing_util::HostState after = testing_util::snapshot();
  printf(
      "leaks: while thatchd ran%s: %zu sandbox cgroups, %zu processes in them; after it "
      "stopped (exit status %d): %zu cgroup directories below its own; then mounts %+ld, "
      "network namespaces %+ld, sandbox processes %zu, thatch cgroups %+ld, links %+ld\n",
      settled ? "" : " (live sandboxes still reported 30 s after the last call)", running.cgroups,
      running.processes, status, directories, difference(after.mounts, before.mounts),
      difference(after.netns.size(), before.netns.size()), after.sandboxProcesses.size(),
      difference(after.cgroups.size(), before.cgroups.size()),
      difference(after.links.size(), before.links.size()));
  return settled && running.cgroups == 0 && status == 0 && directories == 0 && after == before;
}

}  // namespace bench
