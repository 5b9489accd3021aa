#include "rootfs/plan.h"

#include <sys/stat.h>
#include <unistd.h>

#include <stdexcept>

namespace rootfs {
namespace {

using sandbox::MountEntry;
using Kind = MountEntry::Kind;

MountEntry entry(Kind kind, std::string source, std::string target) {
  MountEntry e;
  e.kind = kind;
  e.source = std::move(source);
  e.target = std::move(target);
  return e;
}

MountEntry tmpfs(std::string target, uint64_t size, mode_t mode, bool noexec) {
  MountEntry e = entry(Kind::kTmpfs, "", std::move(target));
  e.sizeBytes = size;
  e.mode = mode;
  e.noexec = noexec;
  e.readOnly = false;
  return e;
}

MountEntry file(std::string target, std::string contents) {
  MountEntry e = entry(Kind::kFile, "", std::move(target));
  e.contents = std::move(contents);
  e.mode = 0644;
  return e;
}

// The entries that follow the host's layout, looked at once per process
// rather than for every sandbox's plan (thatchd makes one per spawn).
struct HostEntries {
  std::vector<MountEntry> topLevelDirs, etc;
};

const HostEntries& hostEntries() {
  static const HostEntries host = [] {
    HostEntries h;
    // Debian 12 merges /bin, /lib, /lib64 and /sbin into /usr; older
    // layouts keep real directories, which are then bound read-only.
    for (const char* dir : {"/bin", "/lib", "/lib64", "/sbin"}) {
      struct stat st;
      if (lstat(dir, &st) < 0) continue;
      if (S_ISLNK(st.st_mode)) {
        char link[256];
        ssize_t n = readlink(dir, link, sizeof link - 1);
        if (n <= 0) continue;
        h.topLevelDirs.push_back(entry(Kind::kSymlink, std::string(link, n), dir));
      } else if (S_ISDIR(st.st_mode)) {
        h.topLevelDirs.push_back(entry(Kind::kBind, dir, dir));
      }
    }
    // What Lambda's /etc holds and functions rely on: port and protocol
    // names (getservbyname, asyncio's create_connection), media types
    // (mimetypes), the CA certificates (Python's ssl, requests and urllib3,
    // through /usr/lib/ssl/certs -> /etc/ssl/certs). The host's, read-only,
    // where it has them (make deps installs them on Debian).
    for (const char* path : kHostEtc) {
      struct stat st;
      if (stat(path, &st) == 0) h.etc.push_back(entry(Kind::kBind, path, path));
    }
    return h;
  }();
  return host;
}

void addEtc(std::vector<MountEntry>& plan, const Options& options) {
  plan.push_back(file("/etc/passwd", passwdFile(options)));
  plan.push_back(file("/etc/group", groupFile(options)));
  plan.push_back(file("/etc/hosts", hostsFile(options)));
  plan.push_back(file("/etc/hostname", options.hostname + "\n"));
  plan.push_back(file("/etc/nsswitch.conf",
                      "passwd: files\ngroup: files\nhosts: files dns\nservices: files\n"));
  if (options.network) plan.push_back(file("/etc/resolv.conf", options.resolvConf));
  const std::vector<MountEntry>& hostEtc = hostEntries().etc;
  plan.insert(plan.end(), hostEtc.begin(), hostEtc.end());
  // UTC, as in Lambda, unless the function sets TZ.
  plan.push_back(entry(Kind::kSymlink, "/usr/share/zoneinfo/Etc/UTC", "/etc/localtime"));
}

void addDev(std::vector<MountEntry>& plan, const Options& options) {
  MountEntry dev = tmpfs("/dev", 64 << 10, 0755, true);
  plan.push_back(dev);
  for (const char* node : {"null", "zero", "full", "random", "urandom"}) {
    std::string path = std::string("/dev/") + node;
    MountEntry e = entry(Kind::kDevBind, path, path);
    e.readOnly = false;  // writing to /dev/null is the point
    plan.push_back(e);
  }
  plan.push_back(tmpfs("/dev/shm", options.shmSizeBytes, 01777, true));
  // Ptys (pty.openpty, terminals for subprocesses), as Lambda has.
  plan.push_back(entry(Kind::kDevpts, "", "/dev/pts"));
  plan.push_back(entry(Kind::kSymlink, "pts/ptmx", "/dev/ptmx"));
  plan.push_back(entry(Kind::kSymlink, "/proc/self/fd", "/dev/fd"));
  plan.push_back(entry(Kind::kSymlink, "/proc/self/fd/0", "/dev/stdin"));
  plan.push_back(entry(Kind::kSymlink, "/proc/self/fd/1", "/dev/stdout"));
  plan.push_back(entry(Kind::kSymlink, "/proc/self/fd/2", "/dev/stderr"));
  // /dev's own tmpfs becomes read-only once the nodes are in place.
  plan.push_back(entry(Kind::kRemountReadOnly, "", "/dev"));
}

// One layer needs no overlayfs: a bind is cheaper to set up and to read.
void addLayers(std::vector<MountEntry>& plan, const std::vector<std::string>& layerDirs) {
  if (layerDirs.size() == 1) {
    plan.push_back(entry(Kind::kBind, layerDirs[0], "/opt"));
  } else if (layerDirs.size() > 1) {
    MountEntry merged = entry(Kind::kOverlay, "", "/opt");
    merged.lowerDirs.assign(layerDirs.rbegin(), layerDirs.rend());  // the last layer on top
    plan.push_back(std::move(merged));
  }
}

}  // namespace

std::string normalizeTarget(const std::string& path) {
  if (path.empty() || path[0] != '/')
    throw std::invalid_argument("'" + path + "' is not an absolute path");
  std::string out;
  size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    size_t end = path.find('/', i);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(i, end - i);
    if (part == "..") throw std::invalid_argument("'" + path + "' contains '..'");
    if (!part.empty() && part != ".") out += "/" + part;
    i = end;
  }
  return out.empty() ? "/" : out;
}

std::string passwdFile(const Options& options) {
  return "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
         "sandbox:x:" +
         std::to_string(options.uid) + ":" + std::to_string(options.gid) +
         ":sandbox:/tmp:/usr/sbin/nologin\n"
         "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
}

std::string groupFile(const Options& options) {
  return "root:x:0:\nsandbox:x:" + std::to_string(options.gid) + ":\nnogroup:x:65534:\n";
}

std::string hostsFile(const Options& options) {
  return "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" +
         options.hostname + "\n";
}

const char* const kHostEtc[] = {"/etc/services", "/etc/protocols", "/etc/mime.types",
                                "/etc/ssl/certs"};

std::vector<MountEntry> defaultPlan(const Options& options) {
  std::vector<MountEntry> plan;
  plan.push_back(entry(Kind::kBind, "/usr", "/usr"));
  const std::vector<MountEntry>& topLevelDirs = hostEntries().topLevelDirs;
  plan.insert(plan.end(), topLevelDirs.begin(), topLevelDirs.end());
  addEtc(plan, options);
  addDev(plan, options);
  plan.push_back(entry(Kind::kProc, "", "/proc"));
  plan.push_back(tmpfs("/tmp", options.tmpSizeBytes, 01777, options.tmpNoexec));
  if (!options.codeDir.empty()) plan.push_back(entry(Kind::kBind, options.codeDir, "/var/task"));
  addLayers(plan, options.layerDirs);
  for (const Bind& bind : options.binds) {
    std::string target = normalizeTarget(bind.target.empty() ? bind.source : bind.target);
    if (target == "/" || target == "/proc" || target.rfind("/proc/", 0) == 0)
      throw std::invalid_argument("cannot bind over " + target);
    MountEntry e = entry(Kind::kBind, bind.source, target);
    e.readOnly = !bind.writable;
    plan.push_back(e);
  }
  return plan;
}

}  // namespace rootfs
