// Small helpers shared by the test suites.
#pragma once

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

}  // namespace testing_util
