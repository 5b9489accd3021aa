// thatchd's SIGHUP (`systemctl reload thatchd`): the config file read again,
// with the command line's overrides, and taken if it may be. A config that
// does not load, or that changes a key needing a restart, is refused whole
// with the reason in the log (config_reload_refused); the config in force
// stays. Otherwise Daemon::reload() takes it (config_reloaded, naming the
// changed keys). docs/configuration.md, "Reloading".
#pragma once

#include <kj/async-unix.h>

#include "daemon/daemon.h"
#include "supervisor/event_log.h"

namespace thatchd {

class Reloader {
 public:
  // `daemon` must outlive it.
  Reloader(ConfigSource source, Daemon& daemon, supervisor::EventLog log);

  // Reloads at each SIGHUP until dropped; the caller captured SIGHUP
  // (kj::UnixEventPort::captureSignal) before it set up its event loop.
  kj::Promise<void> reloadOnSignal(kj::UnixEventPort& eventPort);

  // Reads the config (at most 1 MiB: a bounded read on the loop) and takes
  // it if it may. True if the config in force is now the file's.
  bool reload();

 private:
  void refuse(const std::string& reason, const std::string& keys = "");

  ConfigSource source_;
  Daemon& daemon_;
  supervisor::EventLog log_;
};

}  // namespace thatchd
