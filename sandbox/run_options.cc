#include "sandbox/run_options.h"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <map>

#include "sandbox/rlimits.h"

namespace sandbox {
namespace {

// A plain decimal number ("1.5", "256") at the start of `text`: stod alone
// would also take "0x10", "1e3", "inf" and leading blanks.
double parseLeadingDecimal(const std::string& text, size_t* used, const std::string& what) {
  size_t end = text.find_first_not_of("0123456789.");
  if (end == 0 || end == std::string::npos) end = text.size();
  if (end == 0 || !std::isdigit(static_cast<unsigned char>(text[0])) ||
      (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]))))
    throw UsageError("invalid " + what + " '" + text + "'");
  try {
    double value = std::stod(text.substr(0, end), used);
    if (*used != end) throw UsageError("invalid " + what + " '" + text + "'");
    return value;
  } catch (const std::logic_error&) {
    throw UsageError("invalid " + what + " '" + text + "'");
  }
}

}  // namespace

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

uint64_t parseSize(const std::string& text) {
  size_t used = 0;
  double value = parseLeadingDecimal(text, &used, "size");
  std::string unit = text.substr(used);
  static const std::map<std::string, double> kUnits = {{"", 1},
                                                       {"b", 1},
                                                       {"k", 1ull << 10},
                                                       {"kb", 1ull << 10},
                                                       {"kib", 1ull << 10},
                                                       {"m", 1ull << 20},
                                                       {"mb", 1ull << 20},
                                                       {"mib", 1ull << 20},
                                                       {"g", 1ull << 30},
                                                       {"gb", 1ull << 30},
                                                       {"gib", 1ull << 30},
                                                       {"t", 1ull << 40},
                                                       {"tb", 1ull << 40},
                                                       {"tib", 1ull << 40}};
  std::string lower;
  for (char c : unit) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto it = kUnits.find(lower);
  if (it == kUnits.end() || !(value >= 0) || std::isinf(value) || text.empty() ||
      !std::isdigit(static_cast<unsigned char>(text[0])))
    throw UsageError("invalid size '" + text + "' (use e.g. 256M, 1G, 512K)");
  double bytes = value * it->second;
  if (bytes >= 18e18) throw UsageError("size '" + text + "' is too large");
  return static_cast<uint64_t>(bytes);
}

std::chrono::nanoseconds parseDuration(const std::string& text) {
  size_t used = 0;
  double value = parseLeadingDecimal(text, &used, "duration");
  std::string unit = text.substr(used);
  static const std::map<std::string, double> kSeconds = {{"", 1},      {"s", 1},  {"ms", 1e-3},
                                                         {"us", 1e-6}, {"m", 60}, {"h", 3600}};
  auto it = kSeconds.find(unit);
  if (it == kSeconds.end() || !std::isdigit(static_cast<unsigned char>(text[0])) || !(value > 0) ||
      std::isinf(value))
    throw UsageError("invalid duration '" + text + "' (use e.g. 5s, 250ms, 2m)");
  double ns = value * it->second * 1e9;
  if (ns > 1e18) throw UsageError("duration '" + text + "' is too long");
  return std::chrono::nanoseconds(static_cast<int64_t>(ns));
}

std::string formatSize(uint64_t bytes) {
  char out[64];
  if (bytes >= (1ull << 30) && bytes % (1ull << 20) == 0 && bytes % (1ull << 30) != 0)
    snprintf(out, sizeof out, "%llu MiB", static_cast<unsigned long long>(bytes >> 20));
  else if (bytes >= (1ull << 30))
    snprintf(out, sizeof out, "%.4g GiB", bytes / double(1ull << 30));
  else if (bytes >= (1ull << 20))
    snprintf(out, sizeof out, "%.4g MiB", bytes / double(1ull << 20));
  else if (bytes >= (1ull << 10))
    snprintf(out, sizeof out, "%.4g KiB", bytes / double(1ull << 10));
  else
    snprintf(out, sizeof out, "%llu bytes", static_cast<unsigned long long>(bytes));
  return out;
}

namespace {

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
      {"--memory", [&](const std::string& v) { options.memoryBytes = parseSize(v); }},
      {"--pids", [&](const std::string& v) { options.pids = parseCount(v); }},
      {"--cpu", [&](const std::string& v) { options.cpus = parseCpus(v); }},
      {"--timeout", [&](const std::string& v) { options.timeout = parseDuration(v); }},
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
      {"--tmpfs-size", [&](const std::string& v) { options.tmpfsBytes = parseSize(v); }},
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

namespace {}  // namespace

Spec buildRunSpec(const RunOptions& options, const IdLease& lease) {
  Spec spec;
  spec.hostname = options.hostname;
  spec.ids.hostUid = lease.hostId();
  spec.ids.hostGid = lease.hostId();
  spec.limits = {options.memoryBytes, options.pids, options.cpus};
  rootfs::Options root;
  root.codeDir = options.codeDir;
  root.tmpSizeBytes = options.tmpfsBytes;
  root.network = options.net == NetMode::kEgress;
  root.hostname = options.hostname;
  root.uid = spec.ids.insideUid;
  root.gid = spec.ids.insideGid;
  root.binds = options.binds;
  spec.mounts = rootfs::defaultPlan(root);
  // /tmp's size is the bound that reports ENOSPC; the file size limit stays
  // above it and only bounds writable binds.
  spec.rlimits = withRlimit(defaultRlimits(), RLIMIT_FSIZE,
                            std::max<uint64_t>(1ull << 30, options.tmpfsBytes + (1 << 20)));
  spec.net.mode = options.net;
  if (options.net == NetMode::kEgress)
    spec.net.egress.sandboxAddress = egressAddress(spec.net.egress.bridgeAddress, lease.slot());
  spec.seccomp = std::make_shared<SeccompProgram>(
      SeccompProgram{{kPythonPolicyBpf, kPythonPolicyBpf + kPythonPolicyBpfLength}});
  spec.cwd = options.cwd;
  return spec;
}

std::string egressAddress(const std::string& bridgeCidr, unsigned slot) {
  size_t slash = bridgeCidr.find('/');
  std::string base = bridgeCidr.substr(0, slash);
  int prefix = std::stoi(bridgeCidr.substr(slash + 1));
  in_addr addr;
  if (inet_pton(AF_INET, base.c_str(), &addr) != 1)
    throw std::invalid_argument("bad bridge address " + bridgeCidr);
  uint32_t hostBits = 32 - prefix;
  uint32_t size = hostBits >= 32 ? 0xffffffffu : (1u << hostBits);
  uint32_t network = ntohl(addr.s_addr) & ~(size - 1);
  uint32_t offset = 2 + slot % (size - 3);  // .0 network, .1 bridge, last broadcast
  addr.s_addr = htonl(network + offset);
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &addr, text, sizeof text);
  return std::string(text) + "/" + std::to_string(prefix);
}

}  // namespace sandbox
