// cold-start: spawn request -> first result of examples/hello from a
// thatch-zygote, with the breakdown of where the time goes, against
// `python3 -c 'print(1)'` bare and under bwrap measured in the same run; and
// the numpy runtime against `python3 -c 'import numpy'`.

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
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
  std::map<std::string, Stats> steps;       // time spent in each step
  std::map<std::string, Stats> stepFaults;  // page faults in each Python phase
  std::vector<std::string> order;
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
    zygote.spawn(++nextId, params, std::move(ends));
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
        if (result.order.size() <= ready.timings.size()) result.order.push_back(t.step);
        result.steps[t.step].values.push_back(ms(t.ns - previous));
        previous = t.ns;
        if (t.minorFaults) {
          if (previousFaults)
            result.stepFaults[t.step].values.push_back(t.minorFaults - previousFaults);
          previousFaults = t.minorFaults;
        }
      }
    }
    // Closing the channel ends the sandbox; wait for it so runs do not overlap.
    channel.reset();
    zygote.nextExit(5s);
    std::this_thread::sleep_for(pause);  // lets the zygote warm a replacement stem cell
  }
  return result;
}

void printBreakdown(const ColdStart& c) {
  printf(
      "  breakdown (median ms of each phase: request = client to zygote; clone = the\n"
      "  zygote's cgroup creation and clone; sync = its uid maps, cgroup placement and\n"
      "  network set-up; then the child's confinement steps and Python's phases):\n");
  for (const std::string& step : c.order) {
    printf("    %-14s %7.3f", step.c_str(), c.steps.at(step).median());
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
    fprintf(stderr, "usage: cold-start ZYGOTE_BINARY EXAMPLES_DIR [RUNS]\n");
    return 2;
  }
  std::string zygoteBinary = argv[1], examples = argv[2];
  int runs = argc > 3 ? atoi(argv[3]) : 200;
  const std::vector<std::string> bwrap = {
      "/usr/bin/bwrap", "--unshare-all", "--ro-bind",        "/usr",      "/usr",    "--symlink",
      "usr/lib",        "/lib",          "--symlink",        "usr/lib64", "/lib64",  "--symlink",
      "usr/bin",        "/bin",          "--proc",           "/proc",     "--dev",   "/dev",
      "--tmpfs",        "/tmp",          "/usr/bin/python3", "-c",        "print(1)"};

  runtime::ZygoteOptions options;
  options.binary = zygoteBinary;
  runtime::Zygote zygote(options);
  ColdStart hello = measure(zygote, examples + "/hello", runs);
  Stats bare = commandStats({"/usr/bin/python3", "-c", "print(1)"}, 40);
  Stats boxed = commandStats(bwrap, 40);

  printf("cold start, spawn request -> first result of examples/hello (%d runs):\n", runs);
  printf("  median %.3f ms, p99 %.3f ms\n", hello.total.median(), hello.total.at(0.99));
  printBreakdown(hello);
  printf("baselines in the same run (40 runs each):\n");
  printf("  python3 -c 'print(1)'          median %.2f ms\n", bare.median());
  printf("  bwrap ... python3 -c 'print(1)' median %.2f ms\n", boxed.median());
  double speedup = boxed.median() / hello.total.median();
  printf("bwrap line / fresh-fork cold start = %.1fx (the 10x target is for stem cells, below)\n",
         speedup);

  {
    runtime::Zygote stemZygote(options);
    rootfs::SandboxShape function;
    function.codeDir = examples + "/hello";
    stemZygote.startStemCells(2, rootfs::sandboxSpec(function), "/run/thatch/ids", {});
    std::this_thread::sleep_for(500ms);
    ColdStart stem = measure(stemZygote, examples + "/hello", runs, 120ms);
    printf("\nstem cells (pre-forked, confined, warmed; claimed %d of %d spawns):\n", stem.claims,
           runs + 5);
    printf("  cold start median %.3f ms, p99 %.3f ms\n", stem.total.median(), stem.total.at(0.99));
    printBreakdown(stem);
    printf("bwrap line / stem-cell cold start = %.1fx (target >= 10x)\n",
           boxed.median() / stem.total.median());
  }

  options.runtime = "python3.11-numpy";
  runtime::Zygote numpyZygote(options);
  ColdStart numpy = measure(numpyZygote, examples + "/numpy", std::max(50, runs / 4));
  Stats bareNumpy = commandStats({"/usr/bin/python3", "-c", "import numpy"}, 20);
  printf("\nnumpy runtime cold start (examples/numpy): median %.3f ms, p99 %.3f ms\n",
         numpy.total.median(), numpy.total.at(0.99));
  printf("  python3 -c 'import numpy' in the same run: median %.2f ms\n", bareNumpy.median());
  printf("numpy cold start / hello cold start = %.2f (target <= 1.30)\n",
         numpy.total.median() / hello.total.median());
  printf("python3 -c 'import numpy' / numpy cold start = %.1fx\n",
         bareNumpy.median() / numpy.total.median());
  return 0;
}
