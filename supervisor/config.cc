#include "supervisor/config.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "base/fd.h"
#include "base/text.h"
#include "supervisor/config_check.h"
#include "supervisor/config_keys.h"

namespace supervisor {

using base::printable;
namespace {

std::string describe(const std::string& source, const std::vector<ConfigIssue>& issues) {
  std::string text;
  for (const ConfigIssue& issue : issues) {
    if (!text.empty()) text += '\n';
    // One line per issue whatever the text holds (toml++ quotes the input).
    text += printable(source, 4096);
    if (issue.line > 0) text += ":" + std::to_string(issue.line);
    text += ": ";
    if (!issue.key.empty()) text += printable(issue.key, 4096) + ": ";
    text += printable(issue.message, 4096);
  }
  return text;
}

}  // namespace

std::string zygoteBesideThisProgram() {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "thatch-zygote";
  std::string path(self, size_t(n));
  return path.substr(0, path.rfind('/') + 1) + "thatch-zygote";
}

Config defaultConfig() {
  Config config;
  config.runtimes = {{"python3.11", 16, {}, {}}, {"python3.11-numpy", 0, {}, {}}};
  return config;
}

std::vector<std::string> knownRuntimeNames() {
  return {"python3.11", "python3.11-numpy"};
}

ConfigError::ConfigError(std::string source, std::vector<ConfigIssue> issues)
    : std::runtime_error(describe(source, issues)),
      source_(std::move(source)),
      issues_(std::move(issues)) {}

Config parseConfig(std::string_view toml, const std::string& sourceName) {
  Config config = defaultConfig();
  KeyInfo keys;
  std::vector<ConfigIssue> issues = readConfigToml(toml, sourceName, config, keys);
  std::vector<ConfigIssue> rangeIssues = checkConfig(config, keys);
  issues.insert(issues.end(), rangeIssues.begin(), rangeIssues.end());
  if (!issues.empty()) {
    std::stable_sort(issues.begin(), issues.end(),
                     [](const ConfigIssue& a, const ConfigIssue& b) { return a.line < b.line; });
    throw ConfigError(sourceName, std::move(issues));
  }
  return config;
}

Config loadConfig(const std::string& path) {
  constexpr size_t kMaxBytes = 1 << 20;  // a config is a few KiB; this stops /dev/zero
  auto failed = [&](const std::string& call) {
    return ConfigError(
        path, {{"", 0, "cannot read the configuration: " + call + ": " + strerror(errno)}});
  };
  base::Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw failed("open");
  std::string text;
  char buffer[16384];
  while (true) {
    ssize_t n = read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw failed("read");
    if (n == 0) break;
    text.append(buffer, n);
    if (text.size() > kMaxBytes)
      throw ConfigError(path, {{"", 0, "larger than 1 MiB: not a configuration file"}});
  }
  return parseConfig(text, path);
}

unsigned hostConcurrency(const HostConfig& host) {
  if (host.maxRunning > 0) return host.maxRunning;
  cpu_set_t cpus;
  if (sched_getaffinity(0, sizeof cpus, &cpus) == 0 && CPU_COUNT(&cpus) > 0)
    return static_cast<unsigned>(CPU_COUNT(&cpus));
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<unsigned>(online) : 1;
}

}  // namespace supervisor
