// Code trees from untrusted input: unpacking archives and copying directories
// into a fresh tree that cannot point or reach outside itself, sealing it
// read-only and durable, and removing it. Rules and limits: docs/registry.md.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace supervisor {

struct ArchiveLimits {
  uint64_t maxFiles = 10000;              // entries of any kind: files, directories, symlinks
  uint64_t maxTotalBytes = 256ull << 20;  // uncompressed
  uint64_t maxFileBytes = 64ull << 20;
  double maxCompressionRatio = 100;  // uncompressed / archive size; 0: no ratio limit
  // Output up to this size is never refused for its ratio: a few KiB of
  // repetitive text compress far beyond 100:1 and are no bomb.
  uint64_t ratioExemptBytes = 1ull << 20;
};

// Bad input: the message names the entry (or the source file) at fault.
class ArchiveError : public std::runtime_error {
 public:
  using runtime_error::runtime_error;
};

// Extracts a tar (plain, gzip, bzip2, xz, lzma or zstd) or zip archive,
// recognised by its content, into `destDir`, an existing empty directory.
// Refuses absolute paths, `..`, entries below a symlink, symlinks that could
// resolve outside the tree, hard links, device/fifo/socket entries, encrypted
// entries, duplicates, and anything over `limits` (counted on the bytes
// actually written, not on what headers claim). Modes become 0755 or 0644
// (setuid, setgid, sticky and group/other write are dropped). An archive
// without a regular file is an error. Throws ArchiveError for bad input and
// std::system_error for failures of the host; either way `destDir` may be
// partly filled and the caller removes it (removeTree).
void extractArchive(const std::string& archivePath, const std::string& destDir,
                    const ArchiveLimits& limits);
void extractArchive(std::string_view bytes, const std::string& destDir,
                    const ArchiveLimits& limits);

// Copies the tree under `sourceDir` into `destDir` (existing, empty) with
// the rules and limits of extractArchive (no ratio). Symlinks are copied as
// symlinks and must stay inside the tree; fifos, devices and sockets are an
// error. Nothing in the source is followed except `sourceDir` itself.
void copyTree(const std::string& sourceDir, const std::string& destDir,
              const ArchiveLimits& limits);

struct TreeStats {
  uint64_t files = 0;        // regular files
  uint64_t directories = 0;  // below the root
  uint64_t symlinks = 0;
  uint64_t bytes = 0;  // of the regular files
  bool operator==(const TreeStats&) const = default;
};

// Makes the tree at `dir` read-only (files 0444 or 0555, directories 0555,
// `dir` included) and fsyncs every file and directory in it, children before
// parents, so that renaming `dir` into place afterwards publishes a complete
// tree even across a crash.
TreeStats sealTree(const std::string& dir);

// Removes `path` and everything below it without following symlinks, making
// read-only directories writable first (so that it works without
// CAP_DAC_OVERRIDE). A missing `path` is not an error.
void removeTree(const std::string& path);

}  // namespace supervisor
