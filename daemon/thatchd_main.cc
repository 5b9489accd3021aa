// thatchd: the supervisor daemon. Builds the components, runs the event
// loop, drains on SIGTERM/SIGINT.
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "daemon/server.h"
#include "sandbox/cgroup.h"
#include "supervisor/config.h"
#include "supervisor/registry.h"
#include "supervisor/supervisor.h"

namespace {

const char kUsage[] =
    "usage: thatchd [--config FILE] [--state-dir DIR] [--socket PATH]\n"
    "           run the daemon: built-in defaults without --config; --state-dir and --socket\n"
    "           override the config's state_dir and socket\n"
    "       thatchd --check-config FILE  print the effective configuration, or each error\n";

int run(const supervisor::Config& config) {
  // Signals become events on the loop: captured before anything else runs.
  kj::UnixEventPort::captureSignal(SIGTERM);
  kj::UnixEventPort::captureSignal(SIGINT);
  kj::UnixEventPort::captureSignal(SIGCHLD);
  auto io = kj::setupAsyncIo();
  supervisor::StateDirLock lock(config.stateDir);
  supervisor::StderrBatch log;
  thatchd::Server server(config, *io.provider, io.unixEventPort, log.sink());
  server.listen(io.waitScope);
  supervisor::Registry registry(config.stateDir);
  supervisor::SteadyClock clock;
  supervisor::SupervisorOptions options;
  options.config = config;
  // Under cgroup v2 (systemd's Delegate=yes), thatchd's own cgroup must hold
  // no process for its sandboxes' cgroups to get controllers below it.
  options.cgroupParent = sandbox::moveIntoLeafCgroup("thatchd-daemon");
  if (!options.cgroupParent.empty())
    fprintf(stderr, "thatchd: moved into %s/thatchd-daemon (cgroup v2)\n",
            options.cgroupParent.c_str());
  options.logSink = log.sink();
  options.zygoteBinary =
      config.zygotePath.empty() ? supervisor::zygoteBesideThisProgram() : config.zygotePath;
  supervisor::Supervisor daemon(options, registry, clock, io.provider->getTimer(), io.unixEventPort,
                                *io.lowLevelProvider);
  server.serve(daemon, registry);
  log.flush();
  fprintf(stderr, "thatchd: ready, state in %s, %zu functions, socket %s\n",
          config.stateDir.c_str(), registry.list().size(), config.socketPath.c_str());
  auto stop = io.unixEventPort.onSignal(SIGTERM).exclusiveJoin(io.unixEventPort.onSignal(SIGINT));
  siginfo_t signal{};
  supervisor::runUntil(stop.then([&signal](siginfo_t received) { signal = received; }),
                       io.waitScope, daemon.busyPoll());
  log.flush();
  fprintf(stderr, "thatchd: %s, draining\n", strsignal(signal.si_signo));
  server.stopListening();
  daemon.drain().wait(io.waitScope);
  // The last answers are on their way out: a moment to write them before
  // the connections close.
  io.provider->getTimer().afterDelay(100 * kj::MILLISECONDS).wait(io.waitScope);
  log.flush();
  fprintf(stderr, "thatchd: stopped\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string configPath, stateDir, socket;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      fputs(kUsage, stdout);
      return 0;
    }
    if ((arg == "--config" || arg == "--check-config") && i + 1 < argc) {
      check = arg == "--check-config";
      configPath = argv[++i];
      continue;
    }
    if (arg == "--state-dir" && i + 1 < argc) {
      stateDir = argv[++i];
      continue;
    }
    if (arg == "--socket" && i + 1 < argc) {
      socket = argv[++i];
      continue;
    }
    fprintf(stderr, "thatchd: unexpected argument '%s'\n%s", arg.c_str(), kUsage);
    return 2;
  }
  supervisor::Config config;
  try {
    config = configPath.empty() ? supervisor::defaultConfig() : supervisor::loadConfig(configPath);
  } catch (const std::exception& e) {
    fprintf(stderr, "thatchd: %s\n", e.what());
    return 2;
  }
  if (!stateDir.empty()) config.stateDir = stateDir;
  if (!socket.empty()) config.socketPath = socket;
  // The overrides follow the config file's rules (absolute paths, ...).
  if (std::vector<supervisor::ConfigIssue> issues = supervisor::validateConfig(config);
      !issues.empty()) {
    for (const supervisor::ConfigIssue& issue : issues)
      fprintf(stderr, "thatchd: %s: %s\n", issue.key.c_str(), issue.message.c_str());
    return 2;
  }
  if (check) {
    fputs(supervisor::renderConfig(config).c_str(), stdout);
    return 0;
  }
  try {
    return run(config);
  } catch (const std::exception& e) {
    fprintf(stderr, "thatchd: %s\n", e.what());
    return 1;
  } catch (const kj::Exception& e) {
    fprintf(stderr, "thatchd: %s\n", e.getDescription().cStr());
    return 1;
  }
}
