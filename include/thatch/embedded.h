// thatch in process: the supervisor that thatchd runs, inside this program,
// behind the same thatch::Thatch as a connection to thatchd. No socket, no
// daemon to operate; the program needs what thatchd needs (root, cgroups,
// user namespaces, thatch-zygote).
//
//   thatch::InProcessOptions options;
//   options.configPath = "/etc/myapp/thatch.toml";   // its own state_dir and cgroup_subdir
//   std::unique_ptr<thatch::Thatch> thatch = thatch::startInProcess(options);
//   thatch->deploy("hello", "examples/hello");       // reads the directory in place
//
// Build with `pkg-config --cflags --libs thatch-embedded` (libthatch-embedded.a
// holds the supervisor, the runtime's client and the sandbox; it uses
// libthatch.a's client).
//
// The config is checked as thatchd checks its own. Under cgroup v2 this
// process (all its threads) moves into a leaf cgroup, `thatchd-daemon`,
// below the cgroup it was started in, and the sandboxes' cgroups go into
// `cgroup_subdir` beside that leaf, as thatchd does under systemd: the
// program's cgroup must be delegated to it (systemd's Delegate=yes), and
// anything that manages the program's cgroup sees it in that leaf from
// then on (a second start in the same process leaves it there). It says
// so on stderr ("thatchd: moved into ..."). Under cgroup v1, or in the root
// cgroup, nothing moves. docs/install.md has the rest.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "thatch/thatch.h"

namespace thatch {

// Give it a config of its own: the built-in defaults share thatchd's
// state_dir (locked: one user at a time) and cgroup_subdir (which each
// supervisor empties when it starts).
struct InProcessOptions {
  std::string configPath;  // a thatchd TOML file; "" = the built-in defaults
  std::string stateDir;    // overrides the config's state_dir when set
  // Overrides the config's zygote when set; without either, thatch-zygote
  // beside this program, else on $PATH.
  std::string zygotePath;
  // The supervisor's event log, one line per call (no newline); stderr when empty.
  std::function<void(std::string_view line)> log;
};

// Starts the supervisor in this process (locking its state directory and
// starting one zygote per runtime) and returns a Thatch that talks to it
// without a socket: a deploy of a directory reads it in place. Throws
// Error (kConnect) when it cannot start. Used on this thread only, like any
// Thatch.
std::unique_ptr<Thatch> startInProcess(const InProcessOptions& options = {});

}  // namespace thatch
