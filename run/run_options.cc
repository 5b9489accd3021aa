#include "run/run_options.h"

#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <map>

#include "base/units.h"
#include "rootfs/sandbox_spec.h"
#include "sandbox/seccomp.h"

namespace run {

using sandbox::NetMode;

const char* const kRunUsage = R"(usage: thatch-run [OPTIONS] -- CMD [ARGS...]

Runs CMD confined: its own user, pid, mount, ipc, uts, cgroup and network
namespaces; an unprivileged uid; a private root with the host's /usr
read-only, a generated /etc, a minimal /dev, a fresh /proc and a
size-limited /tmp; cgroup limits; no capabilities; a seccomp allowlist.
stdin, stdout and stderr pass through.

options:
  --memory SIZE        memory limit, swap off (default 256M)
  --pids N             process/thread limit (default 64)
  --cpu CORES          CPU quota in cores, e.g. 0.5 (default: none)
  --timeout DURATION   wall-clock limit, e.g. 5s, 250ms (default: none)
  --net none|egress    none: only lo (default); egress: a veth to the host
                       bridge thatch0 (forwarding is the host's setup)
  --ro-bind SRC[:DST]  bind host SRC read-only at DST (default DST=SRC)
  --bind SRC[:DST]     bind host SRC read-write at DST
  --code DIR           bind DIR read-only at /var/task
  --tmpfs-size SIZE    size of /tmp (default 64M)
  --env K=V            set an environment variable (repeatable)
  --cwd DIR            working directory inside (default /)
  --hostname NAME      hostname inside (default sandbox)
  -h, --help           this text

SIZE is bytes or a number with a binary unit (4096, 512K, 256M, 1.5G);
DURATION is a number with ms, s, m, h or d (250ms, 5s, 1.5s, 2m), as in
thatchd.toml and `thatch deploy`.

exit status:
  the command's own status, or 128+N if it was killed by signal N;
  2    bad arguments (nothing was started)
  121  killed: out of memory
  122  killed: pids limit reached
  124  killed: timeout
  125  the sandbox could not be set up (the step and errno are printed)
  126  the command is not executable
  127  the command was not found
  130  interrupted (SIGINT/SIGTERM/SIGHUP to thatch-run)
)";

namespace {

// The grammar is base/units.h's; a mistake is a usage error here.
uint64_t sizeOption(const std::string& option, const std::string& text) {
  try {
    return base::parseSize(text);
  } catch (const std::invalid_argument& e) {
    throw UsageError(option + ": " + e.what());
  }
}

std::chrono::milliseconds durationOption(const std::string& option, const std::string& text) {
  try {
    std::chrono::milliseconds duration = base::parseDuration(text);
    if (duration.count() == 0) throw UsageError(option + " must be more than 0");
    return duration;
  } catch (const std::invalid_argument& e) {
    throw UsageError(option + ": " + e.what());
  }
}

bool pathExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

rootfs::Bind parseBind(const std::string& value, bool writable) {
  rootfs::Bind bind;
  size_t colon = value.find(':');
  bind.source = value.substr(0, colon);
  bind.target = colon == std::string::npos ? bind.source : value.substr(colon + 1);
  bind.writable = writable;
  if (bind.source.empty() || bind.source[0] != '/')
    throw UsageError("bind source '" + bind.source + "' must be an absolute path");
  if (!pathExists(bind.source))
    throw UsageError("bind source '" + bind.source + "' does not exist");
  try {
    bind.target = rootfs::normalizeTarget(bind.target);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("bind target: ") + e.what());
  }
  return bind;
}

uint64_t parseCount(const std::string& text) {
  size_t used = 0;
  unsigned long long value = 0;
  try {
    value = std::stoull(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || text[0] == '-' || value == 0)
    throw UsageError("invalid count '" + text + "' (a positive whole number)");
  return value;
}

double parseCpus(const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || !(value >= 0.01) || value > 4096)
    throw UsageError("invalid CPU quota '" + text + "' (cores, e.g. 0.5 or 2)");
  return value;
}

}  // namespace

RunOptions parseRunOptions(const std::vector<std::string>& args) {
  RunOptions options;
  using Setter = std::function<void(const std::string&)>;
  const std::map<std::string, Setter> valued = {
      {"--memory", [&](const std::string& v) { options.memoryBytes = sizeOption("--memory", v); }},
      {"--pids", [&](const std::string& v) { options.pids = parseCount(v); }},
      {"--cpu", [&](const std::string& v) { options.cpus = parseCpus(v); }},
      {"--timeout",
       [&](const std::string& v) { options.timeout = durationOption("--timeout", v); }},
      {"--net",
       [&](const std::string& v) {
         if (v == "none")
           options.net = NetMode::kNone;
         else if (v == "egress")
           options.net = NetMode::kEgress;
         else
           throw UsageError("invalid --net '" + v + "' (none or egress)");
       }},
      {"--ro-bind", [&](const std::string& v) { options.binds.push_back(parseBind(v, false)); }},
      {"--bind", [&](const std::string& v) { options.binds.push_back(parseBind(v, true)); }},
      {"--code",
       [&](const std::string& v) {
         if (v.empty() || v[0] != '/' || !pathExists(v))
           throw UsageError("--code '" + v + "' must be an existing absolute directory");
         options.codeDir = v;
       }},
      {"--tmpfs-size",
       [&](const std::string& v) { options.tmpfsBytes = sizeOption("--tmpfs-size", v); }},
      {"--env",
       [&](const std::string& v) {
         size_t eq = v.find('=');
         if (eq == 0 || eq == std::string::npos || v.find('\0') != std::string::npos)
           throw UsageError("invalid --env '" + v + "' (K=V)");
         options.env.push_back(v);
       }},
      {"--cwd",
       [&](const std::string& v) {
         if (v.empty() || v[0] != '/') throw UsageError("--cwd must be an absolute path");
         options.cwd = v;
       }},
      {"--hostname",
       [&](const std::string& v) {
         if (v.empty() || v.size() > 64) throw UsageError("invalid --hostname");
         options.hostname = v;
       }},
  };
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg == "-h" || arg == "--help") {
      options.help = true;
      return options;
    }
    std::string name = arg, value;
    bool inlineValue = false;
    if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      inlineValue = true;
    }
    auto it = valued.find(name);
    if (it == valued.end()) {
      if (arg.rfind("-", 0) == 0) throw UsageError("unknown option '" + arg + "'");
      break;  // the command starts here
    }
    if (!inlineValue) {
      if (++i >= args.size()) throw UsageError("option " + name + " needs a value");
      value = args[i];
    }
    it->second(value);
  }
  options.command.assign(args.begin() + i, args.end());
  if (options.command.empty())
    throw UsageError("no command given (thatch-run [OPTIONS] -- CMD ...)");
  if (options.tmpfsBytes < 4096) throw UsageError("--tmpfs-size must be at least 4K");
  if (options.memoryBytes < (4ull << 20)) throw UsageError("--memory must be at least 4M");
  return options;
}

std::vector<std::string> sandboxEnvironment(const std::vector<std::string>& extra) {
  std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "LANG=C.UTF-8"};
  for (const std::string& var : extra) {
    std::string key = var.substr(0, var.find('=') + 1);
    std::erase_if(env, [&](const std::string& e) { return e.rfind(key, 0) == 0; });
    env.push_back(var);
  }
  return env;
}

sandbox::Spec buildRunSpec(const RunOptions& options, const sandbox::IdLease& lease) {
  rootfs::SandboxShape shape;
  shape.codeDir = options.codeDir;
  shape.hostId = lease.hostId();
  shape.idSlot = lease.slot();
  shape.limits = {options.memoryBytes, options.pids, options.cpus};
  shape.tmpSizeBytes = options.tmpfsBytes;
  shape.tmpNoexec = true;  // a command runs from the host's /usr, not from what it writes
  shape.net = options.net;
  shape.hostname = options.hostname;
  shape.cwd = options.cwd;
  shape.binds = options.binds;
  sandbox::Spec spec = rootfs::sandboxSpec(shape);
  spec.seccomp = std::make_shared<sandbox::SeccompProgram>(sandbox::SeccompProgram{
      {sandbox::kPythonPolicyBpf, sandbox::kPythonPolicyBpf + sandbox::kPythonPolicyBpfLength}});
  return spec;
}

}  // namespace run
