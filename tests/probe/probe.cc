// thatch-probe: runs inside a sandbox and prints what it observes, one
// `key=value` per line, so that tests assert what the confined process saw.
// Statically linked: it needs nothing from the sandbox's root.

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

void emit(const std::string& key, const std::string& value) {
  printf("%s=%s\n", key.c_str(), value.c_str());
}

std::string slurp(const char* path) {
  std::ifstream in(path);
  if (!in) return "<absent>";
  std::stringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

std::string errnoName(int err) {
  switch (err) {
    case 0:
      return "OK";
    case EPERM:
      return "EPERM";
    case ENOSYS:
      return "ENOSYS";
    case EACCES:
      return "EACCES";
    case EROFS:
      return "EROFS";
    case ENOENT:
      return "ENOENT";
    case ENOSPC:
      return "ENOSPC";
    case EFBIG:
      return "EFBIG";
    case EAGAIN:
      return "EAGAIN";
    case EINVAL:
      return "EINVAL";
    case ECONNREFUSED:
      return "ECONNREFUSED";
    case ENETUNREACH:
      return "ENETUNREACH";
    case EAFNOSUPPORT:
      return "EAFNOSUPPORT";
    default:
      return "errno" + std::to_string(err);
  }
}

// Result of a call that returns -1/errno.
std::string outcome(long rc) {
  return rc < 0 ? errnoName(errno) : "OK";
}

void statusFields() {
  std::ifstream in("/proc/self/status");
  std::string line;
  for (const char* want :
       {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"}) {
    in.clear();
    in.seekg(0);
    while (std::getline(in, line)) {
      if (line.rfind(std::string(want) + ":", 0) == 0) {
        std::string value = line.substr(line.find(':') + 1);
        value.erase(0, value.find_first_not_of(" \t"));
        emit(want, value);
      }
    }
  }
}

int countProcesses() {
  int count = 0;
  DIR* dir = opendir("/proc");
  if (!dir) return -1;
  while (dirent* e = readdir(dir))
    if (e->d_name[0] >= '1' && e->d_name[0] <= '9') ++count;
  closedir(dir);
  return count;
}

std::string interfaces() {
  std::string names;
  if (struct if_nameindex* list = if_nameindex()) {
    for (struct if_nameindex* i = list; i->if_index; ++i)
      names += (names.empty() ? "" : ",") + std::string(i->if_name);
    if_freenameindex(list);
  } else {
    names = "<error " + errnoName(errno) + ">";
  }
  return names;
}

std::string writeTest(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return errnoName(errno);
  close(fd);
  unlink(path.c_str());
  return "OK";
}

// Mount options of every mount, "target:opts", to check nosuid/nodev.
void mounts() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, target, opts;
    fields >> id >> parent >> dev >> root >> target >> opts;
    emit("mount", target + " " + opts);
  }
}

int observe() {
  emit("pid", std::to_string(getpid()));
  emit("ppid", std::to_string(getppid()));
  emit("uid", std::to_string(getuid()));
  emit("euid", std::to_string(geteuid()));
  emit("gid", std::to_string(getgid()));
  gid_t groups[64];
  emit("groups", std::to_string(getgroups(64, groups)));
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  emit("hostname", host);
  emit("uid_map", slurp("/proc/self/uid_map"));
  emit("gid_map", slurp("/proc/self/gid_map"));
  emit("cgroup", slurp("/proc/self/cgroup"));
  statusFields();
  emit("processes", std::to_string(countProcesses()));
  emit("interfaces", interfaces());
  for (const char* path :
       {"/root", "/home", "/etc/shadow", "/var", "/etc/passwd", "/usr/bin/python3", "/var/task",
        "/dev/null", "/dev/shm", "/proc/1/status", "/sys", "/boot", "/run", "/etc/resolv.conf"}) {
    struct stat st;
    emit(std::string("exists:") + path, stat(path, &st) == 0 ? "yes" : "no");
  }
  for (const char* path : {"/probe-write", "/etc/probe-write", "/usr/probe-write",
                           "/tmp/probe-write", "/dev/probe-write", "/dev/shm/probe-write",
                           "/var/task/probe-write", "/proc/sys/kernel/hostname"}) {
    emit(std::string("write:") + path, writeTest(path));
  }
  char cwd[4096] = {};
  emit("cwd", getcwd(cwd, sizeof cwd) ? cwd : "?");
  mounts();
  return 0;
}

long rawClone(unsigned long flags) {
  long rc = syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (rc == 0) _exit(0);
  if (rc > 0) waitpid(rc, nullptr, 0);
  return rc;
}

int syscalls() {
  emit("mount", outcome(mount("tmpfs", "/tmp", "tmpfs", 0, nullptr)));
  emit("umount2", outcome(umount2("/proc", MNT_DETACH)));
  emit("unshare", outcome(unshare(CLONE_NEWUSER)));
  emit("unshare_ns", outcome(unshare(CLONE_NEWNS)));
  int self = open("/proc/self/ns/net", O_RDONLY);
  emit("setns", outcome(setns(self, 0)));
  emit("ptrace", outcome(ptrace(PTRACE_TRACEME, 0, nullptr, nullptr)));
  emit("bpf", outcome(syscall(SYS_bpf, 0, nullptr, 0)));
  emit("keyctl", outcome(syscall(SYS_keyctl, 0, 0, 0, 0, 0)));
  perf_event_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.size = sizeof attr;
  emit("perf_event_open", outcome(syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0)));
  io_uring_params params;
  memset(&params, 0, sizeof params);
  emit("io_uring_setup", outcome(syscall(SYS_io_uring_setup, 8, &params)));
  emit("clone_newuser", outcome(rawClone(CLONE_NEWUSER)));
  emit("clone_newns", outcome(rawClone(CLONE_NEWNS)));
  emit("clone_plain", outcome(rawClone(0)));
  emit("pivot_root", outcome(syscall(SYS_pivot_root, "/tmp", "/tmp")));
  emit("chroot", outcome(chroot("/tmp")));
  emit("kill_outside", outcome(kill(99999, 0)));
  emit("setuid0", outcome(setuid(0)));
  return 0;
}

// Connects to ADDR:PORT (default 127.0.0.1), sends "ping", expects "pong".
int connectTo(int port, const char* address) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    emit("connect", "socket " + errnoName(errno));
    return 0;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, address, &addr.sin_addr) != 1) {
    emit("connect", "bad address");
    return 64;
  }
  long rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  emit("connect", outcome(rc));
  if (rc == 0) {
    char reply[5] = {};
    bool ok = write(fd, "ping", 4) == 4 && read(fd, reply, 4) == 4;
    emit("reply", ok ? reply : "<none>");
  }
  close(fd);
  return 0;
}

int fillTmp() {
  int fd = open("/tmp/fill", O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    emit("fill", "open " + errnoName(errno));
    return 1;
  }
  std::vector<char> block(1 << 16, 'x');
  long long total = 0;
  for (;;) {
    ssize_t n = write(fd, block.data(), block.size());
    if (n < 0) {
      emit("fill", errnoName(errno));
      break;
    }
    total += n;
  }
  emit("written", std::to_string(total));
  return 0;
}

int allocate(long megabytes) {
  for (long i = 0; i < megabytes; ++i) {
    char* chunk = static_cast<char*>(malloc(1 << 20));
    if (!chunk) {
      emit("alloc", "malloc failed at " + std::to_string(i) + " MiB");
      return 1;
    }
    memset(chunk, 1, 1 << 20);
  }
  emit("alloc", "done");
  return 0;
}

int forkBomb() {
  for (;;) {
    pid_t pid = fork();
    if (pid == 0) {
      for (;;) pause();
    }
    if (pid < 0) usleep(1000);
  }
}

int spin() {
  for (;;) asm volatile("" ::: "memory");
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string command = argc > 1 ? argv[1] : "observe";
  if (command == "observe") return observe();
  if (command == "syscalls") return syscalls();
  if (command == "connect" && argc > 2)
    return connectTo(atoi(argv[2]), argc > 3 ? argv[3] : "127.0.0.1");
  if (command == "fill-tmp") return fillTmp();
  if (command == "alloc" && argc > 2) return allocate(atol(argv[2]));
  if (command == "forkbomb") return forkBomb();
  if (command == "spin") return spin();
  if (command == "true") return 0;
  if (command == "segv") {
    // A real fault: pid 1 ignores a SIGSEGV that is merely sent to it.
    int* volatile nowhere = nullptr;
    *nowhere = 1;
  }
  if (command == "exit" && argc > 2) return atoi(argv[2]);
  fprintf(stderr, "thatch-probe: unknown command %s\n", command.c_str());
  return 64;
}
