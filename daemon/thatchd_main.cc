// thatchd: the daemon (daemon/daemon.h) served on its sockets. Runs the
// event loop, reloads its config on SIGHUP, drains on SIGTERM/SIGINT.
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "daemon/daemon.h"
#include "daemon/lambda_api.h"
#include "daemon/listeners.h"
#include "daemon/reload.h"
#include "daemon/server.h"
#include "supervisor/busy_poll.h"
#include "supervisor/config.h"
#include "supervisor/event_log.h"
#include "supervisor/host_check.h"

namespace {

const char kUsage[] =
    "usage: thatchd [--config FILE] [--state-dir DIR] [--socket PATH]\n"
    "           run the daemon: built-in defaults without --config; --state-dir and --socket\n"
    "           override the config's state_dir and socket\n"
    "       thatchd --check-config FILE  print the effective configuration, or each error\n"
    "       thatchd --check-host [--config FILE]\n"
    "           whether this host has what thatch needs for the configuration: one line per\n"
    "           check, OK, WARN or FAIL with the fix; exit 1 on any FAIL\n"
    "       thatchd --host-tuning [--config FILE]\n"
    "           the sysctls and LimitNOFILE the configuration's caps need, as KEY = VALUE\n"
    "           lines (what scripts/tune-host writes)\n";

enum class Mode { kRun, kCheckConfig, kCheckHost, kHostTuning };

int run(const supervisor::Config& config, const thatchd::ConfigSource& source) {
  // Signals become events on the loop: captured before anything else runs.
  kj::UnixEventPort::captureSignal(SIGTERM);
  kj::UnixEventPort::captureSignal(SIGINT);
  kj::UnixEventPort::captureSignal(SIGCHLD);
  kj::UnixEventPort::captureSignal(SIGHUP);
  auto io = kj::setupAsyncIo();
  supervisor::StderrBatch log;
  thatchd::Listeners listeners(config, *io.provider, log.sink());
  thatchd::Daemon daemon(config, io, log.sink(), [&]() { listeners.bind(io.waitScope); });
  thatchd::Server server(listeners, daemon, io, log.sink());
  std::unique_ptr<thatchd::LambdaApi> lambdaApi;
  if (thatchd::Listeners::Listener* http = listeners.http())
    lambdaApi = std::make_unique<thatchd::LambdaApi>(*http, daemon, io, log.sink());
  thatchd::Reloader reloader(
      source, daemon,
      supervisor::EventLog(config.logFormat == "json" ? supervisor::EventLog::Format::kJson
                                                      : supervisor::EventLog::Format::kText,
                           log.sink()));
  kj::Promise<void> reloading =
      reloader.reloadOnSignal(io.unixEventPort).eagerlyEvaluate([](kj::Exception&& e) {
        fprintf(stderr, "thatchd: reloading stopped: %s\n", e.getDescription().cStr());
      });
  log.flush();
  fprintf(stderr, "thatchd: ready, state in %s, %zu functions, socket %s\n",
          config.stateDir.c_str(), daemon.registry().list().size(), config.socketPath.c_str());
  auto stop = io.unixEventPort.onSignal(SIGTERM).exclusiveJoin(io.unixEventPort.onSignal(SIGINT));
  siginfo_t signal{};
  supervisor::runUntil(stop.then([&signal](siginfo_t received) { signal = received; }),
                       io.waitScope, daemon.supervisor().busyPoll());
  log.flush();
  fprintf(stderr, "thatchd: %s, draining\n", strsignal(signal.si_signo));
  reloading = nullptr;  // the config in force is the one it drains under
  if (lambdaApi) lambdaApi->stopListening();
  server.stopListening();
  daemon.supervisor().drain().wait(io.waitScope);
  // The last answers are on their way out: a moment to write them before
  // the connections close.
  io.provider->getTimer().afterDelay(100 * kj::MILLISECONDS).wait(io.waitScope);
  log.flush();
  lambdaApi.reset();
  fprintf(stderr, "thatchd: stopped\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  thatchd::ConfigSource source;
  Mode mode = Mode::kRun;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      fputs(kUsage, stdout);
      return 0;
    }
    if ((arg == "--config" || arg == "--check-config") && i + 1 < argc) {
      if (arg == "--check-config") mode = Mode::kCheckConfig;
      source.path = argv[++i];
      continue;
    }
    if (arg == "--check-host" || arg == "--host-tuning") {
      mode = arg == "--check-host" ? Mode::kCheckHost : Mode::kHostTuning;
      continue;
    }
    if (arg == "--state-dir" && i + 1 < argc) {
      source.stateDir = argv[++i];
      continue;
    }
    if (arg == "--socket" && i + 1 < argc) {
      source.socketPath = argv[++i];
      continue;
    }
    fprintf(stderr, "thatchd: unexpected argument '%s'\n%s", arg.c_str(), kUsage);
    return 2;
  }
  supervisor::Config config;
  try {
    config = thatchd::loadConfig(source);
  } catch (const supervisor::ConfigError& e) {
    if (!e.source().empty()) {
      fprintf(stderr, "thatchd: %s\n", e.what());
      return 2;
    }
    // The overrides' issues: no file to name.
    for (const supervisor::ConfigIssue& issue : e.issues())
      fprintf(stderr, "thatchd: %s: %s\n", issue.key.c_str(), issue.message.c_str());
    return 2;
  } catch (const std::exception& e) {
    fprintf(stderr, "thatchd: %s\n", e.what());
    return 2;
  }
  switch (mode) {
    case Mode::kCheckConfig:
      fputs(supervisor::renderConfig(config).c_str(), stdout);
      return 0;
    case Mode::kCheckHost: {
      supervisor::HostCheckReport report =
          supervisor::checkHost(config, supervisor::HostProbes::thisHost());
      fputs(report.render().c_str(), stdout);
      return report.failed() ? 1 : 0;
    }
    case Mode::kHostTuning:
      fputs(supervisor::hostTuning(config).c_str(), stdout);
      return 0;
    case Mode::kRun:
      break;
  }
  try {
    return run(config, source);
  } catch (const std::exception& e) {
    fprintf(stderr, "thatchd: %s\n", e.what());
    return 1;
  } catch (const kj::Exception& e) {
    fprintf(stderr, "thatchd: %s\n", e.getDescription().cStr());
    return 1;
  }
}
