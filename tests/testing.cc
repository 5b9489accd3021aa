#include "tests/testing.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <stdexcept>

#include "sandbox/cgroup.h"
#include "sandbox/egress_rules.h"

namespace testing_util {

TempDir::TempDir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base ? base : "/tmp") + "/" + prefix + ".XXXXXX";
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

TmpfsMount::TmpfsMount(const std::string& dir, const std::string& options) : dir_(dir) {
  if (mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) < 0)
    throw std::runtime_error("mount a tmpfs over " + dir + ": " + strerror(errno));
}

TmpfsMount::~TmpfsMount() {
  umount2(dir_.c_str(), MNT_DETACH);
}

uint64_t TmpfsMount::usedBytes() const {
  struct statfs fs;
  if (statfs(dir_.c_str(), &fs) < 0) throw std::runtime_error("statfs " + dir_);
  return uint64_t(fs.f_blocks - fs.f_bfree) * uint64_t(fs.f_bsize);
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void writeFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write " + path);
  out << contents;
}

bool exists(const std::string& path) {
  return access(path.c_str(), F_OK) == 0;
}

CommandResult run(const std::vector<std::string>& argv, const std::string& input) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
    throw std::runtime_error("pipe failed");
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  size_t written = 0;
  if (input.empty()) {
    close(in[1]);
    in[1] = -1;
  }
  CommandResult result;
  std::string* sinks[] = {&result.out, &result.err};
  int open = 2;
  while (open > 0 || in[1] >= 0) {
    pollfd fds[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {in[1], POLLOUT, 0}};
    if (poll(fds, 3, -1) < 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[65536];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, n);
      } else {
        close(fds[i].fd);
        (i == 0 ? out[0] : err[0]) = -1;
        --open;
      }
    }
    if (in[1] >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = write(in[1], input.data() + written, input.size() - written);
      if (n > 0) written += n;
      if (n < 0 || written == input.size()) {
        close(in[1]);
        in[1] = -1;
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::string testBinDir() {
  return std::filesystem::read_symlink("/proc/self/exe").parent_path().string();
}

std::string repoRoot() {
  return std::filesystem::weakly_canonical(testBinDir() + "/../..").string();
}

std::string example(const std::string& name) {
  return repoRoot() + "/examples/" + name;
}

long voluntarySwitches(pid_t tid) {
  std::ifstream status("/proc/self/task/" + std::to_string(tid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("voluntary_ctxt_switches:", 0) == 0) return std::stol(line.substr(24));
  return -1;
}

char schedulerState(pid_t tid) {
  std::ifstream stat("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t end = all.rfind(')');
  return end == std::string::npos || end + 2 >= all.size() ? '?' : all[end + 2];
}

int unreadBytes(int fd) {
  int bytes = -1;
  if (ioctl(fd, SIOCOUTQ, &bytes) != 0) throw std::runtime_error("ioctl(SIOCOUTQ) failed");
  return bytes;
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds bound) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    usleep(10'000);
  }
  return true;
}

std::string uniqueProcessName() {
  static std::mt19937_64 random{std::random_device{}()};
  char name[16];
  snprintf(name, sizeof name, "t%06x%08x", static_cast<unsigned>(getpid()) & 0xffffff,
           static_cast<unsigned>(random()));
  return name;
}

std::string namingEvent(const std::string& name, const std::string& flag) {
  return "{\"name\": \"" + name + "\"" + (flag.empty() ? "" : ", \"" + flag + "\": true") + "}";
}

void release(pid_t pid) {
  if (kill(pid, SIGUSR1) != 0) throw std::runtime_error("cannot signal " + std::to_string(pid));
}

std::set<std::string> directoryEntries(const std::string& path) {
  std::set<std::string> names;
  if (DIR* dir = opendir(path.c_str())) {
    while (dirent* e = readdir(dir))
      if (e->d_name[0] != '.') names.insert(e->d_name);
    closedir(dir);
  }
  return names;
}

namespace {

// Only the subdirectories: a cgroup's control files (`tasks`,
// `notify_on_release`, ...) come and go with the directory itself.
std::set<std::string> subdirectories(const std::string& path) {
  std::set<std::string> names;
  if (DIR* dir = opendir(path.c_str())) {
    while (dirent* e = readdir(dir))
      if (e->d_name[0] != '.' && e->d_type == DT_DIR) names.insert(e->d_name);
    closedir(dir);
  }
  return names;
}

// This process's cgroup in the v1 hierarchy of `controller` ("/" at its
// root), "" if that hierarchy is not mounted.
std::string ownCgroup(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    size_t first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    if (line.substr(first + 1, second - first - 1) == controller) return line.substr(second + 1);
  }
  return "";
}

}  // namespace

std::string thatchCgroupDir(const std::string& controller) {
  std::string own = ownCgroup(controller);
  if (own.empty()) return "";
  return "/sys/fs/cgroup/" + controller + (own == "/" ? "" : own) + "/thatch";
}

std::vector<pid_t> processesNamed(const std::string& name) {
  std::vector<pid_t> pids;
  for (const std::string& pid : directoryEntries("/proc")) {
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream comm("/proc/" + pid + "/comm");
    std::string line;
    if (std::getline(comm, line) && line == name) pids.push_back(std::stoi(pid));
  }
  return pids;
}

std::string memoryCgroupOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line, unified;
  while (std::getline(in, line)) {
    size_t first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    std::string controllers = line.substr(first + 1, second - first - 1);
    std::string path = line.substr(second + 1);
    if (controllers == "memory") return "/sys/fs/cgroup/memory" + path;
    if (controllers.empty()) unified = "/sys/fs/cgroup" + path;
  }
  return unified;
}

namespace {

void collectCgroupsWithProcesses(const std::string& root, const std::string& relative,
                                 std::vector<std::string>* out) {
  std::string dir = root + relative;
  std::ifstream procs(dir + "/cgroup.procs");
  std::string pid;
  if (std::getline(procs, pid) && !pid.empty()) out->push_back(relative);
  for (const std::string& name : subdirectories(dir))
    collectCgroupsWithProcesses(root, relative + "/" + name, out);
}

}  // namespace

std::vector<std::string> cgroupsWithProcessesBelow(const std::string& subdir) {
  std::vector<std::string> found;
  std::string own = memoryCgroupOf(getpid());
  if (!own.empty()) collectCgroupsWithProcesses(own + "/" + subdir, "", &found);
  return found;
}

HostState snapshot() {
  HostState state;
  // A host may give each session a memory cgroup of its own while every
  // process shares the root of the other hierarchies: there, other test
  // runs' sandboxes, their network namespaces and cgroups come and go beside
  // this one's, so only the processes in or below this process's own memory
  // cgroup count (a sandbox cannot leave its cgroup), and only the cgroups
  // below its own.
  std::string ownMemory = ownCgroup("memory");
  bool ownSession = !ownMemory.empty() && ownMemory != "/";
  std::string ownMemoryDir = memoryCgroupOf(getpid()) + "/";
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mountinfo, line)) ++state.mounts;
  for (const std::string& pid : directoryEntries("/proc")) {
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (ownSession && (memoryCgroupOf(std::stoi(pid)) + "/").rfind(ownMemoryDir, 0) != 0) continue;
    struct stat st;
    if (stat(("/proc/" + pid + "/ns/net").c_str(), &st) == 0) state.netns.insert(st.st_ino);
    if (stat(("/proc/" + pid).c_str(), &st) == 0 && st.st_uid >= 1000000000u)
      state.sandboxProcesses.insert(pid);
  }
  for (const char* controller : {"memory", "pids", "cpu"}) {
    if (ownSession && ownCgroup(controller) == "/") continue;  // the whole host's
    for (const std::string& name : subdirectories(thatchCgroupDir(controller)))
      state.cgroups.insert(std::string(controller) + "/" + name);
  }
  if (struct if_nameindex* list = if_nameindex()) {
    for (struct if_nameindex* i = list; i->if_index; ++i) state.links.insert(i->if_name);
    if_freenameindex(list);
  }
  // TestDaemon's thatchds name theirs after their cgroups, which carry this
  // process's pid ("thatch/api-PID-N").
  state.firewallTables =
      firewallTables(sandbox::egressTableName("thatch/api-" + std::to_string(getpid()) + "-"));
  return state;
}

std::set<std::string> firewallTables(const std::string& prefix) {
  std::set<std::string> found;
  std::istringstream tables(run({"/usr/sbin/nft", "list", "tables"}).out);
  for (std::string word, family, name; tables >> word >> family >> name;)
    if (name.rfind(prefix, 0) == 0) found.insert(family + " " + name);
  return found;
}

namespace {

template <typename T>
std::string added(const std::string& what, const std::set<T>& before, const std::set<T>& after) {
  std::string list;
  for (const T& item : after)
    if (!before.count(item)) {
      std::ostringstream text;
      text << item;
      list += " " + text.str();
    }
  return list.empty() ? "" : what + ":" + list + "\n";
}

}  // namespace

std::string leftBehind(const HostState& before, const HostState& after) {
  std::string left = added("sandbox processes", {}, after.sandboxProcesses) +
                     added("cgroups", before.cgroups, after.cgroups) +
                     added("network namespaces", before.netns, after.netns) +
                     added("firewall tables", before.firewallTables, after.firewallTables);
  if (after.mounts != before.mounts)
    left += "mounts: " + std::to_string(before.mounts) + " before, " +
            std::to_string(after.mounts) + " after\n";
  return left;
}

uint64_t cpuNs(pid_t pid) {
  uint64_t total = 0;
  std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  std::error_code gone;  // the process went: no threads
  for (const auto& task : std::filesystem::directory_iterator(tasks, gone)) {
    std::ifstream schedstat(task.path() / "schedstat");
    uint64_t onCpu = 0;
    if (schedstat >> onCpu) total += onCpu;
  }
  return total;
}

std::string freezerDirOf(pid_t pid) {
  std::string own = testing_util::readFile("/proc/" + std::to_string(pid) + "/cgroup");
  for (const sandbox::CgroupMount& mount :
       sandbox::parseCgroupMounts(testing_util::readFile("/proc/self/mountinfo"))) {
    if (mount.unified || mount.controllers != std::vector<std::string>{"freezer"}) continue;
    for (const sandbox::CgroupMembership& m : sandbox::parseProcCgroup(own))
      if (m.controllers == std::vector<std::string>{"freezer"}) return mount.mountPoint + m.path;
  }
  return "";
}

std::string freezerState(const std::string& dir) {
  std::string state = testing_util::readFile(dir + "/freezer.state");
  while (!state.empty() && state.back() == '\n') state.pop_back();
  return state;
}

}  // namespace testing_util
