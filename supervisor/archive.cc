#include "supervisor/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "base/fd.h"
#include "base/sys_error.h"
#include "base/text.h"

namespace supervisor {

using base::printable;
using base::quoted;
namespace {

using base::Fd;

constexpr size_t kMaxPathBytes = 4096;
// Bounds the recursion of copyTree, sealTree and removeTree, each of which
// holds a descriptor per level.
constexpr size_t kMaxDepth = 128;
constexpr size_t kChunkBytes = 64 << 10;

// An entry name for a message: quoted, control bytes escaped, shortened.
std::string printable(std::string_view name) {
  return quoted(name, 200);
}

std::vector<std::string_view> splitPath(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = std::min(path.find('/', start), path.size());
    std::string_view part = path.substr(start, slash - start);
    if (!part.empty() && part != ".") parts.push_back(part);
    start = slash + 1;
  }
  return parts;
}

// The components of an entry's path below the root; `./a//b/` is `a`, `b`.
std::vector<std::string> entryComponents(std::string_view path) {
  if (path.empty()) throw ArchiveError("an entry has an empty name");
  if (path.size() > kMaxPathBytes)
    throw ArchiveError("entry " + printable(path) + ": path longer than 4096 bytes");
  if (path[0] == '/') throw ArchiveError("entry " + printable(path) + ": absolute path");
  std::vector<std::string> parts;
  for (std::string_view part : splitPath(path)) {
    if (part == "..") throw ArchiveError("entry " + printable(path) + ": '..' in path");
    // Bad input, not a failure of the host (ENAMETOOLONG from openat).
    if (part.size() > NAME_MAX)
      throw ArchiveError("entry " + printable(path) + ": a name longer than " +
                         std::to_string(NAME_MAX) + " bytes");
    parts.emplace_back(part);
  }
  if (parts.size() > kMaxDepth)
    throw ArchiveError("entry " + printable(path) + ": nested deeper than " +
                       std::to_string(kMaxDepth) + " levels");
  return parts;
}

// A link at depth `depth` (0: in the root) may climb at most `depth` levels,
// and only before its first name: every directory it climbs out of is then a
// real directory of the tree. After a name, `..` would climb out of whatever
// that name resolves to — possibly a symlink, possibly one the archive has
// yet to create — so it is refused.
void checkSymlinkTarget(std::string_view path, std::string_view target, size_t depth) {
  std::string entry = "entry " + printable(path) + ": symlink";
  if (target.empty()) throw ArchiveError(entry + " with an empty target");
  if (target.size() > kMaxPathBytes) throw ArchiveError(entry + " target longer than 4096 bytes");
  if (target[0] == '/')
    throw ArchiveError(entry + " to the absolute path " + printable(target) +
                       " (symlinks must stay inside the tree)");
  size_t ups = 0;
  bool sawName = false;
  for (std::string_view part : splitPath(target)) {
    if (part != "..") {
      sawName = true;
    } else if (sawName) {
      throw ArchiveError(entry + " target " + printable(target) +
                         " has '..' after a name (it could resolve outside the tree)");
    } else if (++ups > depth) {
      throw ArchiveError(entry + " to " + printable(target) + " points outside the tree");
    }
  }
}

Fd openDirectory(int dirFd, const std::string& name) {
  return Fd(openat(dirFd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

struct CloseDir {
  void operator()(DIR* dir) const { closedir(dir); }
};

// The names in a directory, sorted; `dirFd` keeps its own file offset.
std::vector<std::string> listDirectory(int dirFd, const std::string& what) {
  Fd fd(openat(dirFd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) base::throwSysError("open " + what);
  std::unique_ptr<DIR, CloseDir> dir(fdopendir(fd.get()));
  if (!dir) base::throwSysError("fdopendir " + what);
  fd.release();  // closedir closes it
  std::vector<std::string> names;
  errno = 0;
  while (dirent* entry = readdir(dir.get())) {
    std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  if (errno != 0) base::throwSysError("readdir " + what);
  std::sort(names.begin(), names.end());
  return names;
}

void writeAll(int fd, const char* data, size_t size, const std::string& what) {
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) base::throwSysError("write " + what);
    data += n;
    size -= static_cast<size_t>(n);
  }
}

// Reads up to `size` bytes of the current file into `buffer`; 0 at its end.
using ReadChunk = std::function<size_t(char* buffer, size_t size)>;

// Builds a tree below `destDir` one entry at a time, enforcing the rules and
// limits. Every path is walked from the root with O_NOFOLLOW, so no entry is
// ever created through a symlink, whatever the archive created before it.
class TreeWriter {
 public:
  // `inputBytes`: the archive's size, for the ratio limit; 0: no ratio.
  TreeWriter(const std::string& destDir, const ArchiveLimits& limits, uint64_t inputBytes)
      : root_(open(destDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)),
        limits_(limits),
        inputBytes_(inputBytes) {
    if (!root_) base::throwSysError("open " + destDir);
    if (!listDirectory(root_.get(), destDir).empty())
      throw std::invalid_argument("destination " + destDir + " is not empty");
  }

  void addDirectory(std::string_view path) {
    std::vector<std::string> parts = entryComponents(path);
    if (parts.empty()) return;  // `./`: the root itself
    Fd parent = openParent(parts, path);
    makeDirectory(parent.get(), parts.back(), path);
  }

  void addFile(std::string_view path, mode_t mode, std::optional<uint64_t> declaredSize,
               const ReadChunk& read) {
    std::vector<std::string> parts = entryComponents(path);
    if (parts.empty()) throw ArchiveError("entry " + printable(path) + ": a file with no name");
    if (declaredSize && *declaredSize > limits_.maxFileBytes) throw fileTooBig(path);
    Fd parent = openParent(parts, path);
    countEntry(path);
    Fd file(openat(parent.get(), parts.back().c_str(),
                   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!file && errno == EEXIST) throw duplicate(path);
    if (!file) base::throwSysError("create " + std::string(path));
    ++entries_;
    ++files_;
    copyData(file.get(), path, read);
    // Only "executable or not" survives: no setuid/setgid/sticky, no
    // group/other write, and always readable by the sandbox's uid.
    if (fchmod(file.get(), (mode & 0111) ? 0755 : 0644) < 0)
      base::throwSysError("chmod " + std::string(path));
  }

  void addSymlink(std::string_view path, std::string_view target) {
    std::vector<std::string> parts = entryComponents(path);
    if (parts.empty()) throw ArchiveError("entry " + printable(path) + ": a symlink with no name");
    checkSymlinkTarget(path, target, parts.size() - 1);
    Fd parent = openParent(parts, path);
    countEntry(path);
    if (symlinkat(std::string(target).c_str(), parent.get(), parts.back().c_str()) < 0) {
      if (errno == EEXIST) throw duplicate(path);
      base::throwSysError("symlink " + std::string(path));
    }
    ++entries_;
  }

  void finish(std::string_view what) const {
    if (files_ == 0) throw ArchiveError(std::string(what) + " holds no files");
  }

 private:
  // The directory that will hold the last component of `parts`, creating
  // the missing ones; refuses to go through anything but real directories.
  Fd openParent(const std::vector<std::string>& parts, std::string_view path) {
    Fd dir(openat(root_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) base::throwSysError("open the destination");
    std::string walked;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      walked += (i ? "/" : "") + parts[i];
      Fd next = openDirectory(dir.get(), parts[i]);
      if (!next && errno == ENOENT) {
        makeDirectory(dir.get(), parts[i], walked);
        next = openDirectory(dir.get(), parts[i]);
      }
      if (!next && (errno == ELOOP || errno == ENOTDIR)) {
        struct stat st;
        bool isLink = fstatat(dir.get(), parts[i].c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                      S_ISLNK(st.st_mode);
        throw ArchiveError(
            "entry " + printable(path) + ": " + printable(walked) +
            (isLink ? " is a symlink; nothing may be written through one" : " is not a directory"));
      }
      if (!next) base::throwSysError("open " + walked);
      dir = std::move(next);
    }
    return dir;
  }

  void makeDirectory(int parentFd, const std::string& name, std::string_view path) {
    struct stat st;
    if (fstatat(parentFd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (S_ISDIR(st.st_mode)) return;  // made for an earlier entry below it: harmless
      throw duplicate(path);
    }
    countEntry(path);
    if (mkdirat(parentFd, name.c_str(), 0700) < 0)
      base::throwSysError("mkdir " + std::string(path));
    ++entries_;
    Fd dir = openDirectory(parentFd, name);
    if (!dir || fchmod(dir.get(), 0755) < 0) base::throwSysError("chmod " + std::string(path));
  }

  void countEntry(std::string_view path) const {
    if (entries_ >= limits_.maxFiles)
      throw ArchiveError("entry " + printable(path) + ": more than " +
                         std::to_string(limits_.maxFiles) + " files and directories");
  }

  void copyData(int fd, std::string_view path, const ReadChunk& read) {
    std::vector<char> buffer(kChunkBytes);
    uint64_t fileBytes = 0;
    while (size_t n = read(buffer.data(), buffer.size())) {
      // Checked before writing: nothing beyond a limit reaches the disk.
      fileBytes += n;
      totalBytes_ += n;
      if (fileBytes > limits_.maxFileBytes) throw fileTooBig(path);
      if (totalBytes_ > limits_.maxTotalBytes)
        throw ArchiveError("entry " + printable(path) + ": the files add up to more than " +
                           std::to_string(limits_.maxTotalBytes) + " bytes");
      if (inputBytes_ > 0 && limits_.maxCompressionRatio > 0 &&
          totalBytes_ > limits_.ratioExemptBytes &&
          static_cast<double>(totalBytes_) >
              limits_.maxCompressionRatio * static_cast<double>(inputBytes_))
        throw ArchiveError("entry " + printable(path) + ": the archive expands to more than " +
                           std::to_string(static_cast<uint64_t>(limits_.maxCompressionRatio)) +
                           " times its size of " + std::to_string(inputBytes_) +
                           " bytes (a decompression bomb?)");
      writeAll(fd, buffer.data(), n, std::string(path));
    }
  }

  ArchiveError fileTooBig(std::string_view path) const {
    return ArchiveError("entry " + printable(path) + ": larger than " +
                        std::to_string(limits_.maxFileBytes) + " bytes");
  }

  static ArchiveError duplicate(std::string_view path) {
    return ArchiveError("entry " + printable(path) + ": already exists (duplicate entry)");
  }

  Fd root_;
  ArchiveLimits limits_;
  uint64_t inputBytes_;
  uint64_t entries_ = 0;
  uint64_t files_ = 0;
  uint64_t totalBytes_ = 0;
};

// ---------------------------------------------------------------------------
// Archives

struct ArchiveReader {
  ArchiveReader() : a(archive_read_new()) {
    if (!a) throw std::bad_alloc();
    // Formats and filters named one by one: `_all` would add formats nobody
    // deploys (and their parsers' attack surface), and filters that run an
    // external program when libarchive lacks the library.
    check(archive_read_support_format_tar(a), "tar");
    check(archive_read_support_format_zip(a), "zip");
    if (archive_zlib_version()) check(archive_read_support_filter_gzip(a), "gzip");
    if (archive_bzlib_version()) check(archive_read_support_filter_bzip2(a), "bzip2");
    if (archive_liblzma_version()) {
      check(archive_read_support_filter_xz(a), "xz");
      check(archive_read_support_filter_lzma(a), "lzma");
    }
    if (archive_libzstd_version()) check(archive_read_support_filter_zstd(a), "zstd");
  }
  ~ArchiveReader() { archive_read_free(a); }
  ArchiveReader(const ArchiveReader&) = delete;
  ArchiveReader& operator=(const ArchiveReader&) = delete;

  std::string error() const {
    const char* message = archive_error_string(a);
    return message ? message : "unknown error";
  }

  void check(int rc, const char* what) const {
    if (rc != ARCHIVE_OK)
      throw std::runtime_error(std::string("libarchive: enable ") + what + ": " + error());
  }

  archive* a;
};

std::string entryPath(archive_entry* entry) {
  const char* path = archive_entry_pathname(entry);
  if (!path) path = archive_entry_pathname_utf8(entry);
  if (!path) throw ArchiveError("an entry has a name that cannot be read");
  return path;
}

const char* kindOf(mode_t type) {
  switch (type) {
    case AE_IFCHR:
      return "a character device";
    case AE_IFBLK:
      return "a block device";
    case AE_IFIFO:
      return "a fifo";
    case AE_IFSOCK:
      return "a socket";
    default:
      return "of an unknown type";
  }
}

void extractEntry(ArchiveReader& reader, archive_entry* entry, TreeWriter& writer) {
  std::string path = entryPath(entry);
  if (archive_entry_is_encrypted(entry))
    throw ArchiveError("entry " + printable(path) + ": encrypted");
  if (const char* target = archive_entry_hardlink(entry))
    throw ArchiveError("entry " + printable(path) + ": hard link to " + printable(target) +
                       " (not allowed)");
  mode_t type = archive_entry_filetype(entry);
  if (type == AE_IFDIR) return writer.addDirectory(path);
  if (type == AE_IFLNK) {
    const char* target = archive_entry_symlink(entry);
    if (!target) target = archive_entry_symlink_utf8(entry);
    return writer.addSymlink(path, target ? target : "");
  }
  if (type != AE_IFREG)
    throw ArchiveError("entry " + printable(path) + ": " + kindOf(type) +
                       " (only files, directories and symlinks are allowed)");
  std::optional<uint64_t> size;
  if (archive_entry_size_is_set(entry) && archive_entry_size(entry) >= 0)
    size = static_cast<uint64_t>(archive_entry_size(entry));
  writer.addFile(path, archive_entry_perm(entry), size, [&](char* buffer, size_t n) -> size_t {
    la_ssize_t got = archive_read_data(reader.a, buffer, n);
    if (got < 0) throw ArchiveError("entry " + printable(path) + ": " + reader.error());
    return static_cast<size_t>(got);
  });
}

void extractAll(ArchiveReader& reader, TreeWriter& writer) {
  std::string previous;
  for (;;) {
    archive_entry* entry = nullptr;
    int rc = archive_read_next_header(reader.a, &entry);
    if (rc == ARCHIVE_EOF) break;
    if (rc < ARCHIVE_WARN) {
      if (previous.empty()) throw ArchiveError("not a tar or zip archive: " + reader.error());
      throw ArchiveError("archive damaged after entry " + printable(previous) + ": " +
                         reader.error());
    }
    extractEntry(reader, entry, writer);
    previous = entryPath(entry);
  }
  writer.finish("the archive");
}

// ---------------------------------------------------------------------------
// Directories

void copyDirectory(int sourceFd, const std::string& prefix, const ArchiveLimits& limits,
                   TreeWriter& writer) {
  std::vector<std::string> names;
  try {
    names = listDirectory(sourceFd, prefix.empty() ? "." : prefix);
  } catch (const std::system_error& e) {
    throw ArchiveError(std::string("cannot read the source: ") + e.what());  // the input's fault
  }
  if (names.size() > limits.maxFiles)
    throw ArchiveError(printable(prefix.empty() ? "." : prefix) + ": more than " +
                       std::to_string(limits.maxFiles) + " files and directories");
  for (const std::string& name : names) {
    std::string path = prefix + name;
    struct stat st;
    if (fstatat(sourceFd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0)
      throw ArchiveError("cannot stat " + printable(path) + ": " + std::strerror(errno));
    if (S_ISDIR(st.st_mode)) {
      writer.addDirectory(path);
      Fd child = openDirectory(sourceFd, name);
      if (!child)
        throw ArchiveError("cannot open " + printable(path) + ": " + std::strerror(errno));
      copyDirectory(child.get(), path + "/", limits, writer);
    } else if (S_ISREG(st.st_mode)) {
      // O_NONBLOCK: should it have become a fifo since the stat, open must
      // not wait for a writer.
      Fd file(openat(sourceFd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
      if (!file || fstat(file.get(), &st) < 0)
        throw ArchiveError("cannot open " + printable(path) + ": " + std::strerror(errno));
      if (!S_ISREG(st.st_mode)) throw ArchiveError(printable(path) + " changed while copying");
      writer.addFile(
          path, st.st_mode, static_cast<uint64_t>(st.st_size),
          [&](char* buffer, size_t n) -> size_t {
            ssize_t got;
            do got = read(file.get(), buffer, n);
            while (got < 0 && errno == EINTR);
            if (got < 0)
              throw ArchiveError("cannot read " + printable(path) + ": " + std::strerror(errno));
            return static_cast<size_t>(got);
          });
    } else if (S_ISLNK(st.st_mode)) {
      std::string target(kMaxPathBytes + 1, '\0');
      ssize_t n = readlinkat(sourceFd, name.c_str(), target.data(), target.size());
      if (n < 0) throw ArchiveError("cannot read " + printable(path) + ": " + std::strerror(errno));
      target.resize(static_cast<size_t>(n));
      writer.addSymlink(path, target);
    } else {
      throw ArchiveError(printable(path) + " is " + kindOf(st.st_mode & S_IFMT) +
                         " (only files, directories and symlinks are allowed)");
    }
  }
}

// ---------------------------------------------------------------------------
// Sealing and removal

void sealDirectory(int dirFd, const std::string& path, TreeStats& stats) {
  for (const std::string& name : listDirectory(dirFd, path)) {
    std::string child = path + "/" + name;
    struct stat st;
    if (fstatat(dirFd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0)
      base::throwSysError("stat " + child);
    if (S_ISLNK(st.st_mode)) {
      ++stats.symlinks;  // made durable by its directory's fsync
    } else if (S_ISDIR(st.st_mode)) {
      Fd dir = openDirectory(dirFd, name);
      if (!dir) base::throwSysError("open " + child);
      sealDirectory(dir.get(), child, stats);
      ++stats.directories;
    } else if (S_ISREG(st.st_mode)) {
      Fd file(openat(dirFd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
      if (!file) base::throwSysError("open " + child);
      if (fchmod(file.get(), (st.st_mode & 0111) ? 0555 : 0444) < 0)
        base::throwSysError("chmod " + child);
      if (fsync(file.get()) < 0) base::throwSysError("fsync " + child);
      ++stats.files;
      stats.bytes += static_cast<uint64_t>(st.st_size);
    } else {
      throw std::invalid_argument("sealTree: " + child + " is not a file, directory or symlink");
    }
  }
  if (fchmod(dirFd, 0555) < 0) base::throwSysError("chmod " + path);
  if (fsync(dirFd) < 0) base::throwSysError("fsync " + path);
}

void removeEntry(int parentFd, const std::string& name, const std::string& path) {
  struct stat st;
  if (fstatat(parentFd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT) return;
    base::throwSysError("stat " + path);
  }
  if (S_ISDIR(st.st_mode)) {
    Fd dir = openDirectory(parentFd, name);
    if (!dir) base::throwSysError("open " + path);
    // Sealed trees are read-only; without this only CAP_DAC_OVERRIDE could
    // empty them.
    if ((st.st_mode & 0700) != 0700 && fchmod(dir.get(), 0700) < 0)
      base::throwSysError("chmod " + path);
    for (const std::string& child : listDirectory(dir.get(), path))
      removeEntry(dir.get(), child, path + "/" + child);
  }
  if (unlinkat(parentFd, name.c_str(), S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0 &&
      errno != ENOENT)
    base::throwSysError("remove " + path);
}

}  // namespace

void extractArchive(const std::string& archivePath, const std::string& destDir,
                    const ArchiveLimits& limits) {
  // O_NONBLOCK: a fifo named as the archive must not hang the daemon.
  Fd fd(open(archivePath.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  struct stat st;
  if (!fd || fstat(fd.get(), &st) < 0)
    throw ArchiveError("cannot open archive " + archivePath + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw ArchiveError(archivePath + " is not a regular file");
  TreeWriter writer(destDir, limits, std::max<uint64_t>(1, static_cast<uint64_t>(st.st_size)));
  ArchiveReader reader;
  if (archive_read_open_fd(reader.a, fd.get(), kChunkBytes) != ARCHIVE_OK)
    throw ArchiveError("not a tar or zip archive: " + reader.error());
  extractAll(reader, writer);
}

void extractArchive(std::string_view bytes, const std::string& destDir,
                    const ArchiveLimits& limits) {
  TreeWriter writer(destDir, limits, std::max<uint64_t>(1, bytes.size()));
  ArchiveReader reader;
  if (archive_read_open_memory(reader.a, bytes.data(), bytes.size()) != ARCHIVE_OK)
    throw ArchiveError("not a tar or zip archive: " + reader.error());
  extractAll(reader, writer);
}

void copyTree(const std::string& sourceDir, const std::string& destDir,
              const ArchiveLimits& limits) {
  Fd source(open(sourceDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!source)
    throw ArchiveError("cannot open directory " + sourceDir + ": " + std::strerror(errno));
  TreeWriter writer(destDir, limits, 0);
  copyDirectory(source.get(), "", limits, writer);
  writer.finish("directory " + sourceDir);
}

TreeStats sealTree(const std::string& dir) {
  Fd root(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root) base::throwSysError("open " + dir);
  TreeStats stats;
  sealDirectory(root.get(), dir, stats);
  return stats;
}

void removeTree(const std::string& path) {
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  size_t slash = trimmed.rfind('/');
  std::string parent =
      slash == std::string::npos ? "." : trimmed.substr(0, std::max<size_t>(slash, 1));
  std::string name = slash == std::string::npos ? trimmed : trimmed.substr(slash + 1);
  if (name.empty() || name == "." || name == "..")
    throw std::invalid_argument("removeTree: refusing to remove " + path);
  Fd parentFd(open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!parentFd) {
    if (errno == ENOENT) return;
    base::throwSysError("open " + parent);
  }
  removeEntry(parentFd.get(), name, trimmed);
}

}  // namespace supervisor
