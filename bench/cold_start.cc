// cold-start: spawn request -> first result of examples/hello from a
// thatch-zygote, with the breakdown of where the time goes, against
// `python3 -c 'print(1)'` bare and under bwrap measured in the same run; and
// the numpy runtime against `python3 -c 'import numpy'`. Each part also
// says what one cold start costs in CPU and page faults, all processes of
// the zygote's tree together (the zygote, its stem cells and sandboxes).
// The `floor` part measures what this host charges for any sandbox made by
// forking a process the zygote's size, whatever runs in it: the bound that
// cold starts per second and burst latency cannot pass on this many cores.

#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "rootfs/sandbox_spec.h"
#include "runtime/blocking_channel.h"
#include "runtime/zygote_control.h"
#include "sandbox/confine.h"
#include "sandbox/idmap.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double ms(uint64_t ns) {
  return ns / 1e6;
}

struct Stats {
  std::vector<double> values;
  double at(double p) const {
    std::vector<double> v = values;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
  }
  double median() const { return at(0.5); }
};

// CPU time and minor page faults of a process tree.
struct Cost {
  double cpuMs = 0;
  double faults = 0;
  Cost operator-(const Cost& o) const { return {cpuMs - o.cpuMs, faults - o.faults}; }
};

// What this process's reaped children cost so far (a zygote, once reaped,
// counts with every sandbox it reaped).
Cost reapedChildren() {
  rusage usage;
  getrusage(RUSAGE_CHILDREN, &usage);
  auto ms = [](const timeval& t) { return t.tv_sec * 1e3 + t.tv_usec / 1e3; };
  return {ms(usage.ru_utime) + ms(usage.ru_stime), static_cast<double>(usage.ru_minflt)};
}

// What `pid` and its reaped children cost so far, from /proc/PID/stat.
Cost processTree(pid_t pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream fields(text.substr(close + 2));
  std::vector<double> f(std::istream_iterator<double>(fields), {});
  // Fields 3.. from the state on: minflt is 10, cminflt 11, utime..cstime 14..17.
  if (f.size() < 15) return {};
  double tick = 1e3 / sysconf(_SC_CLK_TCK);
  return {(f[11] + f[12] + f[13] + f[14]) * tick, f[7] + f[8]};
}

// A zygote whose cost is measured from the moment it is ready until it is
// gone: the interpreter's start-up is not counted.
class MeasuredZygote {
 public:
  explicit MeasuredZygote(const runtime::ZygoteOptions& options)
      : before_(reapedChildren()),
        zygote_(std::make_unique<runtime::Zygote>(options)),
        startUp_(processTree(zygote_->pid())) {}
  runtime::Zygote& operator*() { return *zygote_; }
  runtime::Zygote* operator->() { return zygote_.get(); }
  // Shuts the zygote down; what everything since start-up cost.
  Cost finish() {
    zygote_.reset();
    return reapedChildren() - before_ - startUp_;
  }

 private:
  Cost before_;
  std::unique_ptr<runtime::Zygote> zygote_;
  Cost startUp_;
};

// Wall time of a command, run to completion (stdout/stderr to /dev/null).
double commandMs(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  auto start = Clock::now();
  pid_t pid;
  if (posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ) != 0) return -1;
  int status;
  waitpid(pid, &status, 0);
  posix_spawn_file_actions_destroy(&actions);
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

Stats commandStats(const std::vector<std::string>& argv, int runs) {
  Stats s;
  for (int i = 0; i < 3; ++i) commandMs(argv);  // warm the page cache
  for (int i = 0; i < runs; ++i) s.values.push_back(commandMs(argv));
  return s;
}

struct ColdStart {
  Stats total, firstCall, faultsReady, faultsFirst;
  int claims = 0;
  unsigned mostWarm = 0;                    // warm stem cells, the most any spawn reply counted
  std::map<std::string, Stats> steps;       // time spent in each step
  std::map<std::string, Stats> stepFaults;  // page faults in each Python phase
  std::vector<std::string> order;
  int spawns = 0;
};

ColdStart measure(runtime::Zygote& zygote, const std::string& codeDir, int runs,
                  std::chrono::milliseconds pause = 0ms) {
  sandbox::IdAllocator ids("/run/thatch/ids", {});
  ColdStart result;
  static uint64_t nextId = 1'000'000;
  for (int i = 0; i < runs + 5; ++i) {
    sandbox::IdLease lease = ids.acquire();
    runtime::SpawnParams params;
    rootfs::SandboxShape function;
    function.codeDir = codeDir;
    function.hostId = lease.hostId();
    params.spec = rootfs::sandboxSpec(function);
    params.names.cgroupName = "bench-" + std::to_string(lease.hostId());
    params.handler = "handler.handler";
    params.function.name = "bench";
    runtime::SandboxChannel::SandboxEnds ends;
    auto channel = std::make_unique<runtime::BlockingChannel>(ends);
    uint64_t start = sandbox::monotonicNs();
    pid_t pid = zygote.spawn(++nextId, params, std::move(ends));
    result.mostWarm = std::max(result.mostWarm, zygote.warmStems());
    runtime::ReadyInfo ready = channel->waitReady();
    uint64_t readyAt = sandbox::monotonicNs();
    runtime::InvocationOutcome out = channel->invoke("bench", "{}");
    uint64_t end = sandbox::monotonicNs();
    if (out.status != runtime::AnswerStatus::kOk) {
      fprintf(stderr, "cold-start: invocation failed: %s\n", out.errorMessage.c_str());
      exit(1);
    }
    bool claimed = std::any_of(ready.timings.begin(), ready.timings.end(),
                               [](const auto& t) { return t.step == "claim"; });
    result.claims += claimed;
    ++result.spawns;
    if (i >= 5) {  // the first few warm caches
      result.total.values.push_back(ms(end - start));
      result.firstCall.values.push_back(ms(end - readyAt));
      result.faultsReady.values.push_back(ready.minorFaults);
      result.faultsFirst.values.push_back(out.minorFaults);
      result.steps["request"].values.push_back(ms(ready.startNs - start));
      if (result.order.empty()) result.order.push_back("request");
      uint64_t previous = ready.startNs;
      uint64_t previousFaults = 0;
      for (auto& t : ready.timings) {
        if (std::find(result.order.begin(), result.order.end(), t.step) == result.order.end())
          result.order.push_back(t.step);
        result.steps[t.step].values.push_back(ms(t.ns - previous));
        previous = t.ns;
        if (t.minorFaults) {
          if (previousFaults)
            result.stepFaults[t.step].values.push_back(t.minorFaults - previousFaults);
          previousFaults = t.minorFaults;
        }
      }
    }
    if (i == runs + 4 && getenv("COLD_START_SMAPS")) {
      // The last sandbox's memory after its first call, for a closer look.
      std::ifstream smaps("/proc/" + std::to_string(pid) + "/smaps_rollup");
      printf("  smaps_rollup of sandbox %d after its first call:\n", pid);
      for (std::string line; std::getline(smaps, line);) printf("    %s\n", line.c_str());
      if (const char* copy = getenv("COLD_START_SMAPS"); *copy)
        system(("cp /proc/" + std::to_string(pid) + "/smaps " + copy).c_str());
    }
    // Closing the channel ends the sandbox; wait for it so runs do not overlap.
    channel.reset();
    zygote.nextExit(5s);
    std::this_thread::sleep_for(pause);  // lets the zygote warm a replacement stem cell
  }
  return result;
}

// Busy jiffies of the whole host (all but idle and iowait), from /proc/stat:
// the kernel's deferred work (a network namespace is torn down by a
// kworker) is charged to no process.
double hostBusyMs() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  double user, nice, system, idle, iowait, irq, softirq, steal;
  stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  return (user + nice + system + irq + softirq) * 1e3 / sysconf(_SC_CLK_TCK);
}

// The anonymous memory of a process, in KiB, from its smaps_rollup.
long anonymousKib(pid_t pid) {
  std::ifstream rollup("/proc/" + std::to_string(pid) + "/smaps_rollup");
  for (std::string key; rollup >> key;) {
    long kib;
    if (key == "Anonymous:" && rollup >> kib) return kib;
  }
  return 0;
}

struct Floor {
  double cpuMs = 0;      // this process and its children, per sandbox
  double hostCpuMs = 0;  // the whole host's busy time, per sandbox
};

// `runs` children cloned into the namespaces a sandbox gets, from this
// process once it holds `kib` of written anonymous memory; each writes
// `pages` of it, one byte a page, and exits; each is reaped before the
// next. Exits the program if clone3 fails.
Floor forkFloor(long kib, long pages, int runs) {
  size_t size = static_cast<size_t>(kib) << 10;
  auto* memory = static_cast<char*>(
      mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (memory == MAP_FAILED) return {};
  memset(memory, 1, size);
  long available = static_cast<long>(size / 4096);
  pages = std::min(pages, available);
  auto spent = [] {
    rusage self, children;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &children);
    auto ms = [](const timeval& t) { return t.tv_sec * 1e3 + t.tv_usec / 1e3; };
    return ms(self.ru_utime) + ms(self.ru_stime) + ms(children.ru_utime) + ms(children.ru_stime);
  };
  double cpuBefore = spent(), hostBefore = hostBusyMs();
  for (int i = 0; i < runs; ++i) {
    clone_args args{};
    args.flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS |
                 CLONE_NEWNET | CLONE_NEWCGROUP;
    args.exit_signal = SIGCHLD;
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) {
      for (long page = 0; page < pages; ++page) memory[page * (available / pages) * 4096] += 1;
      _exit(0);
    }
    if (pid < 0) {
      perror("cold-start: clone3");
      exit(1);
    }
    int status;
    waitpid(static_cast<pid_t>(pid), &status, 0);
  }
  Floor floor{(spent() - cpuBefore) / runs, (hostBusyMs() - hostBefore) / runs};
  munmap(memory, size);
  return floor;
}

void printFloor(long zygoteKib, double sandboxFaults, int runs) {
  long pages = std::lround(sandboxFaults);
  Floor bare = forkFloor(zygoteKib, 0, runs);
  Floor touched = forkFloor(zygoteKib, pages, runs);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  printf(
      "\nthe floor: a child cloned into a sandbox's namespaces from a process with the\n"
      "zygote's %ld KiB of anonymous memory, exiting at once (%d runs; CPU of this\n"
      "process and its children, and of the whole host, kworkers included):\n",
      zygoteKib, runs);
  printf("  nothing written:      %.2f ms of CPU (host %.2f ms) per sandbox\n", bare.cpuMs,
         bare.hostCpuMs);
  printf("  %ld pages written:    %.2f ms of CPU (host %.2f ms): %.1f us a page\n", pages,
         touched.cpuMs, touched.hostCpuMs,
         (touched.cpuMs - bare.cpuMs) * 1e3 / std::max(1L, pages));
  auto rate = [&](const Floor& f) { return cores * 1e3 / std::max(f.hostCpuMs, f.cpuMs); };
  printf(
      "  on these %ld cores at most %.0f sandboxes/s if one wrote nothing, %.0f/s if it wrote\n"
      "  what a hello sandbox does; a burst of 200 ends no sooner than %.0f ms and %.0f ms\n",
      cores, rate(bare), rate(touched), 200 * 1e3 / rate(bare), 200 * 1e3 / rate(touched));
}

void printCost(const ColdStart& c, const Cost& cost) {
  printf("  per cold start, the zygote's whole tree: %.2f ms of CPU, %.0f page faults\n",
         cost.cpuMs / c.spawns, cost.faults / c.spawns);
}

void printBreakdown(const ColdStart& c) {
  printf(
      "  breakdown (median ms of each phase: request = client to zygote; clone = the\n"
      "  zygote's cgroup creation and clone; sync = its uid maps, cgroup placement and\n"
      "  network set-up; then the child's confinement steps and Python's phases):\n");
  for (const std::string& step : c.order) {
    const Stats& s = c.steps.at(step);
    printf("    %-14s %7.3f", step.c_str(), s.median());
    if (s.values.size() * 2 < c.total.values.size()) printf("   (%zu runs)", s.values.size());
    if (c.stepFaults.count(step)) printf("   (%.0f page faults)", c.stepFaults.at(step).median());
    printf("\n");
  }
  printf("    %-14s %7.3f\n", "first call", c.firstCall.median());
  printf("  minor page faults in the sandbox: %.0f at ready, %.0f after the first call\n",
         c.faultsReady.median(), c.faultsFirst.median());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr,
            "usage: cold-start ZYGOTE_BINARY EXAMPLES_DIR [RUNS [PART,...]]\n"
            "parts: fresh, stem, burst, numpy, floor (all five by default)\n");
    return 2;
  }
  std::string zygoteBinary = argv[1], examples = argv[2];
  int runs = argc > 3 ? atoi(argv[3]) : 200;
  std::set<std::string> parts = {"fresh", "stem", "burst", "numpy", "floor"};
  if (argc > 4) {
    parts.clear();
    std::istringstream list(argv[4]);
    for (std::string part; std::getline(list, part, ',');) parts.insert(part);
  }
  const std::vector<std::string> bwrap = {
      "/usr/bin/bwrap", "--unshare-all", "--ro-bind",        "/usr",      "/usr",    "--symlink",
      "usr/lib",        "/lib",          "--symlink",        "usr/lib64", "/lib64",  "--symlink",
      "usr/bin",        "/bin",          "--proc",           "/proc",     "--dev",   "/dev",
      "--tmpfs",        "/tmp",          "/usr/bin/python3", "-c",        "print(1)"};
  Stats boxed = commandStats(bwrap, 40);

  runtime::ZygoteOptions options;
  options.binary = zygoteBinary;
  ColdStart hello;
  long zygoteKib = 0;
  if (parts.count("fresh")) {
    MeasuredZygote zygote(options);
    zygoteKib = anonymousKib(zygote->pid());
    hello = measure(*zygote, examples + "/hello", runs);
    Cost cost = zygote.finish();
    Stats bare = commandStats({"/usr/bin/python3", "-c", "print(1)"}, 40);
    printf("cold start, spawn request -> first result of examples/hello (%d runs):\n", runs);
    printf("  median %.3f ms, p99 %.3f ms\n", hello.total.median(), hello.total.at(0.99));
    printCost(hello, cost);
    printBreakdown(hello);
    printf("baselines in the same run (40 runs each):\n");
    printf("  python3 -c 'print(1)'          median %.2f ms\n", bare.median());
    printf("  bwrap ... python3 -c 'print(1)' median %.2f ms\n", boxed.median());
    printf("bwrap line / fresh-fork cold start = %.1fx (the 10x target is for stem cells, below)\n",
           boxed.median() / hello.total.median());
  }

  if (parts.count("stem")) {
    MeasuredZygote stemZygote(options);
    rootfs::SandboxShape function;
    function.codeDir = examples + "/hello";
    stemZygote->startStemCells(2, rootfs::sandboxSpec(function), "/run/thatch/ids", {});
    std::this_thread::sleep_for(500ms);
    ColdStart stem = measure(*stemZygote, examples + "/hello", runs, 120ms);
    Cost cost = stemZygote.finish();
    printf("\nstem cells (pre-forked, confined, warmed; claimed %d of %d spawns):\n", stem.claims,
           runs + 5);
    printf("  cold start median %.3f ms, p99 %.3f ms\n", stem.total.median(), stem.total.at(0.99));
    printCost(stem, cost);
    printBreakdown(stem);
    printf("bwrap line (median %.2f ms) / stem-cell cold start = %.1fx (target >= 10x)\n",
           boxed.median(), boxed.median() / stem.total.median());
  }

  if (parts.count("burst")) {
    // Back to back, as fast as one client goes: stems are claimed faster
    // than a fixed pool refilled when idle; the pool grows to the rate.
    MeasuredZygote stemZygote(options);
    rootfs::SandboxShape function;
    function.codeDir = examples + "/hello";
    stemZygote->startStemCells(16, rootfs::sandboxSpec(function), "/run/thatch/ids", {});
    std::this_thread::sleep_for(500ms);
    ColdStart burst = measure(*stemZygote, examples + "/hello", runs);
    Cost cost = stemZygote.finish();
    printf("\nback-to-back cold starts, stem cells sized by the zygote (at most 16):\n");
    printf("  claimed %d of %d spawns, at most %u warm; median %.3f ms, p99 %.3f ms\n",
           burst.claims, runs + 5, burst.mostWarm, burst.total.median(), burst.total.at(0.99));
    printCost(burst, cost);
  }

  if (parts.count("numpy")) {
    options.runtime = "python3.11-numpy";
    MeasuredZygote numpyZygote(options);
    ColdStart numpy = measure(*numpyZygote, examples + "/numpy", std::max(50, runs / 4));
    Cost cost = numpyZygote.finish();
    Stats bareNumpy = commandStats({"/usr/bin/python3", "-c", "import numpy"}, 20);
    printf("\nnumpy runtime cold start (examples/numpy): median %.3f ms, p99 %.3f ms\n",
           numpy.total.median(), numpy.total.at(0.99));
    printCost(numpy, cost);
    printf("  python3 -c 'import numpy' in the same run: median %.2f ms\n", bareNumpy.median());
    if (!hello.total.values.empty())
      printf("numpy cold start / hello cold start = %.2f (target <= 1.30)\n",
             numpy.total.median() / hello.total.median());
    printf("python3 -c 'import numpy' / numpy cold start = %.1fx\n",
           bareNumpy.median() / numpy.total.median());
  }

  if (parts.count("floor")) {
    if (!zygoteKib) {
      MeasuredZygote zygote(options);
      zygoteKib = anonymousKib(zygote->pid());
    }
    // What a hello sandbox takes after its first call, when `fresh` did not run.
    constexpr double kHelloFaults = 424;
    printFloor(zygoteKib,
               hello.faultsFirst.values.empty() ? kHelloFaults : hello.faultsFirst.median(),
               std::max(50, runs / 2));
  }
  return 0;
}
