// What a sandbox sees as `/`: the default mount plan. The plan is data
// (sandbox::MountEntry values); sandbox::buildRoot() carries it out.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "sandbox/spec.h"

namespace rootfs {

struct Bind {
  std::string source;  // host path
  std::string target;  // absolute path inside
  bool writable = false;
};

struct Options {
  std::string codeDir;  // host directory shown read-only at /var/task; empty: none
  // Host directories merged read-only at /opt, in order: a later one's
  // files win (Lambda's layers). None: no /opt.
  std::vector<std::string> layerDirs;
  uint64_t tmpSizeBytes = 64ull << 20;
  bool tmpNoexec = false;  // Lambda's /tmp runs what a function writes there
  uint64_t shmSizeBytes = 16ull << 20;
  bool network = false;  // writes /etc/resolv.conf
  std::string resolvConf = "nameserver 127.0.0.53\n";
  std::string hostname = "sandbox";
  uid_t uid = 1000;
  gid_t gid = 1000;
  std::vector<Bind> binds;  // applied last, in order
};

// The default plan:
//   /            tmpfs, read-only once built
//   /usr         read-only bind of the host's
//   /bin /lib /lib64 /sbin   symlinks into /usr where the host has merged
//                /usr, else read-only binds
//   /etc         generated: passwd, group, hosts, hostname, nsswitch.conf
//                (and resolv.conf with network); localtime -> UTC; the
//                host's kHostEtc (services, protocols, mime.types, the CA
//                certificates in ssl/certs) bound read-only where it has them
//   /dev         null zero full random urandom, /dev/shm tmpfs (noexec),
//                /dev/pts (a devpts instance of its own) and ptmx,
//                fd/stdin/stdout/stderr symlinks
//   /proc        fresh, for the sandbox's pid namespace (/proc/sys read-only)
//   /tmp         size-limited tmpfs, executable unless options.tmpNoexec
//   /var/task    the function's code, read-only
//   /opt         the function's layers, read-only: one bound, more merged
//                by overlayfs; absent without layers
//   extra binds  from `options.binds`
// Throws std::invalid_argument for a bad bind (relative or unsafe target).
std::vector<sandbox::MountEntry> defaultPlan(const Options& options);

// The host's files and directories under /etc that a sandbox sees as they
// are (read-only). Which of them, and of /bin, /lib, /lib64 and /sbin, the
// host has is looked at once per process.
extern const char* const kHostEtc[4];

// The generated /etc files, exposed for tests.
std::string passwdFile(const Options& options);
std::string groupFile(const Options& options);
std::string hostsFile(const Options& options);

// "/a/b" for "/a//b/", throws for relative paths or any ".." component.
std::string normalizeTarget(const std::string& path);

}  // namespace rootfs
