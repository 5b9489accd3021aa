// The files of thatchd's stores under its state directory (the function
// registry, the layers): staging directories and temporary files named
// `.tmp-*`, which the next start deletes; writes made durable; renames that
// never replace; version numbers as directory names. Crash safety:
// docs/registry.md.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/fd.h"

namespace supervisor {

// What a store's staging directories, temporary files and trees taken out
// of it are named: a start deletes every entry so named.
inline constexpr std::string_view kTmpPrefix = ".tmp-";

// Deletes a tree staged in, or taken out of, a store (a `.tmp-` directory,
// see Registry::takeRemoved()); one that cannot be deleted is reported on
// stderr and left for the store's next start, which deletes every `.tmp-`
// entry.
void removeStagedTree(const std::string& dir);

void fsyncPath(const std::string& path);

// Writes all of `contents` to `fd` (the file `path`) and fsyncs it.
void writeDurably(int fd, const std::string& path, const std::string& contents);

// Creates `path` (0600; it must not exist) with `contents`, durably.
void writeNewFile(const std::string& path, const std::string& contents);

// Creates directory `path` with `mode` if it is missing; true if it did.
bool makeDirectory(const std::string& path, mode_t mode);

// Renames without ever replacing what is at `to`.
void renameNoReplace(const std::string& from, const std::string& to);

// A `.tmp-XXXXXX` directory in `parent`, removed with its contents on
// destruction unless released: a crash instead leaves it for the next start.
class StagingDir {
 public:
  explicit StagingDir(const std::string& parent);
  ~StagingDir();
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;

  const std::string& path() const { return path_; }
  void release() { path_.clear(); }

 private:
  std::string path_;
};

// A `.tmp-XXXXXX` file in `parent`, unlinked on destruction unless renamed
// into place: a crash instead leaves it for the next start.
class TempFile {
 public:
  explicit TempFile(const std::string& parent);
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }
  void renameTo(const std::string& to);

 private:
  std::string path_;
  base::Fd fd_;
};

int64_t nowUnixMs();

// "1", "2", ...: no sign, no leading zero, so that each number has one name.
std::optional<uint64_t> parseVersion(std::string_view text);

// The names in `dir`, sorted.
std::vector<std::string> directoryNames(const std::string& dir);

// Renames `dir` over a fresh `.tmp-` directory of `parent` (rename(2)
// replaces an empty directory atomically) and returns that name: the tree
// is out of the store, to be deleted later. Not durable until `parent` and
// the directory `dir` was in are fsynced.
std::string moveOutOfStore(const std::string& dir, const std::string& parent);

// The last version a removed name had, kept in `markersDir/NAME` so that
// its numbers are never given out again: written durably (temporary file in
// `tmpParent`, fsync, rename, fsync of `markersDir`).
void writeRemovedMarker(const std::string& markersDir, const std::string& tmpParent,
                        const std::string& name, uint64_t lastVersion);

// Every marker in `markersDir`: name, last version. Entries that are not
// a valid name holding a version are reported on stderr and ignored.
std::vector<std::pair<std::string, uint64_t>> readRemovedMarkers(const std::string& markersDir);

// Functions and layers are named alike: 1 to 64 of [a-z0-9_-], starting
// with [a-z0-9]. Lowercase only, so that no two names differ by case alone.
bool isValidName(std::string_view name);

// "thatchd: registry: MESSAGE" on stderr.
void registryWarning(const std::string& message);

// A store's names and their loaded versions (the registry's functions, the
// layers): each entry has `versions`, a map from number to version.
template <typename Entry>
using StoreIndex = std::map<std::string, Entry>;

// The names with at least one loaded version, sorted.
template <typename Entry>
std::vector<std::string> namesIn(const StoreIndex<Entry>& index) {
  std::vector<std::string> names;
  for (const auto& [name, entry] : index)
    if (!entry.versions.empty()) names.push_back(name);
  return names;
}

// `name`'s loaded versions, ascending.
template <typename Entry>
auto versionsIn(const StoreIndex<Entry>& index, const std::string& name) {
  std::vector<typename decltype(Entry::versions)::mapped_type> result;
  if (auto it = index.find(name); it != index.end())
    for (const auto& [number, version] : it->second.versions) result.push_back(version);
  return result;
}

// `name`'s newest loaded version, or its version `number` (0: the newest).
template <typename Entry>
auto versionIn(const StoreIndex<Entry>& index, const std::string& name, uint64_t number = 0)
    -> std::optional<typename decltype(Entry::versions)::mapped_type> {
  auto it = index.find(name);
  if (it == index.end() || it->second.versions.empty()) return std::nullopt;
  if (number == 0) return it->second.versions.rbegin()->second;
  auto found = it->second.versions.find(number);
  if (found == it->second.versions.end()) return std::nullopt;
  return found->second;
}

}  // namespace supervisor
