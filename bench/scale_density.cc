// density: N warm `hello` sandboxes (64 MiB limit each) prewarmed through
// thatchd, beside bare python3 processes and the zygote alone.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <stdexcept>
#include <thread>

#include "bench/load.h"
#include "bench/scale.h"
#include "thatch/thatch.h"

extern char** environ;

namespace bench {
namespace {

constexpr uint64_t kSandboxMemoryMiB = 64;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A row of the table: so many processes, the time to start them, and
// the memory each took.
struct PerProcess {
  unsigned count = 0;
  double seconds = 0;
  double availableKiB = 0, cgroupKiB = 0, ussKiB = 0, pssKiB = 0;

  void setMemory(const MemoryReading& before, const MemoryReading& after) {
    availableKiB =
        count ? (static_cast<double>(before.availableKiB) - after.availableKiB) / count : 0;
    cgroupKiB = count ? (static_cast<double>(after.cgroupKiB) - before.cgroupKiB) / count : 0;
  }
};

void printHeader() {
  printf("%-34s %6s %9s %14s %11s %9s %9s\n", "KiB each", "count", "start s", "MemAvailable",
         "own cgroup", "USS", "PSS");
}

void printRow(const std::string& what, const PerProcess& p) {
  printf("%-34s %6u %9.2f %14s %11s %9s %9s\n", what.c_str(), p.count, p.seconds,
         grouped(p.availableKiB).c_str(), grouped(p.cgroupKiB).c_str(), grouped(p.ussKiB).c_str(),
         grouped(p.pssKiB).c_str());
}

// Waits until `fd` has given `bytes` bytes, or `deadline`: the bytes read.
size_t readUntil(int fd, size_t bytes, Clock::time_point deadline) {
  size_t got = 0;
  char buffer[4096];
  while (got < bytes) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    ssize_t n = read(fd, buffer, std::min(sizeof buffer, bytes - got));
    if (n <= 0) break;
    got += n;
  }
  return got;
}

// `count` idle python3 processes, each reading its stdin once started: the
// memory each takes, and the time to start them all at once.
PerProcess bareProcesses(unsigned count) {
  int ready[2], hold[2];
  if (pipe2(ready, O_CLOEXEC) || pipe2(hold, O_CLOEXEC)) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, hold[0], 0);
  posix_spawn_file_actions_adddup2(&actions, ready[1], 1);
  const char* argv[] = {"python3", "-c",
                        "import sys; sys.stdout.write('r'); sys.stdout.flush(); sys.stdin.read()",
                        nullptr};
  PerProcess figures;
  MemoryReading before;
  auto start = Clock::now();
  std::vector<pid_t> pids;
  for (unsigned i = 0; i < count; ++i) {
    pid_t pid;
    if (posix_spawn(&pid, "/usr/bin/python3", &actions, nullptr, const_cast<char**>(argv),
                    environ) == 0)
      pids.push_back(pid);
  }
  posix_spawn_file_actions_destroy(&actions);
  close(ready[1]);
  close(hold[0]);
  size_t started = readUntil(ready[0], pids.size(), start + std::chrono::seconds(120));
  figures.seconds = secondsSince(start);
  figures.count = started;
  MemoryReading after;
  for (pid_t pid : pids) {
    ProcessMemory m = processMemory(pid);
    figures.ussKiB += m.ussKiB;
    figures.pssKiB += m.pssKiB;
  }
  close(hold[1]);  // their stdin ends: they exit
  close(ready[0]);
  auto deadline = Clock::now() + std::chrono::seconds(30);
  for (pid_t pid : pids) {
    while (waitpid(pid, nullptr, WNOHANG) == 0) {
      if (Clock::now() > deadline) kill(pid, SIGKILL);
      usleep(1000);
    }
  }
  if (started < pids.size() || pids.size() < count)
    throw std::runtime_error("only " + std::to_string(started) + " of " + std::to_string(count) +
                             " python3 processes started within 120 s");
  figures.setMemory(before, after);
  figures.ussKiB /= count;
  figures.pssKiB /= count;
  return figures;
}

// Stats calls, one after the other (50 ms apart), on a connection of their
// own while the prewarm runs: thatchd answers, or stalls. A prewarm that
// makes no progress (no stats answer, or no new idle sandbox) for `stall`
// is failed: thatchd is killed, which ends the prewarm call.
class StatsWatcher {
 public:
  StatsWatcher(const std::string& socketPath, unsigned wanted, std::chrono::seconds stall,
               pid_t daemon)
      : began_(Clock::now()), lastProgress_(began_.time_since_epoch().count()) {
    watcher_ = std::thread([this, socketPath, wanted] { watch(socketPath, wanted); });
    monitor_ = std::thread([this, stall, daemon] { monitor(stall, daemon); });
  }

  // Stops it; the figures are read after this.
  void finish() {
    stop_ = true;
    watcher_.join();
    monitor_.join();
  }

  std::vector<double> latenciesUs;
  double longestSilenceMs = 0;
  uint64_t lastLive = 0, lastIdle = 0;
  double lastAnswerSeconds = 0, halfSeconds = 0;  // since watching began
  std::string error;

 private:
  void watch(const std::string& socketPath, unsigned wanted) {
    try {
      auto client = thatch::Thatch::connect(socketPath);
      auto lastAnswer = Clock::now();
      while (!stop_) {
        auto sent = Clock::now();
        thatch::Stats stats = client->stats();
        auto answered = Clock::now();
        latenciesUs.push_back(std::chrono::duration<double, std::micro>(answered - sent).count());
        longestSilenceMs =
            std::max(longestSilenceMs,
                     std::chrono::duration<double, std::milli>(answered - lastAnswer).count());
        lastAnswer = answered;
        lastAnswerSeconds = std::chrono::duration<double>(answered - began_).count();
        lastLive = stats.liveSandboxes;
        if (stats.idleSandboxes > lastIdle || latenciesUs.size() == 1)
          lastProgress_ = answered.time_since_epoch().count();
        lastIdle = std::max(lastIdle, stats.idleSandboxes);
        if (!halfSeconds && lastIdle * 2 >= wanted) halfSeconds = lastAnswerSeconds;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // pacing, not a wait
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
  }

  void monitor(std::chrono::seconds stall, pid_t daemon) {
    while (!stop_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // a check, not a wait
      auto since = Clock::now() - Clock::time_point(Clock::duration(lastProgress_.load()));
      if (since > stall && !stop_) {
        fprintf(stderr, "\ndensity: FAILED: no progress for %lld s; thatchd (pid %d) killed\n",
                static_cast<long long>(stall.count()), daemon);
        kill(daemon, SIGKILL);
        return;
      }
    }
  }

  Clock::time_point began_;
  std::atomic<Clock::rep> lastProgress_;  // when the idle count last grew
  std::atomic<bool> stop_{false};
  std::thread watcher_, monitor_;
};

struct SandboxMemory {
  unsigned sandboxes = 0;
  double ussKiB = 0, pssKiB = 0, chargedKiB = 0;  // summed
};

// The sandboxes' cgroups below the runtime's: their processes' smaps, and
// what their memory cgroups were charged.
SandboxMemory sandboxMemory(const std::string& runtimeDir) {
  SandboxMemory total;
  for (const std::string& name : subdirectoriesStartingWith(runtimeDir, "sbx-")) {
    std::string dir = runtimeDir + "/" + name;
    std::vector<pid_t> pids = cgroupProcesses(dir);
    if (pids.empty()) continue;
    ++total.sandboxes;
    for (pid_t pid : pids) {
      ProcessMemory m = processMemory(pid);
      total.ussKiB += m.ussKiB;
      total.pssKiB += m.pssKiB;
    }
    try {
      total.chargedKiB += std::stod(testing_util::readFile(dir + "/memory.usage_in_bytes")) / 1024;
    } catch (const std::exception&) {
      // cgroup v2 names it memory.current; this host's memory hierarchy is v1.
    }
  }
  return total;
}

std::string densityConfig(unsigned n) {
  return "[pool]\nmax_warm = " + std::to_string(n) + "\n[host]\nmax_warm = " + std::to_string(n) +
         "\nmax_sandboxes = " + std::to_string(n + 64) + "\nmax_warm_memory = \"" +
         std::to_string(n * kSandboxMemoryMiB) + "MiB\"\n";
}

}  // namespace

bool density() {
  unsigned n = static_cast<unsigned>(envNumber("BENCH_DENSITY_N", 2000));
  unsigned bare = std::min(n, static_cast<unsigned>(envNumber("BENCH_DENSITY_BARE", 100)));
  // Bounds for failing, not for waiting: the prewarm in all, and a stretch
  // without a single new warm sandbox.
  auto bound =
      std::chrono::seconds(static_cast<long>(envNumber("BENCH_DENSITY_DEADLINE", 60 + 0.25 * n)));
  auto stall = std::chrono::seconds(static_cast<long>(envNumber("BENCH_DENSITY_STALL", 60)));
  printf("== density: %u warm hello sandboxes (%llu MiB limit each) prewarmed through thatchd\n", n,
         static_cast<unsigned long long>(kSandboxMemoryMiB));
  fflush(stdout);

  PerProcess python = bareProcesses(bare);

  PerProcess zygote;
  zygote.count = 1;
  MemoryReading beforeDaemon;
  auto starting = Clock::now();
  // No stem cells: every sandbox is forked for the prewarm (a claimed stem
  // keeps a cgroup named as a stem's, which the count below would miss).
  auto daemon =
      startDaemon(densityConfig(n), "[[runtime]]\nname = \"python3.11\"\nstem_cells = 0\n");
  auto admin = thatch::Thatch::connect(daemon->socketPath());
  thatch::FunctionConfig config;
  config.memoryBytes = kSandboxMemoryMiB << 20;
  admin->deploy("hello", testing_util::example("hello"), config);
  zygote.seconds = secondsSince(starting);
  std::vector<pid_t> zygotes = childrenOf(daemon->pid());  // its one runtime's
  if (zygotes.size() == 1) {
    ProcessMemory m = processMemory(zygotes[0]);
    zygote.ussKiB = m.ussKiB;
    zygote.pssKiB = m.pssKiB;
  }
  ProcessMemory thatchdBefore = processMemory(daemon->pid());
  MemoryReading before;
  zygote.setMemory(beforeDaemon, before);

  StatsWatcher watcher(daemon->socketPath(), n, stall, daemon->pid());
  auto start = Clock::now();
  unsigned started = 0;
  std::string failure;
  {
    Watchdog watchdog("density: prewarm of " + std::to_string(n), bound, daemon->pid());
    try {
      started = admin->prewarm("hello", n);
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  PerProcess sandboxes;
  sandboxes.seconds = secondsSince(start);
  MemoryReading after;
  watcher.finish();
  printHeader();
  printRow("bare python3, idle", python);
  printRow("thatchd + zygote (USS, PSS: zygote)", zygote);
  if (!failure.empty()) {
    printf(
        "prewarm FAILED after %.1f s: %s; thatchd answered %zu stats calls, the last %.1f s "
        "into the prewarm, counting %llu live sandboxes, %llu idle\n",
        sandboxes.seconds, failure.c_str(), watcher.latenciesUs.size(), watcher.lastAnswerSeconds,
        static_cast<unsigned long long>(watcher.lastLive),
        static_cast<unsigned long long>(watcher.lastIdle));
    // A thatchd killed by the watchdog leaves its zygote's sandboxes dying,
    // and their cgroups: once the processes are gone, the cgroups go.
    daemon->stop();
    if (!testing_util::eventually(
            [&] { return testing_util::cgroupsWithProcessesBelow(daemon->cgroupSubdir()).empty(); },
            std::chrono::seconds(120)))
      printf("cleanup: processes still in thatchd's cgroups 120 s after it was killed\n");
    for (const std::string& dir : cgroupDirectoriesBelow(daemon->cgroupSubdir()))
      if (rmdir(dir.c_str()) != 0) printf("cleanup: rmdir %s: %m\n", dir.c_str());
    return false;
  }
  std::string runtimeDir = runtimeCgroupDir(*daemon);
  SandboxMemory found = sandboxMemory(runtimeDir);
  ProcessMemory thatchdAfter = processMemory(daemon->pid());
  sandboxes.count = started;
  sandboxes.setMemory(before, after);
  double perFound = found.sandboxes ? 1.0 / found.sandboxes : 0;
  sandboxes.ussKiB = found.ussKiB * perFound;
  sandboxes.pssKiB = found.pssKiB * perFound;
  printRow("warm hello sandbox (prewarm)", sandboxes);
  printf(
      "sandbox: charged to its own memory cgroup %s KiB (%u sandboxes found); thatchd's USS "
      "%s KiB before, %s KiB after\n",
      grouped(found.chargedKiB * perFound).c_str(), found.sandboxes,
      grouped(thatchdBefore.ussKiB).c_str(), grouped(thatchdAfter.ussKiB).c_str());
  printf(
      "prewarm of %u: %.2f s, %.0f/s, the first half warm at %.1f s (target <= 20 s for "
      "2,000); each: MemAvailable %s KiB, own cgroup %s KiB (target <= 1,536 KiB)\n",
      started, sandboxes.seconds, started / sandboxes.seconds, watcher.halfSeconds,
      grouped(sandboxes.availableKiB).c_str(), grouped(sandboxes.cgroupKiB).c_str());
  std::sort(watcher.latenciesUs.begin(), watcher.latenciesUs.end());
  printf(
      "answering: %zu stats calls during the prewarm, p50 %.1f ms, max %.1f ms; longest "
      "silence %.0f ms%s%s\n",
      watcher.latenciesUs.size(), quantile(watcher.latenciesUs, 0.5) / 1000,
      watcher.latenciesUs.empty() ? 0.0 : watcher.latenciesUs.back() / 1000,
      watcher.longestSilenceMs, watcher.error.empty() ? "" : "; FAILED: ", watcher.error.c_str());
  fflush(stdout);

  auto stopping = Clock::now();
  int status = daemon->stop();
  double stopSeconds = secondsSince(stopping);
  size_t holding = testing_util::cgroupsWithProcessesBelow(daemon->cgroupSubdir()).size();
  size_t directories = cgroupDirectoriesBelow(daemon->cgroupSubdir()).size();
  printf(
      "stop: SIGTERM to exit %.1f s, exit status %d%s; left behind: %zu cgroups holding "
      "processes, %zu cgroup directories\n",
      stopSeconds, status, status == 128 + SIGKILL ? " (killed: no exit within 30 s)" : "", holding,
      directories);
  return watcher.error.empty() && status == 0 && holding == 0 && directories == 0 && started == n &&
         found.sandboxes == n;
}

}  // namespace bench
