#include "api/pack.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "base/fd.h"

namespace thatch::pack {

namespace {

namespace fs = std::filesystem;

struct ArchiveDeleter {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct EntryDeleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};

[[noreturn]] void fail(const std::string& what, const std::string& why) {
  throw std::runtime_error("cannot pack " + what + ": " + why);
}

void check(archive* a, int rc, const std::string& what) {
  if (rc < ARCHIVE_OK) fail(what, archive_error_string(a) ? archive_error_string(a) : "libarchive");
}

std::string readFile(const std::string& path) {
  base::Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) fail(path, strerror(errno));
  std::string contents;
  char buffer[1 << 16];
  for (;;) {
    ssize_t n = read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(path, strerror(errno));
    if (n == 0) break;
    contents.append(buffer, n);
  }
  return contents;
}

void addEntry(archive* a, const std::string& root, const std::string& relative) {
  std::string path = root + "/" + relative;
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) fail(path, strerror(errno));
  std::unique_ptr<archive_entry, EntryDeleter> entry(archive_entry_new());
  archive_entry_set_pathname(entry.get(), relative.c_str());
  archive_entry_set_perm(entry.get(), st.st_mode & 0755);  // no setuid, nothing group-writable
  std::string contents;
  if (S_ISREG(st.st_mode)) {
    contents = readFile(path);
    archive_entry_set_filetype(entry.get(), AE_IFREG);
    archive_entry_set_size(entry.get(), static_cast<la_int64_t>(contents.size()));
  } else if (S_ISDIR(st.st_mode)) {
    archive_entry_set_filetype(entry.get(), AE_IFDIR);
  } else if (S_ISLNK(st.st_mode)) {
    std::error_code error;
    fs::path target = fs::read_symlink(path, error);
    if (error) fail(path, error.message());
    archive_entry_set_filetype(entry.get(), AE_IFLNK);
    archive_entry_set_symlink(entry.get(), target.c_str());
  } else {
    fail(path, "not a regular file, directory or symlink");
  }
  check(a, archive_write_header(a, entry.get()), path);
  if (!contents.empty() &&
      archive_write_data(a, contents.data(), contents.size()) != ssize_t(contents.size()))
    fail(path, archive_error_string(a) ? archive_error_string(a) : "short write");
}

la_ssize_t appendToString(archive*, void* out, const void* data, size_t size) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(data), size);
  return static_cast<la_ssize_t>(size);
}

}  // namespace

bool isDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string packDirectory(const std::string& dir) {
  std::vector<std::string> entries;
  std::error_code error;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, error), end;
  if (error) fail(dir, error.message());
  for (; it != end; it.increment(error)) {
    if (error) fail(dir, error.message());
    // Lexically: fs::relative() would resolve a symlink and name its target.
    entries.push_back(it->path().lexically_relative(dir).string());
  }
  if (error) fail(dir, error.message());
  std::sort(entries.begin(), entries.end());

  std::string out;
  std::unique_ptr<archive, ArchiveDeleter> a(archive_write_new());
  check(a.get(), archive_write_set_format_pax_restricted(a.get()), dir);
  check(a.get(), archive_write_add_filter_gzip(a.get()), dir);
  // Every block as soon as it is full: no padding to 10 KiB records.
  check(a.get(), archive_write_set_bytes_in_last_block(a.get(), 1), dir);
  check(a.get(), archive_write_open(a.get(), &out, nullptr, appendToString, nullptr), dir);
  for (const std::string& relative : entries) addEntry(a.get(), dir, relative);
  check(a.get(), archive_write_close(a.get()), dir);
  return out;
}

}  // namespace thatch::pack
