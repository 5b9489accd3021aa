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

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A directory of its own per input, removed with it (libFuzzer may end
  // the process without running exit handlers).
  char parent[] = "/tmp/thatch-archive-fuzz-XXXXXX";
  if (!mkdtemp(parent)) abort();
  std::string dest = std::string(parent) + "/tree";
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
  if (rmdir(parent) != 0) abort();
  return 0;
}
