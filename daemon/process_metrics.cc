#include "daemon/process_metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "base/fd.h"
#include "base/sys_error.h"

namespace thatchd {

namespace {

// /proc/self/stat is under 1 KiB; /proc/stat grows with the CPUs, and its
// btime line comes after one line per CPU.
constexpr size_t kMaxProcFileBytes = 256 << 10;

std::string readProcFile(const std::string& path) {
  base::Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) base::throwSysError("open " + path);
  std::string text;
  char buffer[16384];
  while (text.size() < kMaxProcFileBytes) {
    ssize_t n = read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) base::throwSysError("read " + path);
    if (n == 0) break;
    text.append(buffer, size_t(n));
  }
  return text;
}

uint64_t countFds(const std::string& dir) {
  // Linux 6.2 and later give the count as the directory's size: no listing
  // (measured: a listing of 657 fds was a third of a scrape's CPU).
  struct stat status {};
  base::check(stat(dir.c_str(), &status), "stat " + dir);
  if (status.st_size > 0) return uint64_t(status.st_size);
  DIR* listing = opendir(dir.c_str());
  if (!listing) base::throwSysError("opendir " + dir);
  uint64_t count = 0;
  errno = 0;
  while (dirent* entry = readdir(listing))
    if (entry->d_name[0] != '.') count++;
  int error = errno;
  closedir(listing);
  if (error) base::throwSysError("readdir " + dir, error);
  return count > 0 ? count - 1 : 0;  // not the one opendir() held
}

uint64_t bootTimeSeconds(const std::string& proc) {
  std::string text = readProcFile(proc + "/stat");
  size_t at = text.find("\nbtime ");
  if (at == std::string::npos) throw std::runtime_error(proc + "/stat has no btime line");
  return std::strtoull(text.c_str() + at + 7, nullptr, 10);
}

}  // namespace

ProcessMetrics readProcessMetrics(const std::string& proc) {
  std::string stat = readProcFile(proc + "/self/stat");
  // The command name, in parentheses, may hold spaces: fields count from
  // the last ')' (proc(5): state is field 3).
  size_t close = stat.rfind(')');
  if (close == std::string::npos) throw std::runtime_error(proc + "/self/stat has no ')'");
  std::istringstream fields(stat.substr(close + 2));
  std::vector<std::string> field(3);  // fields 1-2: pid, comm
  for (std::string word; fields >> word;) field.push_back(word);
  if (field.size() <= 24) throw std::runtime_error(proc + "/self/stat is too short");
  auto number = [&field](size_t i) { return std::strtoull(field[i].c_str(), nullptr, 10); };
  long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
  if (ticks <= 0 || page <= 0) base::throwSysError("sysconf");
  uint64_t nsPerTick = 1000000000 / uint64_t(ticks);
  rlimit files{};
  base::check(getrlimit(RLIMIT_NOFILE, &files), "getrlimit RLIMIT_NOFILE");

  ProcessMetrics metrics;
  metrics.cpuNs = (number(14) + number(15)) * nsPerTick;  // utime, stime
  metrics.startTimeNs = bootTimeSeconds(proc) * 1000000000 + number(22) * nsPerTick;
  metrics.residentBytes = number(24) * uint64_t(page);
  metrics.openFds = countFds(proc + "/self/fd");
  metrics.maxFds = files.rlim_cur;
  return metrics;
}

}  // namespace thatchd
