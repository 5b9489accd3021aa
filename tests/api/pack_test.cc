// thatch::pack: a code directory as the archive a deploy sends, entry by
// entry as libarchive reads it back.
#include "api/pack.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <string>

#include "tests/testing.h"

namespace {

struct Entry {
  mode_t type;
  std::string symlink;  // its target, for a symlink
  bool operator==(const Entry&) const = default;
};

std::map<std::string, Entry> entriesOf(const std::string& tar) {
  std::map<std::string, Entry> entries;
  archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_all(a);
  EXPECT_EQ(archive_read_open_memory(a, tar.data(), tar.size()), ARCHIVE_OK);
  archive_entry* entry;
  while (archive_read_next_header(a, &entry) == ARCHIVE_OK) {
    const char* target = archive_entry_symlink(entry);
    entries[archive_entry_pathname(entry)] = {archive_entry_filetype(entry), target ? target : ""};
  }
  archive_read_free(a);
  return entries;
}

TEST(Pack, SymlinksGoAsSymlinksUnderTheirOwnNames) {
  testing_util::TempDir dir;
  testing_util::writeFile(dir.path() + "/a.py", "x = 1\n");
  ASSERT_EQ(mkdir((dir.path() + "/pkg").c_str(), 0755), 0);
  testing_util::writeFile(dir.path() + "/pkg/b.py", "y = 2\n");
  ASSERT_EQ(symlink("a.py", (dir.path() + "/link.py").c_str()), 0);
  ASSERT_EQ(symlink("/dev/null", (dir.path() + "/pkg/null").c_str()), 0);
  std::map<std::string, Entry> expected = {
      {"a.py", {AE_IFREG, ""}},     {"link.py", {AE_IFLNK, "a.py"}},       {"pkg/", {AE_IFDIR, ""}},
      {"pkg/b.py", {AE_IFREG, ""}}, {"pkg/null", {AE_IFLNK, "/dev/null"}},
  };
  EXPECT_EQ(entriesOf(thatch::pack::packDirectory(dir.path())), expected);
}

}  // namespace
