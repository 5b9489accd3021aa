// Unpacking and copying untrusted code trees: what lands in the destination
// (exactly), what is refused, and that nothing ever lands outside it.
#include "supervisor/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "tests/supervisor/temp_tree.h"

namespace supervisor {
namespace {

namespace fs = std::filesystem;

using test_util::TempDir;

void writeFile(const std::string& path, const std::string& contents, mode_t mode = 0644) {
  std::ofstream(path, std::ios::binary) << contents;
  ASSERT_EQ(chmod(path.c_str(), mode), 0) << path;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every entry below `root` as "path" -> "d 755", "f 644 <contents>" or
// "l -> <target>", symlinks not followed.
std::map<std::string, std::string> snapshot(const std::string& root) {
  std::map<std::string, std::string> tree;
  for (const fs::directory_entry& entry : fs::recursive_directory_iterator(root)) {
    std::string path = entry.path().lexically_relative(root).string();
    struct stat st;
    if (lstat(entry.path().c_str(), &st) < 0) throw std::runtime_error("lstat " + path);
    char mode[8];
    snprintf(mode, sizeof mode, "%o", st.st_mode & 07777);
    if (S_ISLNK(st.st_mode)) {
      tree[path] = "l -> " + fs::read_symlink(entry.path()).string();
    } else if (S_ISDIR(st.st_mode)) {
      tree[path] = std::string("d ") + mode;
    } else if (S_ISREG(st.st_mode)) {
      tree[path] = std::string("f ") + mode + " " + readFile(entry.path());
    } else {
      tree[path] = "special";
    }
  }
  return tree;
}

std::set<std::string> namesIn(const std::string& dir) {
  std::set<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir))
    names.insert(entry.path().filename().string());
  return names;
}

// ---------------------------------------------------------------------------
// Archives built with libarchive's writer

enum class Format { kTar, kTarGz, kTarXz, kTarZstd, kZip };

struct Entry {
  std::string path;
  mode_t type = AE_IFREG;
  std::string data;
  uint64_t zeros = 0;  // zero bytes after `data`, for big bodies
  mode_t perm = 0644;
  std::string link;  // symlink target, or hard link target when `hardlink`
  bool hardlink = false;
};

Entry file(std::string path, std::string data, mode_t perm = 0644) {
  Entry e;
  e.path = std::move(path);
  e.data = std::move(data);
  e.perm = perm;
  return e;
}

Entry zeros(std::string path, uint64_t bytes) {
  Entry e;
  e.path = std::move(path);
  e.zeros = bytes;
  return e;
}

Entry dir(std::string path) {
  Entry e;
  e.path = std::move(path);
  e.type = AE_IFDIR;
  e.perm = 0755;
  return e;
}

Entry symlink(std::string path, std::string target) {
  Entry e;
  e.path = std::move(path);
  e.type = AE_IFLNK;
  e.perm = 0777;
  e.link = std::move(target);
  return e;
}

Entry hardlink(std::string path, std::string target) {
  Entry e;
  e.path = std::move(path);
  e.link = std::move(target);
  e.hardlink = true;
  return e;
}

Entry special(std::string path, mode_t type) {
  Entry e;
  e.path = std::move(path);
  e.type = type;
  return e;
}

la_ssize_t appendToString(archive*, void* out, const void* buffer, size_t size) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(buffer), size);
  return static_cast<la_ssize_t>(size);
}

void expectOk(int rc, archive* a, const char* what) {
  if (rc != ARCHIVE_OK) ADD_FAILURE() << what << ": " << archive_error_string(a);
}

std::string buildArchive(Format format, const std::vector<Entry>& entries,
                         const char* options = nullptr) {
  std::string out;
  archive* a = archive_write_new();
  if (format == Format::kZip) {
    expectOk(archive_write_set_format_zip(a), a, "zip");
  } else {
    expectOk(archive_write_set_format_pax_restricted(a), a, "pax");
  }
  if (format == Format::kTarGz) expectOk(archive_write_add_filter_gzip(a), a, "gzip");
  if (format == Format::kTarXz) expectOk(archive_write_add_filter_xz(a), a, "xz");
  if (format == Format::kTarZstd) expectOk(archive_write_add_filter_zstd(a), a, "zstd");
  if (options) {
    expectOk(archive_write_set_options(a, options), a, options);
    expectOk(archive_write_set_passphrase(a, "secret"), a, "passphrase");
  }
  expectOk(archive_write_set_bytes_in_last_block(a, 1), a, "no padding");
  expectOk(archive_write_open(a, &out, nullptr, appendToString, nullptr), a, "open");
  for (const Entry& e : entries) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_perm(entry, e.perm);
    if (e.hardlink) {
      archive_entry_set_filetype(entry, AE_IFREG);
      archive_entry_set_hardlink(entry, e.link.c_str());
      archive_entry_set_size(entry, 0);
    } else {
      archive_entry_set_filetype(entry, e.type);
      if (e.type == AE_IFLNK) archive_entry_set_symlink(entry, e.link.c_str());
      if (e.type == AE_IFCHR) archive_entry_set_rdev(entry, makedev(1, 3));
      if (e.type == AE_IFREG)
        archive_entry_set_size(entry, static_cast<la_int64_t>(e.data.size() + e.zeros));
    }
    expectOk(archive_write_header(a, entry), a, e.path.c_str());
    if (!e.data.empty()) archive_write_data(a, e.data.data(), e.data.size());
    std::vector<char> zero(1 << 20);
    for (uint64_t left = e.zeros; left > 0;) {
      size_t n = std::min<uint64_t>(left, zero.size());
      archive_write_data(a, zero.data(), n);
      left -= n;
    }
    archive_entry_free(entry);
  }
  expectOk(archive_write_close(a), a, "close");
  archive_write_free(a);
  return out;
}

// A test's world: `root` holds only `dest` (and whatever escaped into it).
struct Scene {
  TempDir root;
  std::string dest = root.path() + "/dest";
  Scene() { fs::create_directory(dest); }

  // Extracts `bytes` and returns the ArchiveError's message ("" if none).
  std::string extract(const std::string& bytes, const ArchiveLimits& limits = {}) {
    try {
      extractArchive(std::string_view(bytes), dest, limits);
      return "";
    } catch (const ArchiveError& e) {
      return e.what();
    }
  }

  void expectNothingOutside() const {
    EXPECT_EQ(namesIn(root.path()), std::set<std::string>{"dest"});
  }
};

// ---------------------------------------------------------------------------
// Good archives

class GoodArchiveTest : public ::testing::TestWithParam<Format> {};

TEST_P(GoodArchiveTest, ExtractsExactlyWhatItHolds) {
  std::vector<Entry> entries = {
      dir("./"),
      file("./handler.py", "def handler(event, context):\n    return event\n"),
      dir("pkg/"),
      file("pkg/__init__.py", ""),
      file("pkg/deep/er/mod.py", "X = 1\n", 0600),  // parents implied, mode opened up
      file("bin/run", "#!/bin/sh\n", 0700),
      file("setuid", "s", 04755),
      file("shared", "w", 0666),
      file("lib/libx.so.1", "ELF"),
      symlink("lib/libx.so", "libx.so.1"),
      symlink("pkg/deep/up", "../.."),
      symlink("current", "pkg/deep/er"),
  };
  std::string bytes = buildArchive(GetParam(), entries);
  std::map<std::string, std::string> expected = {
      {"handler.py", "f 644 def handler(event, context):\n    return event\n"},
      {"pkg", "d 755"},
      {"pkg/__init__.py", "f 644 "},
      {"pkg/deep", "d 755"},
      {"pkg/deep/er", "d 755"},
      {"pkg/deep/er/mod.py", "f 644 X = 1\n"},
      {"pkg/deep/up", "l -> ../.."},
      {"bin", "d 755"},
      {"bin/run", "f 755 #!/bin/sh\n"},
      {"setuid", "f 755 s"},
      {"shared", "f 644 w"},
      {"lib", "d 755"},
      {"lib/libx.so.1", "f 644 ELF"},
      {"lib/libx.so", "l -> libx.so.1"},
      {"current", "l -> pkg/deep/er"},
  };

  Scene fromMemory;
  EXPECT_EQ(fromMemory.extract(bytes), "");
  EXPECT_EQ(snapshot(fromMemory.dest), expected);
  fromMemory.expectNothingOutside();

  TempDir archives;
  std::string path = archives.path() + "/code.archive";
  writeFile(path, bytes);
  Scene fromFile;
  extractArchive(path, fromFile.dest, {});
  EXPECT_EQ(snapshot(fromFile.dest), expected);
  fromFile.expectNothingOutside();
}

INSTANTIATE_TEST_SUITE_P(Formats, GoodArchiveTest,
                         ::testing::Values(Format::kTar, Format::kTarGz, Format::kTarXz,
                                           Format::kTarZstd, Format::kZip));

TEST(ArchiveTest, RepetitiveSmallArchiveIsNoBomb) {
  // 200 KiB of one repeated line: far over 100:1, far under the exempt size.
  std::string text;
  while (text.size() < (200 << 10)) text += "0123456789abcdef\n";
  std::string bytes = buildArchive(Format::kTarGz, {file("data.csv", text)});
  ASSERT_GT(text.size(), 100 * bytes.size());
  Scene scene;
  EXPECT_EQ(scene.extract(bytes), "");
  EXPECT_EQ(readFile(scene.dest + "/data.csv"), text);
}

// ---------------------------------------------------------------------------
// Refused archives: the message names the problem, nothing escapes

struct Refusal {
  std::string name;
  Format format;
  std::vector<Entry> entries;
  std::string message;  // part of the ArchiveError's message
};

void PrintTo(const Refusal& refusal, std::ostream* out) {
  *out << refusal.name;
}

class RefusedArchiveTest : public ::testing::TestWithParam<Refusal> {};

TEST_P(RefusedArchiveTest, IsRefusedAndNothingEscapes) {
  const Refusal& refusal = GetParam();
  Scene scene;
  // Absolute entries aim into the scene, so that an escape would be seen.
  std::vector<Entry> entries = refusal.entries;
  for (Entry& e : entries) {
    if (e.path.rfind("ROOT", 0) == 0) e.path.replace(0, 4, scene.root.path());
    if (e.link.rfind("ROOT", 0) == 0) e.link.replace(0, 4, scene.root.path());
  }
  std::string message = scene.extract(buildArchive(refusal.format, entries));
  EXPECT_NE(message.find(refusal.message), std::string::npos) << "message: " << message;
  scene.expectNothingOutside();
}

INSTANTIATE_TEST_SUITE_P(
    Archives, RefusedArchiveTest,
    ::testing::Values(
        Refusal{"AbsolutePath", Format::kTar, {file("ROOT/escaped", "x")}, "absolute path"},
        Refusal{"DotDot", Format::kTar, {file("../escaped", "x")}, "'..' in path"},
        Refusal{"DotDotInside",
                Format::kTarGz,
                {file("a/b", "ok"), file("a/../../escaped", "x")},
                "'..' in path"},
        Refusal{"DotDotZip", Format::kZip, {file("a/../../escaped", "x")}, "'..' in path"},
        Refusal{"SymlinkToEtc", Format::kTar, {symlink("link", "/etc")}, "absolute path '/etc'"},
        Refusal{"SymlinkToScene",
                Format::kTar,
                {symlink("dirlink", "ROOT"), file("dirlink/escaped", "x")},
                "absolute path"},
        Refusal{"SymlinkUpAndOut",
                Format::kTar,
                {symlink("link", "../../escaped")},
                "points outside the tree"},
        Refusal{"SymlinkUpTooFar",
                Format::kZip,
                {symlink("sub/link", "../../escaped")},
                "points outside the tree"},
        Refusal{"SymlinkDotDotAfterName",
                Format::kTar,
                {dir("sub"), symlink("sub/up", ".."), symlink("out", "sub/up/..")},
                "'..' after a name"},
        Refusal{"FileThroughSymlinkDir",
                Format::kTar,
                {dir("sub"), symlink("dirlink", "sub"), file("dirlink/evil", "x")},
                "'dirlink' is a symlink"},
        Refusal{"FileThroughSymlinkDirZip",
                Format::kZip,
                {dir("sub"), symlink("dirlink", "sub"), file("dirlink/evil", "x")},
                "'dirlink' is a symlink"},
        Refusal{"FileOverSymlink",
                Format::kTar,
                {symlink("handler.py", "other.py"), file("handler.py", "x")},
                "duplicate entry"},
        Refusal{"DuplicateFile",
                Format::kTar,
                {file("a.py", "1"), file("a.py", "2")},
                "duplicate entry"},
        Refusal{
            "FileBelowFile", Format::kTar, {file("a", "1"), file("a/b", "2")}, "not a directory"},
        Refusal{"TooDeep",
                Format::kTar,
                {file(
                    [] {
                      std::string path;
                      for (int i = 0; i < 128; ++i) path += "d/";
                      return path + "f";
                    }(),
                    "x")},
                "nested deeper than 128 levels"},
        // Found by tests/fuzz's archive target: openat's ENAMETOOLONG was
        // thrown as a failure of the host.
        Refusal{"NameTooLong",
                Format::kZip,
                {file("a/" + std::string(256, 'n'), "x")},
                "a name longer than 255 bytes"},
        Refusal{"NameTooLongTar",
                Format::kTar,
                {file(std::string(300, 'n'), "x")},
                "a name longer than 255 bytes"},
        Refusal{"Hardlink", Format::kTar, {file("a", "1"), hardlink("b", "a")}, "hard link"},
        Refusal{"HardlinkOut", Format::kTar, {hardlink("passwd", "/etc/passwd")}, "hard link"},
        Refusal{"CharDevice", Format::kTar, {special("null", AE_IFCHR)}, "character device"},
        Refusal{"BlockDevice", Format::kTar, {special("disk", AE_IFBLK)}, "block device"},
        Refusal{"Fifo", Format::kTar, {special("pipe", AE_IFIFO)}, "fifo"},
        Refusal{"Empty", Format::kTar, {}, "holds no files"},
        Refusal{"OnlyDirectories", Format::kTarGz, {dir("a"), dir("a/b")}, "holds no files"},
        Refusal{"OnlySymlinks", Format::kZip, {symlink("a", "b")}, "holds no files"}),
    [](const ::testing::TestParamInfo<Refusal>& info) { return info.param.name; });

TEST(ArchiveTest, RefusesMoreFilesThanTheLimit) {
  std::vector<Entry> entries;
  for (int i = 0; i < 6; ++i) entries.push_back(file("f" + std::to_string(i), "x"));
  ArchiveLimits limits;
  limits.maxFiles = 5;
  Scene scene;
  EXPECT_NE(scene.extract(buildArchive(Format::kTar, entries), limits).find("more than 5 files"),
            std::string::npos);
  EXPECT_EQ(namesIn(scene.dest).size(), 5u);
  scene.expectNothingOutside();

  // Directories count too: an inode bomb needs no bytes.
  Scene dirs;
  EXPECT_NE(dirs.extract(buildArchive(Format::kTar, {file("a/b/c/d/e/f", "x")}), limits)
                .find("more than 5 files"),
            std::string::npos);
  dirs.expectNothingOutside();
}

TEST(ArchiveTest, RefusesAFileOverTheLimitByItsHeader) {
  ArchiveLimits limits;
  limits.maxFileBytes = 1 << 20;
  Scene scene;
  std::string message =
      scene.extract(buildArchive(Format::kTarGz, {zeros("big", (1 << 20) + 1)}), limits);
  EXPECT_NE(message.find("'big': larger than 1048576 bytes"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(scene.dest + "/big"));
  scene.expectNothingOutside();
}

void patch32(std::string& bytes, size_t offset, uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes[offset + i] = static_cast<char>(value >> (8 * i));
}

TEST(ArchiveTest, RefusesAFileLargerThanItsHeadersSay) {
  // A zip whose local header, data descriptor and central directory all
  // claim 100 bytes for 2 MiB of deflated zeros: libarchive hands out the
  // data anyway, and reports the mismatch only at the end of the entry.
  std::string bytes = buildArchive(Format::kZip, {zeros("big", 2 << 20)});
  int patched = 0;
  for (size_t i = 0; i + 30 <= bytes.size(); ++i) {
    uint32_t signature;
    std::memcpy(&signature, bytes.data() + i, 4);
    if (signature == 0x04034b50) patch32(bytes, i + 22, 100), ++patched;  // local header
    if (signature == 0x08074b50) patch32(bytes, i + 12, 100), ++patched;  // data descriptor
    if (signature == 0x02014b50) patch32(bytes, i + 24, 100), ++patched;  // central directory
  }
  ASSERT_GE(patched, 2);
  ArchiveLimits limits;
  limits.maxFileBytes = 1 << 20;
  limits.maxCompressionRatio = 0;  // this test is about the file limit alone
  Scene scene;
  std::string message = scene.extract(bytes, limits);
  EXPECT_NE(message.find("'big': larger than 1048576 bytes"), std::string::npos) << message;
  EXPECT_LE(fs::file_size(scene.dest + "/big"), 1u << 20);
  scene.expectNothingOutside();
}

TEST(ArchiveTest, RefusesMoreBytesInAllThanTheLimit) {
  ArchiveLimits limits;
  limits.maxTotalBytes = 1 << 20;
  std::string chunk(400 << 10, 'x');
  Scene scene;
  std::string message = scene.extract(
      buildArchive(Format::kTar, {file("a", chunk), file("b", chunk), file("c", chunk)}), limits);
  EXPECT_NE(message.find("'c': the files add up to more than 1048576 bytes"), std::string::npos)
      << message;
  uint64_t written = 0;
  for (const fs::directory_entry& entry : fs::directory_iterator(scene.dest))
    written += entry.file_size();
  EXPECT_LE(written, 1u << 20);
  scene.expectNothingOutside();
}

TEST(ArchiveTest, RefusesACompressionBomb) {
  std::string bytes = buildArchive(Format::kTarGz, {zeros("zeros", 50 << 20)});
  ASSERT_LT(bytes.size(), 500u << 10);  // so the ratio is well over 100
  Scene scene;
  std::string message = scene.extract(bytes);  // default limits: 64 MiB per file, ratio 100
  EXPECT_NE(message.find("'zeros': the archive expands to more than 100 times its size"),
            std::string::npos)
      << message;
  EXPECT_LE(fs::file_size(scene.dest + "/zeros"), 100 * bytes.size());
  scene.expectNothingOutside();

  // The same from a file: the ratio is to the file's size.
  TempDir archives;
  std::string path = archives.path() + "/bomb.tar.gz";
  writeFile(path, bytes);
  Scene fromFile;
  EXPECT_THROW(extractArchive(path, fromFile.dest, {}), ArchiveError);
  fromFile.expectNothingOutside();
}

TEST(ArchiveTest, RefusesEncryptedEntries) {
  std::string bytes =
      buildArchive(Format::kZip, {file("secret.py", "x = 1\n")}, "zip:encryption=zipcrypt");
  Scene scene;
  std::string message = scene.extract(bytes);
  EXPECT_NE(message.find("'secret.py': encrypted"), std::string::npos) << message;
  scene.expectNothingOutside();
}

TEST(ArchiveTest, RefusesWhatIsNoArchive) {
  std::mt19937 random(42);
  std::string garbage(4096, '\0');
  for (char& c : garbage) c = static_cast<char>(random());
  for (const std::string& bytes : {garbage, std::string(), std::string("PK\x03\x04 truncated")}) {
    Scene scene;
    EXPECT_NE(scene.extract(bytes).find("not a tar or zip archive"), std::string::npos);
    EXPECT_TRUE(namesIn(scene.dest).empty());
    scene.expectNothingOutside();
  }

  TempDir archives;
  Scene scene;
  EXPECT_THROW(extractArchive(archives.path() + "/missing.tar", scene.dest, {}), ArchiveError);
  EXPECT_THROW(extractArchive(archives.path(), scene.dest, {}), ArchiveError);
  ASSERT_EQ(mkfifo((archives.path() + "/fifo").c_str(), 0600), 0);
  EXPECT_THROW(extractArchive(archives.path() + "/fifo", scene.dest, {}), ArchiveError);
}

TEST(ArchiveTest, RefusesATruncatedArchive) {
  std::string text;
  std::mt19937 random(7);
  for (int i = 0; i < (256 << 10); ++i) text += static_cast<char>('a' + random() % 26);
  std::string bytes = buildArchive(Format::kTarGz, {file("a.py", text), file("b.py", text)});
  Scene scene;
  std::string message = scene.extract(bytes.substr(0, bytes.size() / 2));
  EXPECT_FALSE(message.empty());
  scene.expectNothingOutside();
}

TEST(ArchiveTest, WantsAnEmptyDestination) {
  Scene scene;
  writeFile(scene.dest + "/already", "x");
  EXPECT_THROW(extractArchive(std::string_view(buildArchive(Format::kTar, {file("a", "1")})),
                              scene.dest, {}),
               std::invalid_argument);
}

// ---------------------------------------------------------------------------
// copyTree

TEST(CopyTreeTest, CopiesFilesDirectoriesAndInsideSymlinks) {
  TempDir source;
  const std::string& s = source.path();
  fs::create_directories(s + "/pkg/sub");
  fs::create_directories(s + "/empty");
  writeFile(s + "/handler.py", "def handler(e, c): pass\n", 0600);
  writeFile(s + "/pkg/__init__.py", "");
  writeFile(s + "/pkg/sub/tool", "#!/bin/sh\n", 04775);
  fs::create_symlink("pkg/sub/tool", s + "/tool");
  fs::create_symlink("..", s + "/pkg/parent");
  fs::create_hard_link(s + "/handler.py", s + "/pkg/alias.py");  // copied as a file

  Scene scene;
  copyTree(s, scene.dest, {});
  std::map<std::string, std::string> expected = {
      {"handler.py", "f 644 def handler(e, c): pass\n"},
      {"empty", "d 755"},
      {"pkg", "d 755"},
      {"pkg/__init__.py", "f 644 "},
      {"pkg/alias.py", "f 644 def handler(e, c): pass\n"},
      {"pkg/parent", "l -> .."},
      {"pkg/sub", "d 755"},
      {"pkg/sub/tool", "f 755 #!/bin/sh\n"},
      {"tool", "l -> pkg/sub/tool"},
  };
  EXPECT_EQ(snapshot(scene.dest), expected);
  scene.expectNothingOutside();
}

std::string copyError(const std::string& source, const std::string& dest,
                      const ArchiveLimits& limits = {}) {
  try {
    copyTree(source, dest, limits);
    return "";
  } catch (const ArchiveError& e) {
    return e.what();
  }
}

TEST(CopyTreeTest, RefusesEscapingSymlinks) {
  for (const char* target : {"/etc", "../outside", "sub/../../outside"}) {
    TempDir source;
    writeFile(source.path() + "/handler.py", "");
    fs::create_directory(source.path() + "/sub");
    fs::create_symlink(target, source.path() + "/link");
    Scene scene;
    EXPECT_NE(copyError(source.path(), scene.dest).find("'link': symlink"), std::string::npos)
        << target;
    scene.expectNothingOutside();
  }
}

TEST(CopyTreeTest, RefusesFifosAndSockets) {
  TempDir source;
  writeFile(source.path() + "/handler.py", "");
  ASSERT_EQ(mkfifo((source.path() + "/pipe").c_str(), 0644), 0);
  Scene scene;
  // Would hang on open if the fifo were read.
  EXPECT_NE(copyError(source.path(), scene.dest).find("'pipe' is a fifo"), std::string::npos);
  scene.expectNothingOutside();

  TempDir withSocket;
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::string socketPath = withSocket.path() + "/sock";
  ASSERT_LT(socketPath.size(), sizeof address.sun_path);
  std::strcpy(address.sun_path, socketPath.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  close(fd);
  Scene socketScene;
  EXPECT_NE(copyError(withSocket.path(), socketScene.dest).find("'sock' is a socket"),
            std::string::npos);
}

TEST(CopyTreeTest, AppliesTheLimits) {
  TempDir source;
  for (int i = 0; i < 4; ++i) writeFile(source.path() + "/f" + std::to_string(i), "12345");
  ArchiveLimits few;
  few.maxFiles = 3;
  Scene tooMany;
  EXPECT_NE(copyError(source.path(), tooMany.dest, few).find("more than 3 files"),
            std::string::npos);
  ArchiveLimits small;
  small.maxFileBytes = 4;
  Scene tooBig;
  EXPECT_NE(copyError(source.path(), tooBig.dest, small).find("larger than 4 bytes"),
            std::string::npos);
  ArchiveLimits total;
  total.maxTotalBytes = 12;
  Scene tooMuch;
  EXPECT_NE(copyError(source.path(), tooMuch.dest, total).find("add up to more than 12"),
            std::string::npos);
}

TEST(CopyTreeTest, RefusesAMissingOrEmptySource) {
  TempDir source;
  Scene scene;
  EXPECT_NE(copyError(source.path() + "/missing", scene.dest).find("cannot open directory"),
            std::string::npos);
  fs::create_directory(source.path() + "/only-a-dir");
  EXPECT_NE(copyError(source.path(), scene.dest).find("holds no files"), std::string::npos);
}

// ---------------------------------------------------------------------------
// sealTree, removeTree

TEST(SealTreeTest, MakesEverythingReadOnlyAndCounts) {
  TempDir tree;
  const std::string& t = tree.path();
  fs::create_directories(t + "/a/b");
  writeFile(t + "/x.py", "12345");
  writeFile(t + "/a/b/run", "123", 0755);
  fs::create_symlink("x.py", t + "/link");
  TreeStats stats = sealTree(t);
  EXPECT_EQ(stats, (TreeStats{2, 2, 1, 8}));
  std::map<std::string, std::string> expected = {
      {"x.py", "f 444 12345"},  {"a", "d 555"},        {"a/b", "d 555"},
      {"a/b/run", "f 555 123"}, {"link", "l -> x.py"},
  };
  EXPECT_EQ(snapshot(t), expected);
  struct stat st;
  ASSERT_EQ(stat(t.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0555u);
}

TEST(RemoveTreeTest, RemovesASealedTreeWithoutPrivilege) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to hand the tree to another uid";
  TempDir parent;
  ASSERT_EQ(chmod(parent.path().c_str(), 0777), 0);
  std::string tree = parent.path() + "/tree";
  fs::create_directories(tree + "/a/b");
  writeFile(tree + "/a/b/f", "x");
  fs::create_symlink("/etc/passwd", tree + "/a/outside");  // must not be followed
  for (const auto& entry : fs::recursive_directory_iterator(tree))
    ASSERT_EQ(lchown(entry.path().c_str(), 65534, 65534), 0);
  ASSERT_EQ(lchown(tree.c_str(), 65534, 65534), 0);
  sealTree(tree);

  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // No capabilities after this: only the tree's own permissions count.
    if (setgroups(0, nullptr) < 0 || setresgid(65534, 65534, 65534) < 0 ||
        setresuid(65534, 65534, 65534) < 0)
      _exit(2);
    try {
      removeTree(tree);
    } catch (...) {
      _exit(1);
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_FALSE(fs::exists(fs::symlink_status(tree)));
  EXPECT_TRUE(fs::exists("/etc/passwd"));
}

TEST(RemoveTreeTest, IgnoresAMissingPath) {
  TempDir parent;
  EXPECT_NO_THROW(removeTree(parent.path() + "/missing"));
  EXPECT_NO_THROW(removeTree(parent.path() + "/missing/below"));
  EXPECT_THROW(removeTree("/"), std::invalid_argument);
}

}  // namespace
}  // namespace supervisor
