#include "supervisor/store_files.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "base/sys_error.h"
#include "supervisor/archive.h"

namespace supervisor {

namespace fs = std::filesystem;
using base::Fd;

namespace {

constexpr size_t kMaxNameBytes = 64;

bool isLowerOrDigit(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

}  // namespace

void registryWarning(const std::string& message) {
  std::cerr << "thatchd: registry: " << message << std::endl;
}

bool isValidName(std::string_view name) {
  return !name.empty() && name.size() <= kMaxNameBytes && isLowerOrDigit(name[0]) &&
         std::all_of(name.begin(), name.end(),
                     [](char c) { return isLowerOrDigit(c) || c == '_' || c == '-'; });
}

void removeStagedTree(const std::string& dir) {
  try {
    removeTree(dir);
  } catch (const std::exception& e) {
    registryWarning("cannot remove " + dir + " (removed at the next start): " + e.what());
  }
}

void fsyncPath(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) base::throwSysError("open " + path);
  if (fsync(fd.get()) < 0) base::throwSysError("fsync " + path);
}

void writeDurably(int fd, const std::string& path, const std::string& contents) {
  for (size_t done = 0; done < contents.size();) {
    ssize_t n = write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) base::throwSysError("write " + path);
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) < 0) base::throwSysError("fsync " + path);
}

void writeNewFile(const std::string& path, const std::string& contents) {
  Fd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) base::throwSysError("create " + path);
  writeDurably(fd.get(), path, contents);
}

bool makeDirectory(const std::string& path, mode_t mode) {
  if (mkdir(path.c_str(), mode) == 0) {
    if (chmod(path.c_str(), mode) < 0) base::throwSysError("chmod " + path);  // past the umask
    return true;
  }
  struct stat st;
  if (errno == EEXIST && lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return false;
  base::throwSysError("mkdir " + path);
}

void renameNoReplace(const std::string& from, const std::string& to) {
  if (renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return;
  if (errno != EINVAL) base::throwSysError("rename " + from + " to " + to);
  // A filesystem without RENAME_NOREPLACE: the store is the only writer.
  struct stat st;
  if (lstat(to.c_str(), &st) == 0) base::throwSysError("rename " + from + " to " + to, EEXIST);
  if (rename(from.c_str(), to.c_str()) < 0) base::throwSysError("rename " + from + " to " + to);
}

StagingDir::StagingDir(const std::string& parent) {
  std::string pattern = parent + "/" + std::string(kTmpPrefix) + "XXXXXX";
  if (!mkdtemp(pattern.data())) base::throwSysError("mkdtemp " + pattern);
  path_ = pattern;
}

StagingDir::~StagingDir() {
  if (!path_.empty()) removeStagedTree(path_);
}

TempFile::TempFile(const std::string& parent)
    : path_(parent + "/" + std::string(kTmpPrefix) + "XXXXXX") {
  fd_.reset(mkostemp(path_.data(), O_CLOEXEC));
  if (!fd_) base::throwSysError("mkstemp " + path_);
}

TempFile::~TempFile() {
  if (!path_.empty()) unlink(path_.c_str());
}

void TempFile::renameTo(const std::string& to) {
  if (rename(path_.c_str(), to.c_str()) < 0) base::throwSysError("rename " + path_ + " to " + to);
  path_.clear();
}

int64_t nowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::optional<uint64_t> parseVersion(std::string_view text) {
  uint64_t value = 0;
  if (text.empty() || text[0] == '0') return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::vector<std::string> directoryNames(const std::string& dir) {
  std::vector<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string moveOutOfStore(const std::string& dir, const std::string& parent) {
  StagingDir grave(parent);
  if (rename(dir.c_str(), grave.path().c_str()) < 0)
    base::throwSysError("rename " + dir + " to " + grave.path());
  std::string moved = grave.path();
  grave.release();
  return moved;
}

void writeRemovedMarker(const std::string& markersDir, const std::string& tmpParent,
                        const std::string& name, uint64_t lastVersion) {
  TempFile temp(tmpParent);
  writeDurably(temp.fd(), temp.path(), std::to_string(lastVersion) + "\n");
  temp.renameTo(markersDir + "/" + name);
  fsyncPath(markersDir);
}

std::vector<std::pair<std::string, uint64_t>> readRemovedMarkers(const std::string& markersDir) {
  std::vector<std::pair<std::string, uint64_t>> markers;
  for (const std::string& name : directoryNames(markersDir)) {
    std::string path = markersDir + "/" + name;
    std::ifstream in(path);
    std::string text;
    std::optional<uint64_t> version;
    if (in >> text) version = parseVersion(text);
    if (!isValidName(name) || !version) {
      registryWarning("ignoring " + path + ": not a removed name's last version");
      continue;
    }
    markers.emplace_back(name, *version);
  }
  return markers;
}

}  // namespace supervisor
