#include "daemon/reload.h"

#include <signal.h>

#include <exception>

namespace thatchd {
namespace {

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

// Every issue, one after the other on the log's one line.
std::string describe(const supervisor::ConfigError& error) {
  std::string out;
  for (const supervisor::ConfigIssue& issue : error.issues()) {
    if (!out.empty()) out += "; ";
    if (issue.line > 0) out += "line " + std::to_string(issue.line) + ": ";
    if (!issue.key.empty()) out += issue.key + ": ";
    out += issue.message;
  }
  return out;
}

}  // namespace

Reloader::Reloader(ConfigSource source, Daemon& daemon, supervisor::EventLog log)
    : source_(std::move(source)), daemon_(daemon), log_(std::move(log)) {}

kj::Promise<void> Reloader::reloadOnSignal(kj::UnixEventPort& eventPort) {
  return eventPort.onSignal(SIGHUP).then([this, &eventPort](siginfo_t) {
    reload();
    return reloadOnSignal(eventPort);
  });
}

bool Reloader::reload() {
  if (source_.path.empty()) {
    refuse("thatchd runs on the built-in defaults: there is no --config to read again");
    return false;
  }
  supervisor::Config next;
  try {
    next = loadConfig(source_);
  } catch (const supervisor::ConfigError& e) {
    refuse(describe(e));
    return false;
  } catch (const std::exception& e) {
    refuse(e.what());
    return false;
  }
  supervisor::ConfigChange change = daemon_.reload(next);
  if (!change.needRestart.empty()) {
    refuse("these keys change only with a restart", joined(change.needRestart));
    return false;
  }
  log_.write("config_reloaded", {{"config", source_.path}, {"changed", joined(change.changed)}});
  return true;
}

void Reloader::refuse(const std::string& reason, const std::string& keys) {
  if (keys.empty())
    log_.write("config_reload_refused", {{"config", source_.path}, {"reason", reason}});
  else
    log_.write("config_reload_refused",
               {{"config", source_.path}, {"reason", reason}, {"keys", keys}});
}

}  // namespace thatchd
