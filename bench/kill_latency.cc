// kill-latency: how long after its deadline a spinning sandbox is gone
// (killed, reaped, cgroup emptied), against the same kill of a plain forked
// process measured in the same run.

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "run/run_options.h"
#include "sandbox/sandbox.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

// A forked, unconfined spinner killed the same way: pidfd SIGKILL + waitid.
double plainKill() {
  pid_t pid = fork();
  if (pid == 0)
    for (;;) asm volatile("" ::: "memory");
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  usleep(20000);
  auto start = Clock::now();
  syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
  siginfo_t info;
  waitid(static_cast<idtype_t>(P_PIDFD), pidfd, &info, WEXITED);
  double us = micros(Clock::now() - start);
  close(pidfd);
  return us;
}

double sandboxKill(sandbox::CgroupManager& cgroups, sandbox::IdAllocator& ids,
                   const std::string& probeDir) {
  run::RunOptions options = run::parseRunOptions(
      {"--ro-bind", probeDir + ":/probe", "--", "/probe/thatch-probe", "spin"});
  sandbox::IdLease lease = ids.acquire();
  sandbox::Spec spec = run::buildRunSpec(options, lease);
  std::string name = "bench-" + std::to_string(lease.hostId());
  cgroups.remove(name);
  sandbox::Sandbox box(spec, {name, "thb" + std::to_string(lease.slot())}, cgroups,
                       [&](const sandbox::ChildChannel& channel) -> int {
                         sandbox::execInSandbox(options.command, {}, channel);
                       });
  auto deadline = Clock::now() + 20ms;
  box.wait(deadline);
  return micros(Clock::now() - deadline);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: kill-latency PROBE_DIR [RUNS]\n");
    return 2;
  }
  int runs = argc > 2 ? atoi(argv[2]) : 50;
  auto cgroups = sandbox::detectCgroups();
  sandbox::IdAllocator ids("/run/thatch/ids", {});
  std::vector<double> plain, boxed;
  for (int i = 0; i < runs; ++i) {
    plain.push_back(plainKill());
    boxed.push_back(sandboxKill(*cgroups, ids, argv[1]));
  }
  double plainMedian = percentile(plain, 0.5), boxedMedian = percentile(boxed, 0.5);
  printf("plain process: kill+reap median %.0f us, p99 %.0f us\n", plainMedian,
         percentile(plain, 0.99));
  printf("sandbox: deadline -> gone (killed, reaped, cgroup empty) median %.0f us, p99 %.0f us\n",
         boxedMedian, percentile(boxed, 0.99));
  printf("sandbox / plain = %.2f\n", boxedMedian / plainMedian);
  return 0;
}
