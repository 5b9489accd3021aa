// scale-bench [density] [churn] [burst]: the parts named, or all of them
// (bench/scale.h; their sizes and durations come from BENCH_* variables,
// docs/performance.md). Exits 1 if any part failed.
#include <dirent.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "bench/scale.h"
#include "supervisor/config.h"

namespace bench {

std::string defaultRuntimeToml() {
  // BENCH_STEM_CELLS sets the maximum instead (0: every cold start forks
  // afresh), for comparisons.
  if (const char* stems = getenv("BENCH_STEM_CELLS"))
    return "[[runtime]]\nname = \"python3.11\"\nstem_cells = " + std::to_string(atoi(stems)) + "\n";
  for (const supervisor::RuntimeConfig& runtime : supervisor::defaultConfig().runtimes)
    if (runtime.name == "python3.11")
      return "[[runtime]]\nname = \"python3.11\"\nstem_cells = " +
             std::to_string(runtime.stemCells) + "\n";
  return "[[runtime]]\nname = \"python3.11\"\n";
}

std::unique_ptr<testing_util::TestDaemon> startDaemon(const std::string& configToml,
                                                      const std::string& runtimeToml) {
  return std::make_unique<testing_util::TestDaemon>(configToml, runtimeToml);
}

namespace {

// The value of `key` (a line "key: value kB") in a /proc file, KiB.
uint64_t procField(std::istream& in, const std::string& key) {
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1));
  return 0;
}

}  // namespace

uint64_t memAvailableKiB() {
  std::ifstream meminfo("/proc/meminfo");
  return procField(meminfo, "MemAvailable");
}

uint64_t cgroupMemoryKiB() {
  std::string dir = testing_util::memoryCgroupOf(getpid());
  for (const char* file : {"/memory.usage_in_bytes", "/memory.current"}) {
    std::ifstream in(dir + file);
    uint64_t bytes;
    if (in >> bytes) return bytes / 1024;
  }
  return 0;
}

ProcessMemory processMemory(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::map<std::string, uint64_t> fields;
  std::string line;
  while (std::getline(in, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos || line[0] == '0') continue;  // the [rollup] line
    fields[line.substr(0, colon)] = std::strtoull(line.c_str() + colon + 1, nullptr, 10);
  }
  return {fields["Pss"],
          fields["Private_Clean"] + fields["Private_Dirty"] + fields["Private_Hugetlb"]};
}

std::string runtimeCgroupDir(const testing_util::TestDaemon& daemon, const std::string& runtime) {
  return testing_util::memoryCgroupOf(getpid()) + "/" + daemon.cgroupSubdir() + "/" + runtime;
}

std::vector<pid_t> childrenOf(pid_t pid) {
  std::vector<pid_t> children;
  std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  for (const std::string& tid : subdirectoriesStartingWith(tasks, "")) {
    if (tid[0] == '.') continue;
    std::ifstream in(tasks + "/" + tid + "/children");
    pid_t child;
    while (in >> child) children.push_back(child);
  }
  return children;
}

namespace {

void collectDirectoriesBelow(const std::string& dir, std::vector<std::string>* out) {
  for (const std::string& name : subdirectoriesStartingWith(dir, "")) {
    if (name == "." || name == "..") continue;
    collectDirectoriesBelow(dir + "/" + name, out);
    out->push_back(dir + "/" + name);
  }
}

}  // namespace

std::vector<std::string> cgroupDirectoriesBelow(const std::string& subdir) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  std::vector<std::string> found;
  while (std::getline(in, line)) {
    size_t first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    std::string controllers = line.substr(first + 1, second - first - 1);
    std::string own = line.substr(second + 1);
    std::string mount;
    if (controllers.empty())  // the unified hierarchy, alone or beside v1's
      mount = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0 ? "/sys/fs/cgroup"
                                                                     : "/sys/fs/cgroup/unified";
    else if (controllers == "memory" || controllers == "pids" || controllers == "cpu" ||
             controllers.rfind("cpu,", 0) == 0)
      mount = "/sys/fs/cgroup/" + controllers;
    if (mount.empty() || access(mount.c_str(), F_OK) != 0) continue;
    collectDirectoriesBelow(mount + (own == "/" ? "" : own) + "/" + subdir, &found);
  }
  return found;
}

std::vector<pid_t> cgroupProcesses(const std::string& dir) {
  std::vector<pid_t> pids;
  std::ifstream procs(dir + "/cgroup.procs");
  pid_t pid;
  while (procs >> pid) pids.push_back(pid);
  return pids;
}

std::vector<std::string> subdirectoriesStartingWith(const std::string& dir,
                                                    const std::string& prefix) {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_type == DT_DIR && std::string(e->d_name).rfind(prefix, 0) == 0)
        names.push_back(e->d_name);
    closedir(d);
  }
  return names;
}

std::string grouped(double value) {
  long long n = std::llround(value);
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (n < 0 ? "-" : "") + out;
}

}  // namespace bench

int main(int argc, char** argv) {
  const std::map<std::string, std::function<bool()>> parts = {
      {"density", bench::density}, {"churn", bench::churn}, {"burst", bench::burst}};
  std::vector<std::string> chosen;
  for (int i = 1; i < argc; ++i) {
    if (!parts.count(argv[i])) {
      fprintf(stderr, "usage: scale-bench [density] [churn] [burst]\n");
      return 2;
    }
    chosen.push_back(argv[i]);
  }
  if (chosen.empty()) chosen = {"density", "churn", "burst"};
  bool ok = true;
  for (size_t i = 0; i < chosen.size(); ++i) {
    if (i) printf("\n");
    fflush(stdout);
    try {
      ok = parts.at(chosen[i])() && ok;
    } catch (const std::exception& e) {
      fflush(stdout);
      fprintf(stderr, "%s: FAILED: %s\n", chosen[i].c_str(), e.what());
      ok = false;
    }
    fflush(stdout);
  }
  return ok ? 0 : 1;
}
