// Detection of the host's cgroup layout, and the control-file helpers both
// backends share.
#include "sandbox/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>

#include "base/fd.h"
#include "base/sys_error.h"

namespace sandbox {

using base::Fd;
using base::throwSysError;
namespace {

using Clock = std::chrono::steady_clock;

// Bounds on waiting for the kernel: killed processes leave their cgroup within
// milliseconds, but an exiting process with a lot of memory can take longer.
constexpr auto kKillTimeout = std::chrono::seconds(3);
constexpr auto kRmdirTimeout = std::chrono::seconds(2);

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  while (true) {
    size_t end = text.find(separator);
    parts.push_back(text.substr(0, end));
    if (end == std::string_view::npos) return parts;
    text.remove_prefix(end + 1);
  }
}

std::vector<std::string_view> lines(std::string_view text) {
  std::vector<std::string_view> result;
  for (std::string_view line : split(text, '\n'))
    if (!line.empty()) result.push_back(line);
  return result;
}

// Backs off from 50 µs to 10 ms between polls of the kernel's state.
class Backoff {
 public:
  explicit Backoff(Clock::duration timeout) : deadline_(Clock::now() + timeout) {}
  bool expired() const { return Clock::now() >= deadline_; }
  void wait() {
    std::this_thread::sleep_for(delay_);
    delay_ = std::min(delay_ * 2, std::chrono::microseconds(10000));
  }

 private:
  Clock::time_point deadline_;
  std::chrono::microseconds delay_{50};
};

std::string readAll(int fd, const std::string& path) {
  std::string contents;
  char buffer[4096];
  while (true) {
    ssize_t n = pread(fd, buffer, sizeof buffer, static_cast<off_t>(contents.size()));
    if (n < 0) {
      if (errno == EINTR) continue;
      throwSysError("read " + path);
    }
    if (n == 0) return contents;
    contents.append(buffer, static_cast<size_t>(n));
  }
}

// glibc 2.36's <sys/pidfd.h> lacks extern "C", so its wrappers cannot link from C++.
int openPidfd(pid_t pid) {
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}
int sigkillPidfd(int pidfd) {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0));
}

// The pids in dir/cgroup.procs; none when the directory is gone.
std::vector<pid_t> readProcs(const std::string& dir) {
  std::string path = cgroupfs::joinPath(dir, "cgroup.procs");
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return {};
    throwSysError("open " + path);
  }
  std::string contents = readAll(fd.get(), path);  // outlives the views into it
  std::vector<pid_t> pids;
  for (std::string_view line : lines(contents)) {
    pid_t pid = 0;
    auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), pid);
    if (ec != std::errc() || end != line.data() + line.size())
      throw std::runtime_error("unexpected line in " + path + ": " + std::string(line));
    pids.push_back(pid);
  }
  return pids;
}

// SIGKILLs the processes listed in dir/cgroup.procs and adds their pidfds to
// `signalled`; returns whether any were listed. A listed pid may exit and be
// reused outside the cgroup before we signal it, so each is pinned with a
// pidfd first and signalled only if it is still listed afterwards.
bool killMembers(const std::string& dir, std::vector<Fd>& signalled) {
  std::vector<pid_t> listed = readProcs(dir);
  if (listed.empty()) return false;
  std::vector<std::pair<pid_t, Fd>> pinned;
  for (pid_t pid : listed) {
    int pidfd = openPidfd(pid);
    if (pidfd < 0) {
      if (errno == ESRCH) continue;  // already gone
      throwSysError("pidfd_open " + std::to_string(pid));
    }
    pinned.emplace_back(pid, Fd(pidfd));
  }
  std::vector<pid_t> stillListed = readProcs(dir);
  for (auto& [pid, pidfd] : pinned) {
    if (std::find(stillListed.begin(), stillListed.end(), pid) == stillListed.end()) continue;
    if (sigkillPidfd(pidfd.get()) < 0 && errno != ESRCH)
      throwSysError("pidfd_send_signal SIGKILL " + std::to_string(pid));
    signalled.push_back(std::move(pidfd));
  }
  return true;
}

// Waits, up to `timeoutMs` each, for the processes behind `pidfds` to exit. A
// pidfd polls readable once its process has exited, which is after it left its
// cgroups: a sleep would overshoot by hundreds of microseconds.
void waitForExit(const std::vector<Fd>& pidfds, int timeoutMs) {
  for (const Fd& pidfd : pidfds) {
    pollfd exited{pidfd.get(), POLLIN, 0};
    if (poll(&exited, 1, timeoutMs) < 0 && errno != EINTR) throwSysError("poll pidfd");
  }
}

// ---- detection ------------------------------------------------------------

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescapeMountField(std::string_view field) {
  std::string result;
  for (size_t i = 0; i < field.size(); ++i) {
    bool octal = field[i] == '\\' && i + 3 < field.size() &&
                 std::all_of(field.begin() + i + 1, field.begin() + i + 4,
                             [](char c) { return c >= '0' && c <= '7'; });
    if (octal) {
      result += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                                  (field[i + 3] - '0'));
      i += 3;
    } else {
      result += field[i];
    }
  }
  return result;
}

// Super options of a v1 cgroup mount that are not controllers.
bool isControllerOption(std::string_view option) {
  static constexpr std::string_view kNotControllers[] = {
      "rw",   "ro",  "noprefix",     "xattr",         "clone_children", "cpuset_v2_mode",
      "none", "all", "favordynmods", "nofavordynmods"};
  return option.find('=') == std::string_view::npos &&
         std::find(std::begin(kNotControllers), std::end(kNotControllers), option) ==
             std::end(kNotControllers);
}

bool contains(const std::vector<std::string>& list, std::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// `path` relative to `root` (both absolute), or nothing when it is outside.
std::optional<std::string> relativeTo(const std::string& path, const std::string& root) {
  if (root == "/") return path;
  if (path == root) return std::string("/");
  if (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
      path[root.size()] == '/')
    return path.substr(root.size());
  return std::nullopt;
}

// Where a hierarchy's sandboxes go: under parentOverride, else under the
// process's own cgroup. Nothing when the own cgroup is not visible through
// this mount (a mount of a sub-tree that does not contain it).
std::optional<std::string> placeUnder(const CgroupMount& mount, const std::string& ownPath,
                                      const std::string& subdir,
                                      const std::string& parentOverride) {
  if (!parentOverride.empty()) return cgroupfs::joinPath(mount.mountPoint, parentOverride);
  std::optional<std::string> relative = relativeTo(ownPath, mount.root);
  if (!relative) return std::nullopt;
  return cgroupfs::joinPath(cgroupfs::joinPath(mount.mountPoint, *relative), subdir);
}

const CgroupMembership* membershipOf(const std::vector<CgroupMembership>& memberships,
                                     std::string_view controller) {
  for (const CgroupMembership& m : memberships) {
    bool matches = controller.empty() ? m.controllers.empty() : contains(m.controllers, controller);
    if (matches) return &m;
  }
  return nullptr;
}

// The parent directory for `controller` ("" = the unified hierarchy), or
// nothing if that hierarchy is not mounted where this process can use it.
std::optional<std::string> parentFor(const std::vector<CgroupMount>& mounts,
                                     const std::vector<CgroupMembership>& memberships,
                                     std::string_view controller, const std::string& subdir,
                                     const std::string& parentOverride) {
  const CgroupMembership* own = membershipOf(memberships, controller);
  if (!own) return std::nullopt;
  for (const CgroupMount& mount : mounts) {
    bool matches = controller.empty() ? mount.unified : contains(mount.controllers, controller);
    if (!matches) continue;
    if (auto parent = placeUnder(mount, own->path, subdir, parentOverride)) return parent;
  }
  return std::nullopt;
}

const CgroupMount* unifiedMount(const std::vector<CgroupMount>& mounts) {
  for (const CgroupMount& mount : mounts)
    if (mount.unified) return &mount;
  return nullptr;
}

std::string joinWords(const std::vector<std::string>& words) {
  std::string result;
  for (const std::string& word : words) result += (result.empty() ? "" : ", ") + word;
  return result.empty() ? "none" : result;
}

constexpr std::string_view kNeeded[] = {"memory", "pids", "cpu"};

// Why v2 cannot be used, or "" if it can.
std::string v2Problem(const CgroupMount* mount, const std::vector<std::string>& offered) {
  if (!mount) return "cgroup v2 is not mounted";
  std::vector<std::string> missing;
  for (std::string_view controller : kNeeded)
    if (!contains(offered, controller)) missing.emplace_back(controller);
  if (missing.empty()) return "";
  return "cgroup v2 at " + mount->mountPoint + " lacks " + joinWords(missing) +
         " (it offers: " + joinWords(offered) + ")";
}

}  // namespace

std::vector<CgroupMount> parseCgroupMounts(std::string_view mountinfo) {
  std::vector<CgroupMount> mounts;
  for (std::string_view line : lines(mountinfo)) {
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    std::vector<std::string_view> fields = split(line, ' ');
    if (fields.size() < 10) continue;  // malformed: not a mount we can read
    auto dash = std::find(fields.begin() + 6, fields.end(), "-");
    if (fields.end() - dash < 4) continue;
    std::string_view fsType = dash[1];
    if (fsType != "cgroup" && fsType != "cgroup2") continue;
    CgroupMount mount;
    mount.root = unescapeMountField(fields[3]);
    mount.mountPoint = unescapeMountField(fields[4]);
    mount.unified = fsType == "cgroup2";
    if (!mount.unified)
      for (std::string_view option : split(dash[3], ','))
        if (isControllerOption(option)) mount.controllers.emplace_back(option);
    mounts.push_back(std::move(mount));
  }
  return mounts;
}

std::vector<CgroupMembership> parseProcCgroup(std::string_view procCgroup) {
  std::vector<CgroupMembership> memberships;
  for (std::string_view line : lines(procCgroup)) {
    // hierarchy-id:controller,list:path (the path may itself contain ':')
    size_t first = line.find(':');
    size_t second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    CgroupMembership membership;
    std::string_view controllers = line.substr(first + 1, second - first - 1);
    if (!controllers.empty())
      for (std::string_view controller : split(controllers, ','))
        membership.controllers.emplace_back(controller);
    membership.path = std::string(line.substr(second + 1));
    memberships.push_back(std::move(membership));
  }
  return memberships;
}

CgroupPlan planCgroups(std::string_view mountinfo, std::string_view procCgroup,
                       const std::function<std::string(const std::string&)>& readFile,
                       const std::string& subdir, const std::string& parentOverride) {
  std::vector<CgroupMount> mounts = parseCgroupMounts(mountinfo);
  std::vector<CgroupMembership> memberships = parseProcCgroup(procCgroup);

  CgroupPlan plan;
  std::string* v1Parents[] = {&plan.v1.memoryParent, &plan.v1.pidsParent, &plan.v1.cpuParent};
  std::vector<std::string> v1Missing;
  for (size_t i = 0; i < std::size(kNeeded); ++i) {
    auto parent = parentFor(mounts, memberships, kNeeded[i], subdir, parentOverride);
    if (parent)
      *v1Parents[i] = *parent;
    else
      v1Missing.emplace_back(kNeeded[i]);
  }
  if (v1Missing.empty()) {
    // Optional: without it, sandboxes are placed all the same.
    if (auto freezer = parentFor(mounts, memberships, "freezer", subdir, parentOverride))
      plan.v1.freezerParent = *freezer;
    return plan;
  }

  const CgroupMount* unified = unifiedMount(mounts);
  std::vector<std::string> offered;
  if (unified)
    offered =
        cgroupfs::words(readFile(cgroupfs::joinPath(unified->mountPoint, "cgroup.controllers")));
  std::string problem = v2Problem(unified, offered);
  if (problem.empty()) {
    auto parent = parentFor(mounts, memberships, "", subdir, parentOverride);
    if (parent) {
      plan.version = CgroupPlan::Version::kV2;
      plan.v2Parent = *parent;
      return plan;
    }
    problem = "this process's cgroup v2 path is not visible under " + unified->mountPoint;
  }
  throw std::runtime_error("no usable cgroup hierarchy for memory, pids and cpu: cgroup v1 lacks " +
                           joinWords(v1Missing) + "; " + problem);
}

std::string cgroupToLeave(std::string_view mountinfo, std::string_view procCgroup,
                          const std::function<std::string(const std::string&)>& readFile) {
  CgroupPlan plan;
  try {
    plan = planCgroups(mountinfo, procCgroup, readFile, "", "");
  } catch (const std::exception&) {
    return "";  // no usable hierarchy: detectCgroups() will say why
  }
  if (plan.version != CgroupPlan::Version::kV2) return "";
  for (const CgroupMembership& membership : parseProcCgroup(procCgroup))
    if (membership.controllers.empty() && membership.path != "/") return membership.path;
  return "";
}

void moveIntoLeaf(const std::string& dir, const std::string& leaf, pid_t pid) {
  std::string leafDir = cgroupfs::joinPath(dir, leaf);
  if (mkdir(leafDir.c_str(), 0755) != 0 && errno != EEXIST) throwSysError("mkdir " + leafDir);
  cgroupfs::writeControl(cgroupfs::joinPath(leafDir, "cgroup.procs"), std::to_string(pid));
}

std::string parentIfInLeaf(std::string_view cgroup, std::string_view leaf) {
  size_t slash = cgroup.rfind('/');
  if (slash == std::string_view::npos || cgroup.substr(slash + 1) != leaf) return "";
  return slash == 0 ? "/" : std::string(cgroup.substr(0, slash));
}

std::string moveIntoLeafCgroup(const std::string& leaf) {
  auto readOrEmpty = [](const std::string& path) {
    try {
      return cgroupfs::readControl(path);
    } catch (const std::exception&) {
      return std::string();
    }
  };
  std::string mountinfo = cgroupfs::readControl("/proc/self/mountinfo");
  std::string own =
      cgroupToLeave(mountinfo, cgroupfs::readControl("/proc/self/cgroup"), readOrEmpty);
  if (own.empty()) return "";
  if (std::string parent = parentIfInLeaf(own, leaf); !parent.empty()) return parent;
  for (const CgroupMount& mount : parseCgroupMounts(mountinfo))
    if (mount.unified) {
      moveIntoLeaf(cgroupfs::joinPath(mount.mountPoint, own), leaf, getpid());
      return own;
    }
  return "";
}

std::unique_ptr<CgroupManager> detectCgroups(const std::string& subdir,
                                             const std::string& parentOverride) {
  auto readOrEmpty = [](const std::string& path) {
    try {
      return cgroupfs::readControl(path);
    } catch (const std::exception&) {
      return std::string();  // reported as "offers: none"
    }
  };
  CgroupPlan plan =
      planCgroups(cgroupfs::readControl("/proc/self/mountinfo"),
                  cgroupfs::readControl("/proc/self/cgroup"), readOrEmpty, subdir, parentOverride);
  if (plan.version == CgroupPlan::Version::kV1) return makeCgroupV1(plan.v1);
  return makeCgroupV2(plan.v2Parent);
}

const char* freezerStateName(FreezerState state) {
  switch (state) {
    case FreezerState::kThawed:
      return "thawed";
    case FreezerState::kFreezing:
      return "freezing";
    case FreezerState::kFrozen:
      return "frozen";
  }
  return "unknown";
}

namespace cgroupfs {

void writeControl(const std::string& path, std::string_view value) {
  Fd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) throwSysError("open " + path);
  // Control files take one write; a short write means the kernel refused part.
  ssize_t n = write(fd.get(), value.data(), value.size());
  if (n < 0) throwSysError("write \"" + std::string(value) + "\" to " + path);
  if (static_cast<size_t>(n) != value.size())
    throw std::runtime_error("short write of \"" + std::string(value) + "\" to " + path);
}

std::string readControl(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throwSysError("open " + path);
  return readAll(fd.get(), path);
}

uint64_t readNumber(const std::string& path) {
  std::string text = readControl(path);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size())
    throw std::runtime_error("not a number in " + path + ": \"" + text + "\"");
  return value;
}

std::string readControlFd(int fd, const std::string& pathForErrors) {
  return readAll(fd, pathForErrors);
}

uint64_t keyedValue(std::string_view text, std::string_view key) {
  for (std::string_view line : lines(text)) {
    size_t space = line.find(' ');
    if (space == std::string_view::npos || line.substr(0, space) != key) continue;
    std::string_view number = line.substr(space + 1);
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec != std::errc() || end != number.data() + number.size())
      throw std::runtime_error("bad value in cgroup file line: " + std::string(line));
    return value;
  }
  return 0;
}

std::string childHolding(pid_t pid, std::string_view controller, const std::string& parent) {
  std::string procCgroup;
  try {
    procCgroup = readControl("/proc/" + std::to_string(pid) + "/cgroup");
  } catch (const base::SysError&) {
    return "";  // gone
  }
  std::vector<CgroupMembership> memberships = parseProcCgroup(procCgroup);
  const CgroupMembership* own = membershipOf(memberships, controller);
  if (!own) return "";
  std::string_view path = own->path;
  size_t slash = path.rfind('/');
  std::string name(slash == std::string_view::npos ? path : path.substr(slash + 1));
  // The path is relative to the hierarchy's root, the parent a directory
  // of its mount: the last component is a child of the parent's if it is
  // there.
  if (name.empty() || name == "." || name == ".." || !exists(joinPath(parent, name))) return "";
  return name;
}

std::vector<std::string> words(std::string_view text) {
  std::vector<std::string> result;
  size_t start = 0;
  while ((start = text.find_first_not_of(" \t\n", start)) != std::string_view::npos) {
    size_t end = text.find_first_of(" \t\n", start);
    result.emplace_back(text.substr(start, end - start));
    start = end;
  }
  return result;
}

bool exists(const std::string& path) {
  return access(path.c_str(), F_OK) == 0;
}

std::string joinPath(std::string_view dir, std::string_view name) {
  while (dir.size() > 1 && dir.back() == '/') dir.remove_suffix(1);
  while (!name.empty() && name.front() == '/') name.remove_prefix(1);
  while (!name.empty() && name.back() == '/') name.remove_suffix(1);
  if (name.empty()) return std::string(dir);
  return std::string(dir) + (dir == "/" ? "" : "/") + std::string(name);
}

void makeDirs(const std::string& path) {
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    std::string prefix = path.substr(0, slash);
    if (mkdir(prefix.c_str(), 0755) < 0 && errno != EEXIST) throwSysError("mkdir " + prefix);
    if (slash == std::string::npos) return;
  }
}

std::vector<std::string> subdirectories(const std::string& dir) {
  std::unique_ptr<DIR, int (*)(DIR*)> stream(opendir(dir.c_str()), closedir);
  if (!stream) throwSysError("opendir " + dir);
  std::vector<std::string> names;
  errno = 0;
  while (dirent* entry = readdir(stream.get())) {
    std::string_view name = entry->d_name;
    if (entry->d_type == DT_DIR && name != "." && name != "..") names.emplace_back(name);
    errno = 0;
  }
  if (errno != 0) throwSysError("readdir " + dir);
  std::sort(names.begin(), names.end());
  return names;
}

void checkCgroupName(const std::string& name) {
  bool usable = !name.empty() && name.size() <= 255 && name != "." && name != ".." &&
                name.find_first_of(std::string_view("/\0", 2)) == std::string::npos;
  if (!usable) throw std::invalid_argument("not a usable cgroup name: \"" + name + "\"");
}

void checkCgroupRequest(const std::string& name, const CgroupLimits& limits) {
  checkCgroupName(name);
  cpuQuotaMicros(limits.cpus);
}

long long cpuQuotaMicros(double cpus) {
  if (cpus == 0) return -1;
  if (!(cpus > 0) || !std::isfinite(cpus))
    throw std::invalid_argument("cpu limit must be a positive number of cores");
  long long quota = std::llround(cpus * kCpuPeriodMicros);
  // The kernel refuses quotas below 1 ms.
  if (quota < 1000) throw std::invalid_argument("cpu limit below 0.01 cores");
  return quota;
}

void killAllIn(const std::vector<std::string>& dirs) {
  Backoff backoff(kKillTimeout);
  while (true) {
    bool anyListed = false;
    std::vector<Fd> signalled;
    for (const std::string& dir : dirs) anyListed |= killMembers(dir, signalled);
    if (!anyListed) return;
    if (backoff.expired())
      throw std::runtime_error("processes remain in " + dirs.front() + " after SIGKILL");
    if (signalled.empty())
      backoff.wait();  // listed but already exiting
    else
      waitForExit(signalled, 100);
  }
}

void removeDir(const std::string& dir) {
  Backoff backoff(kRmdirTimeout);
  while (rmdir(dir.c_str()) < 0) {
    if (errno == ENOENT) return;  // already gone: the outcome we want
    if (errno != EBUSY || backoff.expired()) throwSysError("rmdir " + dir);
    backoff.wait();
  }
}

OwnedDir::OwnedDir(std::string path) : path_(std::move(path)) {
  if (mkdir(path_.c_str(), 0755) < 0) throwSysError("mkdir " + path_);
}

OwnedDir::~OwnedDir() {
  try {
    killAllIn({path_});
    removeDir(path_);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "thatch: cannot remove cgroup %s: %s\n", path_.c_str(), e.what());
  }
}

}  // namespace cgroupfs
}  // namespace sandbox
