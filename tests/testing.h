// Small helpers shared by the test suites.
#pragma once

#include <sys/types.h>

#include <set>
#include <string>
#include <vector>

namespace testing_util {

// A fresh directory under $TMPDIR (or /tmp), removed recursively on
// destruction (unmounting nothing: tests that mount clean up themselves).
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "thatch-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string readFile(const std::string& path);
void writeFile(const std::string& path, const std::string& contents);
bool exists(const std::string& path);

struct CommandResult {
  int exitCode = -1;  // 128+signal if signalled
  std::string out;
  std::string err;
};
// Runs argv (no shell) with `input` on stdin, capturing stdout and stderr.
CommandResult run(const std::vector<std::string>& argv, const std::string& input = "");

// The directory holding the test binaries (from /proc/self/exe).
std::string testBinDir();

// The source tree (two levels above testBinDir()), canonical: thatchd keeps
// a directory deploy's path as given. And examples/NAME in it.
std::string repoRoot();
std::string example(const std::string& name);

// A handler that forks until its pids limit stops it (too_many_processes).
inline constexpr const char kForkBombHandler[] = R"PY(
import os, time
def handler(event, context):
    while True:
        try:
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
        except OSError:
            time.sleep(0.01)
)PY";

// What sandboxes could leave behind on the host, to compare before/after.
struct HostState {
  size_t mounts = 0;                       // in this process's mount namespace
  std::set<ino_t> netns;                   // network namespaces of all processes
  std::set<std::string> sandboxProcesses;  // pids owned by a sandbox uid (>= 1000000000)
  std::set<std::string> cgroups;           // under <own cgroup>/thatch, per controller
  std::set<std::string> links;             // network interfaces of the host

  bool operator==(const HostState&) const = default;
};
HostState snapshot();

}  // namespace testing_util
