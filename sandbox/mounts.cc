#include "sandbox/mounts.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/sys_error.h"

namespace sandbox {

using base::check;
using base::Fd;
using base::SysError;
using base::throwSysError;
namespace {

// Mounted over in the child's private mount namespace only; the host never
// sees it. Bind sources are opened before the staging mount hides anything.
constexpr const char* kStaging = "/tmp";
constexpr unsigned long kSafe = MS_NOSUID | MS_NODEV;

std::string staged(const std::string& target) {
  return std::string(kStaging) + target;
}

void makeParents(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    std::string dir = path.substr(0, slash);
    if (mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST) throwSysError("mkdir " + dir);
  }
}

void makeMountPoint(const std::string& path, bool directory) {
  makeParents(path);
  if (directory) {
    if (mkdir(path.c_str(), 0755) < 0 && errno != EEXIST) throwSysError("mkdir " + path);
    return;
  }
  Fd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) throwSysError("create mount point " + path);
}

// A read-only remount of a bind must keep the flags the kernel locked on the
// source mount (e.g. noexec inherited from the host), or it fails with EPERM.
unsigned long lockedFlags(const std::string& path) {
  struct statvfs st;
  if (statvfs(path.c_str(), &st) < 0) throwSysError("statvfs " + path);
  unsigned long flags = 0;
  if (st.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (st.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (st.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (st.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  if (st.f_flag & ST_RDONLY) flags |= MS_RDONLY;
  return flags;
}

void bindFromFd(int sourceFd, const MountEntry& entry, unsigned long safety) {
  std::string source = "/proc/self/fd/" + std::to_string(sourceFd);
  struct stat st;
  if (fstat(sourceFd, &st) < 0) throwSysError("stat " + entry.source);
  std::string target = staged(entry.target);
  makeMountPoint(target, S_ISDIR(st.st_mode));
  if (mount(source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0)
    throwSysError("bind " + entry.source + " at " + entry.target);
  unsigned long flags = MS_REMOUNT | MS_BIND | safety | lockedFlags(target);
  if (entry.readOnly) flags |= MS_RDONLY;
  if (entry.noexec) flags |= MS_NOEXEC;
  if (mount(nullptr, target.c_str(), nullptr, flags, nullptr) < 0)
    throwSysError("remount " + entry.target);
}

void mountTmpfs(const MountEntry& entry) {
  std::string target = staged(entry.target);
  makeMountPoint(target, true);
  char options[64];
  snprintf(options, sizeof options, "mode=%o", entry.mode);
  std::string data = options;
  if (entry.sizeBytes) data += ",size=" + std::to_string(entry.sizeBytes);
  unsigned long flags = kSafe | (entry.noexec ? MS_NOEXEC : 0);
  if (mount("tmpfs", target.c_str(), "tmpfs", flags, data.c_str()) < 0)
    throwSysError("mount tmpfs at " + entry.target);
  if (entry.readOnly &&
      mount(nullptr, target.c_str(), nullptr, MS_REMOUNT | MS_RDONLY | flags, data.c_str()) < 0)
    throwSysError("remount tmpfs read-only at " + entry.target);
}

void mountProc(const MountEntry& entry) {
  std::string target = staged(entry.target);
  makeMountPoint(target, true);
  if (mount("proc", target.c_str(), "proc", kSafe | MS_NOEXEC, nullptr) < 0)
    throwSysError("mount proc at " + entry.target);
  // Kernel tunables stay readable but never writable from a sandbox.
  std::string sys = target + "/sys";
  if (mount(sys.c_str(), sys.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0 ||
      mount(nullptr, sys.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | kSafe | MS_NOEXEC,
            nullptr) < 0)
    throwSysError("bind " + entry.target + "/sys read-only");
}

void writeFile(const MountEntry& entry) {
  std::string target = staged(entry.target);
  makeParents(target);
  Fd fd(open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, entry.mode));
  if (!fd) throwSysError("create " + entry.target);
  const char* data = entry.contents.data();
  size_t left = entry.contents.size();
  while (left > 0) {
    ssize_t n = write(fd.get(), data, left);
    if (n < 0) throwSysError("write " + entry.target);
    data += n;
    left -= n;
  }
  if (fchmod(fd.get(), entry.mode) < 0) throwSysError("chmod " + entry.target);
}

void makeSymlink(const MountEntry& entry) {
  std::string target = staged(entry.target);
  makeParents(target);
  if (symlink(entry.source.c_str(), target.c_str()) < 0) throwSysError("symlink " + entry.target);
}

void makeDir(const MountEntry& entry) {
  std::string target = staged(entry.target);
  makeMountPoint(target, true);
  if (chmod(target.c_str(), entry.mode) < 0) throwSysError("chmod " + entry.target);
}

// Its own instance: the host's ptys, and other sandboxes', are not in it.
// At most kMaxPtys: the kernel's pool of ptys (kernel.pty.max) is shared by
// every instance, and a sandbox must not drain it. Not nodev, or its pty
// nodes could not be opened; nosuid and noexec.
constexpr int kMaxPtys = 16;

void mountDevpts(const MountEntry& entry) {
  std::string target = staged(entry.target);
  makeMountPoint(target, true);
  std::string options = "newinstance,ptmxmode=0666,mode=0620,max=" + std::to_string(kMaxPtys);
  if (mount("devpts", target.c_str(), "devpts", MS_NOSUID | MS_NOEXEC, options.c_str()) < 0)
    throwSysError("mount devpts at " + entry.target);
}

void remountReadOnly(const MountEntry& entry) {
  std::string target = staged(entry.target);
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY | kSafe | lockedFlags(target);
  if (mount(nullptr, target.c_str(), nullptr, flags, nullptr) < 0)
    throwSysError("remount " + entry.target + " read-only");
}

// Layers of functions: the kernel merges them, a later layer's files hiding
// an earlier one's; read-only, so no upper or work directory. The lower
// directories are named by the fds opened before the staging root covered
// anything (their host paths may be under it).
void mountOverlay(const MountEntry& entry, const std::vector<Fd>& lowerDirs) {
  std::string target = staged(entry.target);
  makeMountPoint(target, true);
  std::string options = "lowerdir=";
  for (size_t i = 0; i < lowerDirs.size(); ++i)
    options += (i ? ":" : "") + std::string("/proc/self/fd/") + std::to_string(lowerDirs[i].get());
  unsigned long flags = kSafe | MS_RDONLY | (entry.noexec ? MS_NOEXEC : 0);
  if (mount("overlay", target.c_str(), "overlay", flags, options.c_str()) < 0)
    throwSysError("mount overlay at " + entry.target);
}

// By plan index: a bind's source, or an overlay's lower directories.
std::map<size_t, std::vector<Fd>> openSources(const std::vector<MountEntry>& plan) {
  std::map<size_t, std::vector<Fd>> sources;
  auto openSource = [](const std::string& path, int flags, const char* what) {
    Fd fd(open(path.c_str(), O_PATH | O_CLOEXEC | flags));
    if (!fd) throwSysError(std::string("open ") + what + " " + path);
    return fd;
  };
  for (size_t i = 0; i < plan.size(); ++i) {
    const MountEntry& entry = plan[i];
    if (entry.kind == MountEntry::Kind::kBind || entry.kind == MountEntry::Kind::kDevBind) {
      sources[i].push_back(openSource(entry.source, 0, "bind source"));
    } else if (entry.kind == MountEntry::Kind::kOverlay) {
      if (entry.lowerDirs.size() < 2)
        throw SysError("overlay at " + entry.target + " needs two lower directories", EINVAL);
      for (const std::string& dir : entry.lowerDirs)
        sources[i].push_back(openSource(dir, O_DIRECTORY, "overlay lower directory"));
    }
  }
  return sources;
}

void applyEntry(const MountEntry& entry, const std::vector<Fd>* sources) {
  using Kind = MountEntry::Kind;
  if (entry.target.empty() || entry.target[0] != '/' || entry.target == "/")
    throw SysError("mount target '" + entry.target + "' must be an absolute path below /", EINVAL);
  switch (entry.kind) {
    case Kind::kTmpfs:
      return mountTmpfs(entry);
    case Kind::kBind:
      return bindFromFd(sources->front().get(), entry, kSafe);
    case Kind::kDevBind:
      return bindFromFd(sources->front().get(), entry, MS_NOSUID | MS_NOEXEC);
    case Kind::kProc:
      return mountProc(entry);
    case Kind::kFile:
      return writeFile(entry);
    case Kind::kDir:
      return makeDir(entry);
    case Kind::kSymlink:
      return makeSymlink(entry);
    case Kind::kRemountReadOnly:
      return remountReadOnly(entry);
    case Kind::kDevpts:
      return mountDevpts(entry);
    case Kind::kOverlay:
      return mountOverlay(entry, *sources);
  }
}

void pivotInto(const char* newRoot) {
  // pivot_root(".", ".") stacks the old root on top of the new one; the
  // detach then removes it without needing a directory for it.
  check(chdir(newRoot), std::string("chdir ") + newRoot);
  check(syscall(SYS_pivot_root, ".", "."), "pivot_root");
  check(umount2(".", MNT_DETACH), "umount old root");
  check(chdir("/"), "chdir /");
}

}  // namespace

void buildRoot(const std::vector<MountEntry>& plan) {
  check(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), "make mounts private");
  std::map<size_t, std::vector<Fd>> sources = openSources(plan);
  check(mount("tmpfs", kStaging, "tmpfs", kSafe, "mode=0755,size=1m"), "mount root tmpfs");
  for (size_t i = 0; i < plan.size(); ++i) {
    auto source = sources.find(i);
    applyEntry(plan[i], source == sources.end() ? nullptr : &source->second);
  }
  sources.clear();
  pivotInto(kStaging);
  check(mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | kSafe, nullptr),
        "remount / read-only");
}

void bindIntoSandbox(pid_t sandboxPid, const std::string& source, const std::string& target) {
  // A detached copy of the source, made in our own namespace, then moved
  // into the sandbox's: the sandbox never sees the host path.
  Fd tree(open_tree(AT_FDCWD, source.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
  if (!tree) throwSysError("open_tree " + source);
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  check(mount_setattr(tree.get(), "", AT_EMPTY_PATH, &attr, sizeof attr),
        "mount_setattr " + source);
  std::string nsPath = "/proc/" + std::to_string(sandboxPid) + "/ns/mnt";
  Fd sandboxNs(open(nsPath.c_str(), O_RDONLY | O_CLOEXEC));
  if (!sandboxNs) throwSysError("open " + nsPath);
  Fd ownNs(open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC));
  if (!ownNs) throwSysError("open /proc/self/ns/mnt");
  check(setns(sandboxNs.get(), CLONE_NEWNS), "setns into the sandbox's mount namespace");
  int moved = move_mount(tree.get(), "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH);
  int err = errno;
  // Whatever happened, come back: staying would put the caller in the sandbox.
  if (setns(ownNs.get(), CLONE_NEWNS) < 0) abort();
  if (moved < 0) throwSysError("move_mount " + source + " to " + target, err);
}

}  // namespace sandbox
