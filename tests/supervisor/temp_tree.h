// A fresh directory for the registry and archive tests, removed with
// everything below it (read-only code trees included) however the test ends.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

#include "supervisor/archive.h"

namespace supervisor::test_util {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "thatch-supervisor-test") {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + ".XXXXXX")).string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    try {
      removeTree(path_);
    } catch (...) {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace supervisor::test_util
