// A deploy's archive on any bytes: extracted within its limits into a
// fresh directory, or an ArchiveError; never a crash, a hang, another
// exception, or a file outside that directory.

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "supervisor/archive.h"

namespace {

std::string scratch() {
  static std::string root = [] {
    static char dir[] = "/tmp/thatch-archive-fuzz-XXXXXX";
    if (!mkdtemp(dir)) abort();
    atexit([] { rmdir(dir); });
    return std::string(dir);
  }();
  return root;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string parent = scratch(), dest = parent + "/tree";
  if (mkdir(dest.c_str(), 0700) != 0) abort();
  supervisor::ArchiveLimits limits;
  limits.maxFiles = 64;
  limits.maxTotalBytes = 1 << 20;
  limits.maxFileBytes = 256 << 10;
  try {
    supervisor::extractArchive(std::string_view(reinterpret_cast<const char*>(data), size), dest,
                               limits);
  } catch (const supervisor::ArchiveError&) {
  }
  supervisor::removeTree(dest);
  // Whatever the archive said, nothing was written beside the tree.
  if (rmdir(parent.c_str()) != 0 || mkdir(parent.c_str(), 0700) != 0) abort();
  return 0;
}
