#include "sandbox/idmap.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <stdexcept>

#include "base/sys_error.h"

namespace sandbox {

using base::check;
using base::Fd;
using base::SysError;
using base::throwSysError;
namespace {

void writeProcFile(pid_t pid, const char* name, const std::string& contents) {
  std::string path = "/proc/" + std::to_string(pid) + "/" + name;
  Fd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) throwSysError("open " + path);
  // These files accept exactly one write(2) of the whole map.
  if (write(fd.get(), contents.data(), contents.size()) != static_cast<ssize_t>(contents.size()))
    throwSysError("write " + path);
}

}  // namespace

void writeIdMaps(pid_t child, const IdMap& ids) {
  if (ids.hostUid == 0 || ids.hostGid == 0)
    throw std::invalid_argument("a sandbox must never map to host root");
  writeProcFile(child, "uid_map",
                std::to_string(ids.insideUid) + " " + std::to_string(ids.hostUid) + " 1\n");
  writeProcFile(child, "gid_map",
                std::to_string(ids.insideGid) + " " + std::to_string(ids.hostGid) + " 1\n");
}

void becomeSandboxUser(const IdMap& ids) {
  // The child starts with host root's supplementary groups; drop them before
  // they can matter for file access.
  check(setgroups(0, nullptr), "setgroups");
  check(setresgid(ids.insideGid, ids.insideGid, ids.insideGid), "setresgid");
  check(setresuid(ids.insideUid, ids.insideUid, ids.insideUid), "setresuid");
}

IdAllocator::IdAllocator(std::string slotDir, IdRange range)
    : slotDir_(std::move(slotDir)), range_(range) {
  std::error_code ec;
  std::filesystem::create_directories(slotDir_, ec);
  if (ec) throw SysError("mkdir " + slotDir_, ec.value());
}

IdLease IdAllocator::acquire() {
  // Start at a random slot: concurrent runners then rarely contend.
  unsigned start = std::random_device{}() % range_.count;
  for (unsigned i = 0; i < range_.count; ++i) {
    unsigned slot = (start + i) % range_.count;
    std::string path = slotDir_ + "/" + std::to_string(slot);
    Fd fd(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd) throwSysError("open " + path);
    if (flock(fd.get(), LOCK_EX | LOCK_NB) == 0)
      return IdLease(std::move(fd), slot, range_.first + slot);
    if (errno != EWOULDBLOCK) throwSysError("flock " + path);
  }
  throw std::runtime_error("all " + std::to_string(range_.count) + " sandbox ids in use");
}

}  // namespace sandbox
