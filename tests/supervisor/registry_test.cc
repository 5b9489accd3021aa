// The function registry: deploys land as immutable numbered versions on
// disk, survive reopening, removal and crashes, and bad input is refused
// before anything is stored.
#include "supervisor/registry.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "tests/supervisor/temp_tree.h"

namespace supervisor {
namespace {

namespace fs = std::filesystem;

using test_util::TempDir;

void writeFile(const std::string& path, const std::string& contents) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << contents;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::set<std::string> namesIn(const std::string& dir) {
  std::set<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir))
    names.insert(entry.path().filename().string());
  return names;
}

mode_t modeOf(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) < 0) return 0;
  return st.st_mode & 07777;
}

la_ssize_t appendToString(archive*, void* out, const void* buffer, size_t size) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(buffer), size);
  return static_cast<la_ssize_t>(size);
}

// A .tar.gz of regular files, path -> contents.
std::string tarGz(const std::map<std::string, std::string>& files) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_add_filter_gzip(a);
  archive_write_open(a, &out, nullptr, appendToString, nullptr);
  for (const auto& [path, contents] : files) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, path.c_str());
    archive_entry_set_filetype(entry, AE_IFREG);
    archive_entry_set_perm(entry, 0644);
    archive_entry_set_size(entry, static_cast<la_int64_t>(contents.size()));
    archive_write_header(a, entry);
    archive_write_data(a, contents.data(), contents.size());
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

class RegistryTest : public ::testing::Test {
 protected:
  RegistryTest() {
    // Searchable, as thatchd's state directory must be for sandboxes.
    chmod(temp_.path().c_str(), 0711);
  }

  // A source directory holding `files`, path -> contents.
  std::string source(const std::map<std::string, std::string>& files) {
    std::string dir = temp_.path() + "/source" + std::to_string(++sources_);
    fs::create_directory(dir);
    for (const auto& [path, contents] : files) writeFile(dir + "/" + path, contents);
    return dir;
  }

  std::string deployError(Registry& registry, const std::string& name,
                          const FunctionConfig& config = {}) {
    try {
      registry.deployDirectory(name, source({{"handler.py", "x"}}), config);
      return "";
    } catch (const DeployError& e) {
      return e.what();
    }
  }

  TempDir temp_;
  std::string state_ = temp_.path() + "/state";
  std::string functions_ = state_ + "/functions";
  int sources_ = 0;
};

// ---------------------------------------------------------------------------
// Deploy and read back

TEST_F(RegistryTest, DeploysADirectoryAsAnImmutableVersion) {
  Registry registry(state_);
  int64_t before = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  FunctionConfig config;
  config.handler = "app.main.handle";
  FunctionVersion v = registry.deployDirectory(
      "hello", source({{"app/main.py", "def handle(e, c): return 1\n"}, {"app/__init__.py", ""}}),
      config);

  EXPECT_EQ(v.name, "hello");
  EXPECT_EQ(v.version, 1u);
  EXPECT_EQ(v.config, config);
  EXPECT_EQ(v.codeDir, functions_ + "/hello/1/code");
  EXPECT_EQ(v.fileCount, 2u);
  EXPECT_EQ(v.codeBytes, 27u);
  int64_t after = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  EXPECT_GE(v.createdUnixMs, before);
  EXPECT_LE(v.createdUnixMs, after);

  EXPECT_EQ(readFile(v.codeDir + "/app/main.py"), "def handle(e, c): return 1\n");
  EXPECT_EQ(namesIn(v.codeDir), std::set<std::string>{"app"});
  EXPECT_EQ(modeOf(v.codeDir), 0555u);
  EXPECT_EQ(modeOf(v.codeDir + "/app"), 0555u);
  EXPECT_EQ(modeOf(v.codeDir + "/app/main.py"), 0444u);
  EXPECT_EQ(modeOf(functions_ + "/hello/1/function.toml"), 0600u);
  EXPECT_EQ(namesIn(functions_ + "/hello/1"), (std::set<std::string>{"code", "function.toml"}));
  EXPECT_EQ(namesIn(functions_), (std::set<std::string>{".removed", "hello"}));
}

// Staging runs apart from the registry (thatchd does it on another thread):
// the version is given at commit, in commit order, and staged code that is
// never committed leaves nothing behind.
TEST_F(RegistryTest, StagedCodeGetsItsVersionWhenCommitted) {
  Registry registry(state_);
  StagingArea area = registry.stagingArea();
  auto first = area.directory(source({{"handler.py", "first"}}));
  auto second = area.directory(source({{"handler.py", "second"}}));
  { auto abandoned = area.directory(source({{"handler.py", "abandoned"}})); }
  EXPECT_EQ(registry.commit("hello", {}, *second).version, 1u);
  FunctionVersion v2 = registry.commit("hello", {}, *first);
  EXPECT_EQ(v2.version, 2u);
  EXPECT_EQ(readFile(v2.codeDir + "/handler.py"), "first");
  EXPECT_THROW(registry.commit("hello", {}, *first), std::logic_error);
  first.reset();
  second.reset();
  EXPECT_EQ(namesIn(functions_), (std::set<std::string>{".removed", "hello"}));
  // Code refused at its commit is handed out for deleting, as removed trees are.
  auto refused = area.directory(source({{"handler.py", "refused"}}));
  EXPECT_THROW(registry.commit("Bad", {}, *refused), DeployError);
  registry.discard(*refused);
  std::vector<std::string> discarded = registry.takeRemoved();
  ASSERT_EQ(discarded.size(), 1u);
  EXPECT_EQ(readFile(discarded[0] + "/code/handler.py"), "refused");
  refused.reset();  // deletes nothing now
  EXPECT_TRUE(fs::exists(discarded[0]));
  removeTree(discarded[0]);
}

TEST_F(RegistryTest, VersionsCountUpAndOldOnesStayAsTheyWere) {
  Registry registry(state_);
  FunctionVersion v1 = registry.deployDirectory("hello", source({{"handler.py", "one"}}), {});
  FunctionVersion v2 = registry.deployDirectory("hello", source({{"handler.py", "two"}}), {});
  FunctionVersion other = registry.deployDirectory("other", source({{"handler.py", "o"}}), {});
  EXPECT_EQ(v2.version, 2u);
  EXPECT_EQ(other.version, 1u);
  EXPECT_EQ(readFile(v1.codeDir + "/handler.py"), "one");
  EXPECT_EQ(readFile(v2.codeDir + "/handler.py"), "two");

  EXPECT_EQ(registry.list(), (std::vector<std::string>{"hello", "other"}));
  EXPECT_EQ(registry.versions("hello"), (std::vector<FunctionVersion>{v1, v2}));
  EXPECT_EQ(registry.latest("hello"), v2);
  EXPECT_EQ(registry.get("hello", 1), v1);
  EXPECT_EQ(registry.get("other", 1), other);
  EXPECT_EQ(registry.get("hello", 3), std::nullopt);
  EXPECT_EQ(registry.get("nope", 1), std::nullopt);
  EXPECT_EQ(registry.latest("nope"), std::nullopt);
  EXPECT_TRUE(registry.versions("nope").empty());
}

TEST_F(RegistryTest, SurvivesReopening) {
  FunctionConfig config;
  config.runtime = "python3.11-numpy";
  config.handler = "pkg.mod.run";
  config.memoryBytes = 512ull << 20;
  config.timeout = std::chrono::milliseconds(2500);
  config.concurrency = 4;
  config.env = {{"ZED", "last \"quoted\"\nline"},
                {"ALPHA", "ünïcode ✓"},
                {"EMPTY", ""},
                {"ODD", "''' \"\"\" \\ \x01\t\r\x7f"}};
  config.network = Network::kEgress;
  config.raw = true;
  config.tmpNoexec = true;
  std::vector<FunctionVersion> deployed;
  {
    Registry registry(state_);
    deployed.push_back(registry.deployDirectory("hello", source({{"pkg/mod.py", "a"}}), config));
    deployed.push_back(registry.deployDirectory("hello", source({{"pkg/mod.py", "b"}}), {}));
    registry.deployDirectory("other", source({{"handler.py", "o"}}), {});
  }
  Registry reopened(state_);
  EXPECT_EQ(reopened.list(), (std::vector<std::string>{"hello", "other"}));
  EXPECT_EQ(reopened.versions("hello"), deployed);
  EXPECT_EQ(reopened.get("hello", 1)->config.env, config.env);  // in their order
  EXPECT_EQ(reopened.deployDirectory("hello", source({{"pkg/mod.py", "c"}}), {}).version, 3u);
}

// function.toml written before `tmp_noexec` existed: the version loads,
// with /tmp executable; a mistyped one is a damaged version.
TEST_F(RegistryTest, AVersionStoredBeforeTmpNoexecLoads) {
  {
    Registry registry(state_);
    registry.deployDirectory("old", source({{"handler.py", "a"}}), {});
    registry.deployDirectory("old", source({{"handler.py", "b"}}), {});
  }
  for (const char* version : {"1", "2"}) {
    std::string path = functions_ + "/old/" + version + "/function.toml";
    std::string toml = readFile(path);
    size_t at = toml.find("tmp_noexec = false\n");
    ASSERT_NE(at, std::string::npos) << toml;
    chmod(path.c_str(), 0600);
    writeFile(path, toml.replace(at, 19, version[0] == '1' ? "" : "tmp_noexec = 1\n"));
  }
  Registry reopened(state_);
  ASSERT_EQ(reopened.versions("old").size(), 1u);
  EXPECT_EQ(reopened.versions("old")[0].version, 1u);
  EXPECT_FALSE(reopened.versions("old")[0].config.tmpNoexec);
}

TEST_F(RegistryTest, DeploysArchives) {
  Registry registry(state_);
  std::string bytes = tarGz({{"handler.py", "def handler(e, c): pass\n"}, {"lib/util.py", "u"}});
  FunctionVersion fromBytes = registry.deployArchiveBytes("zipped", bytes, {});
  EXPECT_EQ(readFile(fromBytes.codeDir + "/handler.py"), "def handler(e, c): pass\n");
  EXPECT_EQ(readFile(fromBytes.codeDir + "/lib/util.py"), "u");
  EXPECT_EQ(fromBytes.fileCount, 2u);

  std::string path = temp_.path() + "/code.tar.gz";
  writeFile(path, bytes);
  FunctionVersion fromFile = registry.deployArchive("zipped", path, {});
  EXPECT_EQ(fromFile.version, 2u);
  EXPECT_EQ(readFile(fromFile.codeDir + "/lib/util.py"), "u");
}

TEST_F(RegistryTest, RefusedCodeStoresNothingAndTakesNoVersion) {
  Registry registry(state_);
  try {
    registry.deployArchiveBytes("hello", tarGz({{"../evil.py", "x"}}), {});
    FAIL() << "deployed an archive with ../";
  } catch (const DeployError& e) {
    EXPECT_NE(std::string(e.what()).find("'../evil.py': '..' in path"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(registry.deployArchiveBytes("hello", "garbage", {}), DeployError);
  EXPECT_THROW(registry.deployArchive("hello", temp_.path() + "/missing.tar", {}), DeployError);
  EXPECT_THROW(registry.deployDirectory("hello", temp_.path() + "/missing", {}), DeployError);
  std::string withFifo = source({{"handler.py", "x"}});
  ASSERT_EQ(mkfifo((withFifo + "/pipe").c_str(), 0600), 0);
  EXPECT_THROW(registry.deployDirectory("hello", withFifo, {}), DeployError);

  Registry small(temp_.path() + "/small", ArchiveLimits{.maxFiles = 1});
  EXPECT_THROW(small.deployDirectory("hello", source({{"a.py", "a"}, {"b.py", "b"}}), {}),
               DeployError);

  EXPECT_EQ(namesIn(functions_), std::set<std::string>{".removed"});
  EXPECT_TRUE(registry.list().empty());
  EXPECT_EQ(registry.deployDirectory("hello", source({{"handler.py", "x"}}), {}).version, 1u);
  EXPECT_FALSE(fs::exists(temp_.path() + "/evil.py"));
}

// ---------------------------------------------------------------------------
// Remove

TEST_F(RegistryTest, RemovesEveryVersionAndNeverReusesTheirNumbers) {
  Registry registry(state_);
  FunctionVersion v1 = registry.deployDirectory("hello", source({{"handler.py", "1"}}), {});
  FunctionVersion v2 = registry.deployDirectory("hello", source({{"handler.py", "2"}}), {});
  registry.deployDirectory("other", source({{"handler.py", "o"}}), {});

  EXPECT_TRUE(registry.remove("hello"));
  EXPECT_EQ(registry.list(), std::vector<std::string>{"other"});
  EXPECT_TRUE(registry.versions("hello").empty());
  EXPECT_EQ(registry.latest("hello"), std::nullopt);
  EXPECT_FALSE(fs::exists(v1.codeDir));
  EXPECT_FALSE(fs::exists(v2.codeDir));
  // The tree is out of the registry, for the caller to delete.
  std::vector<std::string> removed = registry.takeRemoved();
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(fs::path(removed[0]).parent_path(), functions_);
  EXPECT_EQ(readFile(removed[0] + "/2/code/handler.py"), "2");
  EXPECT_TRUE(registry.takeRemoved().empty());
  removeTree(removed[0]);
  EXPECT_EQ(namesIn(functions_), (std::set<std::string>{".removed", "other"}));

  EXPECT_FALSE(registry.remove("hello"));
  EXPECT_FALSE(registry.remove("nope"));
  EXPECT_FALSE(registry.remove("../state"));
  EXPECT_FALSE(registry.remove(""));
  EXPECT_TRUE(fs::exists(state_));

  // A pool keyed by (name, version) can never mistake new code for old.
  EXPECT_EQ(registry.deployDirectory("hello", source({{"handler.py", "3"}}), {}).version, 3u);
  EXPECT_TRUE(registry.remove("hello"));
  for (const std::string& tree : registry.takeRemoved()) removeTree(tree);
  Registry reopened(state_);
  EXPECT_EQ(reopened.list(), std::vector<std::string>{"other"});
  EXPECT_EQ(reopened.deployDirectory("hello", source({{"handler.py", "4"}}), {}).version, 4u);
}

TEST_F(RegistryTest, ARemovedTreeNotTakenGoesWithTheRegistry) {
  {
    Registry registry(state_);
    registry.deployDirectory("hello", source({{"handler.py", "1"}}), {});
    EXPECT_TRUE(registry.remove("hello"));
    EXPECT_EQ(namesIn(functions_).size(), 2u);  // .removed and the tree
  }
  EXPECT_EQ(namesIn(functions_), std::set<std::string>{".removed"});
}

// ---------------------------------------------------------------------------
// Retention

TEST_F(RegistryTest, ADeployRemovesTheVersionsPastKeepVersions) {
  Registry registry(state_, {}, Retention{3, 0});
  for (int i = 1; i <= 6; ++i)
    registry.deployDirectory("hello", source({{"handler.py", std::to_string(i)}}), {});
  std::vector<uint64_t> kept;
  for (const FunctionVersion& v : registry.versions("hello")) kept.push_back(v.version);
  EXPECT_EQ(kept, (std::vector<uint64_t>{4, 5, 6}));
  EXPECT_EQ(namesIn(functions_ + "/hello"), (std::set<std::string>{"4", "5", "6"}));
  // Versions 1, 2 and 3, each out of the registry on its own.
  std::vector<std::string> removed = registry.takeRemoved();
  ASSERT_EQ(removed.size(), 3u);
  for (size_t i = 0; i < removed.size(); ++i) {
    EXPECT_EQ(fs::path(removed[i]).parent_path(), functions_);
    EXPECT_EQ(readFile(removed[i] + "/code/handler.py"), std::to_string(i + 1));
    removeTree(removed[i]);
  }
  // Their numbers stay taken, across a restart too.
  Registry reopened(state_, {}, Retention{3, 0});
  EXPECT_EQ(reopened.versions("hello").size(), 3u);
  EXPECT_EQ(reopened.deployDirectory("hello", source({{"handler.py", "7"}}), {}).version, 7u);
  EXPECT_EQ(reopened.versions("hello").front().version, 5u);
}

TEST_F(RegistryTest, AVersionInUseIsKeptUntilALaterDeploy) {
  Registry registry(state_, {}, Retention{2, 0});
  registry.deployDirectory("hello", source({{"handler.py", "1"}}), {});
  registry.deployDirectory("hello", source({{"handler.py", "2"}}), {});
  auto deploy = [&](const std::set<uint64_t>& inUse) {
    auto staged = registry.stagingArea().directory(source({{"handler.py", "n"}}));
    registry.commit("hello", {}, *staged, inUse);
    std::vector<uint64_t> kept;
    for (const FunctionVersion& v : registry.versions("hello")) kept.push_back(v.version);
    return kept;
  };
  EXPECT_EQ(deploy({1}), (std::vector<uint64_t>{1, 2, 3}));  // 1 still runs
  EXPECT_EQ(deploy({}), (std::vector<uint64_t>{3, 4}));
  EXPECT_EQ(deploy({3, 4}), (std::vector<uint64_t>{3, 4, 5}));
  EXPECT_EQ(deploy({5}), (std::vector<uint64_t>{5, 6}));
}

TEST_F(RegistryTest, ADeployOverMaxStoredIsRefusedAndChangesNothing) {
  const std::string code(100'000, 'x');
  FunctionVersion probe{"p", 1, {}, "", 0, code.size(), 1, {}};
  FunctionVersion small{"s", 1, {}, "", 0, 1, 1, {}};
  // Room for two versions of this code and a small one, not three.
  uint64_t max = 2 * storedBytesOf(probe) + storedBytesOf(small);
  Registry registry(state_, {}, Retention{0, max});
  registry.deployDirectory("big", source({{"handler.py", code}}), {});
  registry.deployDirectory("small", source({{"handler.py", "s"}}), {});
  registry.deployDirectory("big", source({{"handler.py", code}}), {});
  uint64_t stored = registry.storedBytes();
  EXPECT_EQ(stored, max);
  std::set<std::string> names = namesIn(functions_);
  try {
    registry.deployDirectory("big", source({{"handler.py", code}}), {});
    ADD_FAILURE() << "deployed over max_stored";
  } catch (const DeployError& e) {
    EXPECT_NE(std::string(e.what()).find("thatchd's registry is full"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("[registry] max_stored"), std::string::npos) << e.what();
  }
  EXPECT_EQ(registry.storedBytes(), stored);
  EXPECT_EQ(registry.versions("big").size(), 2u);
  EXPECT_EQ(namesIn(functions_), names);  // the staged code went too
  // Counted the same after a restart; room made by a remove is room.
  Registry reopened(state_, {}, Retention{0, max});
  EXPECT_EQ(reopened.storedBytes(), stored);
  EXPECT_TRUE(reopened.remove("small"));
  for (const std::string& tree : reopened.takeRemoved()) removeTree(tree);
  EXPECT_THROW(reopened.deployDirectory("big", source({{"handler.py", code}}), {}), DeployError);
  EXPECT_EQ(reopened.deployDirectory("small", source({{"handler.py", "t"}}), {}).version, 2u);
}

TEST_F(RegistryTest, RetentionMakesRoomForTheVersionThatReplacesAnother) {
  const std::string code(100'000, 'x');
  FunctionVersion probe{"p", 1, {}, "", 0, code.size(), 1, {}};
  // Two versions fit, three do not: keeping two, every deploy fits.
  Registry registry(state_, {}, Retention{2, 2 * storedBytesOf(probe)});
  for (int i = 1; i <= 5; ++i)
    EXPECT_EQ(registry.deployDirectory("big", source({{"handler.py", code}}), {}).version,
              uint64_t(i));
  EXPECT_EQ(registry.storedBytes(), 2 * storedBytesOf(probe));
}

// ---------------------------------------------------------------------------
// The state directory's lock

size_t openFds() {
  return static_cast<size_t>(
      std::distance(fs::directory_iterator("/proc/self/fd"), fs::directory_iterator()));
}

TEST_F(RegistryTest, OneStateDirLockAtATimeAndARefusedOneKeepsNoDescriptor) {
  size_t before = openFds();
  {
    StateDirLock first(state_);
    size_t held = openFds();
    try {
      StateDirLock second(state_);
      ADD_FAILURE() << "a second lock on " << state_;
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()),
                "another thatchd (or program embedding thatch) uses " + state_);
    }
    EXPECT_EQ(openFds(), held);
  }
  EXPECT_EQ(openFds(), before);
  StateDirLock again(state_);  // free once the first is gone
}

// ---------------------------------------------------------------------------
// Crashes and damage

TEST_F(RegistryTest, RemovesLeftoversOfInterruptedDeploysAndRemoves) {
  FunctionVersion v1;
  {
    Registry registry(state_);
    v1 = registry.deployDirectory("hello", source({{"handler.py", "good"}}), {});
  }
  // A deploy that died after sealing part of its tree...
  writeFile(functions_ + "/.tmp-aaaaaa/code/handler.py", "half");
  writeFile(functions_ + "/.tmp-aaaaaa/function.toml", "name = \"hello\"\nvers");
  sealTree(functions_ + "/.tmp-aaaaaa");
  // ... a remove that died before deleting, a marker never renamed, and a
  // first deploy of a new function that died before its rename.
  writeFile(functions_ + "/.tmp-bbbbbb/2/code/handler.py", "removed");
  sealTree(functions_ + "/.tmp-bbbbbb");
  writeFile(functions_ + "/.tmp-cccccc", "7\n");
  fs::create_directory(functions_ + "/fresh");

  Registry reopened(state_);
  EXPECT_EQ(namesIn(functions_), (std::set<std::string>{".removed", "fresh", "hello"}));
  EXPECT_EQ(reopened.list(), std::vector<std::string>{"hello"});
  EXPECT_EQ(reopened.versions("hello"), std::vector<FunctionVersion>{v1});
  EXPECT_EQ(readFile(v1.codeDir + "/handler.py"), "good");
  EXPECT_EQ(reopened.deployDirectory("hello", source({{"handler.py", "new"}}), {}).version, 2u);
  EXPECT_EQ(reopened.deployDirectory("fresh", source({{"handler.py", "f"}}), {}).version, 1u);
}

TEST_F(RegistryTest, SkipsDamagedVersionsButNeverReusesTheirNumbers) {
  FunctionVersion v1;
  {
    Registry registry(state_);
    v1 = registry.deployDirectory("hello", source({{"handler.py", "1"}}), {});
    registry.deployDirectory("hello", source({{"handler.py", "2"}}), {});
    registry.deployDirectory("hello", source({{"handler.py", "3"}}), {});
    registry.deployDirectory("hello", source({{"handler.py", "4"}}), {});
  }
  std::string dir = functions_ + "/hello/";
  writeFile(dir + "2/function.toml", "garbage [[[");
  std::string three = readFile(dir + "3/function.toml");
  writeFile(dir + "3/function.toml", three.replace(three.find("hello"), 5, "other"));
  removeTree(dir + "4/code");
  fs::create_directory(dir + "05");  // not a version's name
  fs::create_directory(functions_ + "/Bad-Name");

  ::testing::internal::CaptureStderr();
  Registry reopened(state_);
  std::string warnings = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(reopened.versions("hello"), std::vector<FunctionVersion>{v1});
  EXPECT_NE(warnings.find("skipping " + dir + "2"), std::string::npos) << warnings;
  EXPECT_NE(warnings.find("skipping " + dir + "3: it describes other version 3"), std::string::npos)
      << warnings;
  EXPECT_NE(warnings.find("skipping " + dir + "4: no code directory"), std::string::npos)
      << warnings;
  EXPECT_NE(warnings.find("ignoring " + dir + "05"), std::string::npos) << warnings;
  EXPECT_NE(warnings.find("ignoring " + functions_ + "/Bad-Name"), std::string::npos) << warnings;
  EXPECT_EQ(reopened.deployDirectory("hello", source({{"handler.py", "5"}}), {}).version, 5u);

  // Remove takes the damaged versions too.
  EXPECT_TRUE(reopened.remove("hello"));
  EXPECT_FALSE(fs::exists(functions_ + "/hello"));
}

// ---------------------------------------------------------------------------
// What a sandbox's uid sees

TEST_F(RegistryTest, SandboxUidCanReadTheCodeButNotTheConfigAndWriteNothing) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to become another uid";
  Registry registry(state_);
  FunctionConfig config;
  config.env = {{"SECRET", "s3cr3t"}};
  FunctionVersion v = registry.deployDirectory("hello", source({{"handler.py", "code"}}), config);
  std::string toml = functions_ + "/hello/1/function.toml";

  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // An unprivileged uid like a sandbox's host uid: no capabilities.
    if (setgroups(0, nullptr) < 0 || setresgid(65534, 65534, 65534) < 0 ||
        setresuid(65534, 65534, 65534) < 0)
      _exit(10);
    int code = open((v.codeDir + "/handler.py").c_str(), O_RDONLY);
    char buffer[4] = {};
    if (code < 0 || read(code, buffer, 4) != 4 || std::string(buffer, 4) != "code") _exit(11);
    if (open(toml.c_str(), O_RDONLY) >= 0 || errno != EACCES) _exit(12);
    if (open((v.codeDir + "/new.py").c_str(), O_WRONLY | O_CREAT, 0644) >= 0) _exit(13);
    if (open((v.codeDir + "/handler.py").c_str(), O_WRONLY) >= 0) _exit(14);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// ---------------------------------------------------------------------------
// Validation

TEST(ValidateFunctionNameTest, AcceptsLowercaseNamesUpTo64) {
  for (std::string name :
       std::vector<std::string>{"a", "0", "hello", "hello-world_2", "9lives", std::string(64, 'x')})
    EXPECT_NO_THROW(validateFunctionName(name)) << name;
}

TEST(ValidateFunctionNameTest, RefusesEverythingElse) {
  for (std::string name :
       {std::string(), std::string(65, 'x'), std::string(".."), std::string("."),
        std::string("a/b"), std::string("/"), std::string("Hello"), std::string("HELLO"),
        std::string("h\xc3\xa9llo"), std::string("-a"), std::string("_a"), std::string(".hidden"),
        std::string("a b"), std::string("a\n"), std::string("a\0b", 3), std::string("a.b")})
    EXPECT_THROW(validateFunctionName(name), DeployError) << name;
}

TEST_F(RegistryTest, BadNamesStoreNothing) {
  Registry registry(state_);
  EXPECT_NE(deployError(registry, "../escape").find("only lowercase letters"), std::string::npos);
  EXPECT_NE(deployError(registry, "").find("empty"), std::string::npos);
  EXPECT_NE(deployError(registry, std::string(65, 'a')).find("longer than 64"), std::string::npos);
  EXPECT_EQ(namesIn(functions_), std::set<std::string>{".removed"});
  EXPECT_FALSE(fs::exists(state_ + "/escape"));
}

FunctionConfig withHandler(std::string handler) {
  FunctionConfig config;
  config.handler = std::move(handler);
  return config;
}

TEST(ValidateFunctionConfigTest, Handlers) {
  for (const char* good :
       {"handler.handler", "pkg.mod.func", "_p.f", "a1.b2", "match.case", "Mod.Func"})
    EXPECT_NO_THROW(validateFunctionConfig(withHandler(good))) << good;
  for (const char* bad : {"handler", "", ".x", "x.", "a..b", "a.b-c", "1a.b", "a.1b", "class.f",
                          "mod.None", "a. b", "mod.h\xc3\xa9", "a.b/c"})
    EXPECT_THROW(validateFunctionConfig(withHandler(bad)), DeployError) << bad;
  EXPECT_THROW(validateFunctionConfig(withHandler("m." + std::string(300, 'f'))), DeployError);
}

std::string configError(const FunctionConfig& config) {
  try {
    validateFunctionConfig(config);
    return "";
  } catch (const DeployError& e) {
    return e.what();
  }
}

FunctionConfig withEnv(std::vector<std::pair<std::string, std::string>> env) {
  FunctionConfig config;
  config.env = std::move(env);
  return config;
}

TEST(ValidateFunctionConfigTest, EnvironmentVariables) {
  EXPECT_EQ(configError(withEnv({{"A", "1"},
                                 {"_x", "y"},
                                 {"MY_VAR", "caf\xc3\xa9 \xe2\x9c\x93"},
                                 {"PATH", "/bin"},
                                 {"EMPTY", ""},
                                 {"AWS", "no underscore"}})),
            "");
  for (const char* key : {"1A", "A-B", "", "A=B", "A B", "\xc3\xa9"})
    EXPECT_NE(configError(withEnv({{key, "v"}})).find("names are letters"), std::string::npos)
        << key;
  for (const char* key : {"AWS_REGION", "AWS_LAMBDA_FUNCTION_NAME", "LAMBDA_TASK_ROOT", "THATCH_X",
                          "PYTHONPATH", "PYTHONHOME", "_HANDLER", "_X_AMZN_TRACE_ID"})
    EXPECT_NE(configError(withEnv({{key, "v"}})).find("is reserved"), std::string::npos) << key;
  EXPECT_NE(configError(withEnv({{"A", "1"}, {"B", "2"}, {"A", "3"}})).find("set twice"),
            std::string::npos);
  EXPECT_NE(configError(withEnv({{"A", std::string("a\0b", 3)}})).find("UTF-8 text without NUL"),
            std::string::npos);
  for (const char* bad : {"\xff", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x9c"})  // invalid UTF-8
    EXPECT_NE(configError(withEnv({{"A", bad}})).find("UTF-8"), std::string::npos);

  // "K=" + value: 4096 bytes pass, 4097 do not.
  EXPECT_EQ(configError(withEnv({{"K", std::string(4094, 'v')}})), "");
  EXPECT_NE(configError(withEnv({{"K", std::string(4095, 'v')}})).find("at most 4096"),
            std::string::npos);
  std::vector<std::pair<std::string, std::string>> many;
  for (int i = 0; i < 100; ++i) many.emplace_back("VAR_" + std::to_string(i), std::string(40, 'v'));
  EXPECT_NE(configError(withEnv(many)).find("at most 4096"), std::string::npos);
}

TEST(ValidateFunctionConfigTest, RuntimeAndLimits) {
  FunctionConfig config;
  config.runtime = "";
  EXPECT_NE(configError(config).find("runtime is empty"), std::string::npos);
  config.runtime = "python 3";
  EXPECT_NE(configError(config).find("runtime"), std::string::npos);
  config.runtime = "python3.11-numpy";
  EXPECT_EQ(configError(config), "");
  config.memoryBytes = 1ull << 63;
  EXPECT_NE(configError(config).find("too large"), std::string::npos);
  config.memoryBytes = 0;
  config.timeout = std::chrono::milliseconds(-1);
  EXPECT_NE(configError(config).find("negative"), std::string::npos);
}

TEST_F(RegistryTest, BadConfigStoresNothing) {
  Registry registry(state_);
  EXPECT_NE(deployError(registry, "hello", withHandler("a..b")).find("handler"), std::string::npos);
  EXPECT_NE(deployError(registry, "hello", withEnv({{"AWS_REGION", "x"}})).find("reserved"),
            std::string::npos);
  EXPECT_EQ(namesIn(functions_), std::set<std::string>{".removed"});
  EXPECT_TRUE(registry.list().empty());
}

// ---------------------------------------------------------------------------
// Layers

FunctionConfig withLayers(std::vector<LayerRef> layers) {
  FunctionConfig config;
  config.layers = std::move(layers);
  return config;
}

TEST_F(RegistryTest, PublishesNumberedImmutableVersionsOfALayer) {
  Registry registry(state_);
  std::string layers = state_ + "/layers";
  LayerVersion v1 = registry.publishLayerDirectory(
      "deps", source({{"python/dep/__init__.py", "ONE = 1\n"}, {"bin/tool", "#!/bin/sh\n"}}));
  LayerVersion v2 =
      registry.publishLayerDirectory("deps", source({{"python/dep/__init__.py", "2"}}));
  LayerVersion other = registry.publishLayerDirectory("other", source({{"data.txt", "o"}}));
  EXPECT_EQ(v1.name, "deps");
  EXPECT_EQ(v1.version, 1u);
  EXPECT_EQ(v2.version, 2u);
  EXPECT_EQ(other.version, 1u);
  EXPECT_EQ(v1.codeDir, layers + "/deps/1/code");
  EXPECT_EQ(v1.fileCount, 2u);
  EXPECT_EQ(v1.codeBytes, 18u);
  EXPECT_EQ(readFile(v1.codeDir + "/python/dep/__init__.py"), "ONE = 1\n");
  EXPECT_EQ(readFile(v2.codeDir + "/python/dep/__init__.py"), "2");
  EXPECT_EQ(modeOf(v1.codeDir), 0555u);
  EXPECT_EQ(modeOf(v1.codeDir + "/python/dep/__init__.py"), 0444u);
  EXPECT_EQ(modeOf(layers), 0711u);
  EXPECT_EQ(modeOf(layers + "/deps/1"), 0711u);
  EXPECT_EQ(modeOf(layers + "/deps/1/layer.toml"), 0600u);
  EXPECT_EQ(namesIn(layers + "/deps/1"), (std::set<std::string>{"code", "layer.toml"}));
  EXPECT_EQ(namesIn(layers), (std::set<std::string>{".removed", "deps", "other"}));

  const LayerStore& store = registry.layers();
  EXPECT_EQ(store.list(), (std::vector<std::string>{"deps", "other"}));
  EXPECT_EQ(store.versions("deps"), (std::vector<LayerVersion>{v1, v2}));
  EXPECT_EQ(store.latest("deps"), v2);
  EXPECT_EQ(store.get("deps", 1), v1);
  EXPECT_EQ(store.get("deps", 3), std::nullopt);
  EXPECT_TRUE(store.versions("nope").empty());
  EXPECT_EQ(registry.storedBytes(), storedBytesOf(v1) + storedBytesOf(v2) + storedBytesOf(other));
}

TEST_F(RegistryTest, LayersSurviveReopeningAndTheirNumbersAreNeverReused) {
  std::vector<LayerVersion> published;
  {
    Registry registry(state_);
    published.push_back(registry.publishLayerDirectory("deps", source({{"a", "1"}})));
    published.push_back(registry.publishLayerDirectory("deps", source({{"a", "2"}})));
    registry.publishLayerDirectory("gone", source({{"a", "g"}}));
    EXPECT_TRUE(registry.removeLayer("gone"));
    EXPECT_FALSE(registry.removeLayer("gone"));
    EXPECT_FALSE(registry.removeLayer("nope"));
    EXPECT_FALSE(registry.removeLayer("../functions"));
    std::vector<std::string> removed = registry.takeRemoved();
    ASSERT_EQ(removed.size(), 1u);
    EXPECT_EQ(fs::path(removed[0]).parent_path(), state_ + "/layers");
    EXPECT_EQ(readFile(removed[0] + "/1/code/a"), "g");
    removeTree(removed[0]);
  }
  Registry reopened(state_);
  EXPECT_EQ(reopened.layers().list(), std::vector<std::string>{"deps"});
  EXPECT_EQ(reopened.layers().versions("deps"), published);
  EXPECT_EQ(reopened.publishLayerDirectory("deps", source({{"a", "3"}})).version, 3u);
  EXPECT_EQ(reopened.publishLayerDirectory("gone", source({{"a", "h"}})).version, 2u);
  EXPECT_EQ(reopened.storedBytes(), storedBytesOf(published[0]) + storedBytesOf(published[1]) +
                                        storedBytesOf(*reopened.layers().get("deps", 3)) +
                                        storedBytesOf(*reopened.layers().get("gone", 2)));
}

TEST_F(RegistryTest, AFunctionKeepsItsLayersInOrderAcrossARestart) {
  FunctionVersion deployed;
  LayerVersion deps, shared;
  {
    Registry registry(state_);
    deps = registry.publishLayerDirectory("deps", source({{"a", "1"}}));
    registry.publishLayerDirectory("shared", source({{"b", "1"}}));
    shared = registry.publishLayerDirectory("shared", source({{"b", "2"}}));
    deployed = registry.deployDirectory("app", source({{"handler.py", "x"}}),
                                        withLayers({{"shared", 2}, {"deps", 1}}));
    EXPECT_EQ(deployed.layerDirs, (std::vector<std::string>{shared.codeDir, deps.codeDir}));
    // Without layers the file is as it was before them.
    registry.deployDirectory("plain", source({{"handler.py", "x"}}), {});
  }
  EXPECT_NE(readFile(functions_ + "/app/1/function.toml").find("layers = [ 'shared:2', 'deps:1' ]"),
            std::string::npos)
      << readFile(functions_ + "/app/1/function.toml");
  EXPECT_EQ(readFile(functions_ + "/plain/1/function.toml").find("layers"), std::string::npos);
  Registry reopened(state_);
  EXPECT_EQ(reopened.latest("app"), deployed);
  EXPECT_TRUE(reopened.latest("plain")->layerDirs.empty());
}

TEST_F(RegistryTest, ADeployNamingALayerThatIsNotStoredIsRefusedAndStoresNothing) {
  Registry registry(state_);
  registry.publishLayerDirectory("deps", source({{"a", "1"}}));
  registry.publishLayerDirectory("deps", source({{"a", "2"}}));
  EXPECT_EQ(deployError(registry, "app", withLayers({{"ghost", 1}})),
            "there is no layer named 'ghost'");
  EXPECT_EQ(deployError(registry, "app", withLayers({{"deps", 1}, {"deps2", 7}})),
            "there is no layer named 'deps2'");
  EXPECT_EQ(deployError(registry, "app", withLayers({{"deps", 3}})),
            "layer 'deps' has no version 3 (its versions: 1, 2)");
  // Staged apart, as thatchd does: the commit checks too.
  auto staged = registry.stagingArea().directory(source({{"handler.py", "x"}}));
  EXPECT_THROW(registry.commit("app", withLayers({{"ghost", 1}}), *staged), DeployError);
  registry.discard(*staged);
  for (const std::string& tree : registry.takeRemoved()) removeTree(tree);
  EXPECT_EQ(namesIn(functions_), std::set<std::string>{".removed"});
  EXPECT_TRUE(registry.list().empty());
  // No number was taken.
  EXPECT_EQ(
      registry.deployDirectory("app", source({{"handler.py", "x"}}), withLayers({{"deps", 2}}))
          .version,
      1u);
}

TEST_F(RegistryTest, ALayerIsNotRemovedWhileAStoredFunctionVersionUsesIt) {
  Registry registry(state_);
  LayerVersion deps = registry.publishLayerDirectory("deps", source({{"a", "1"}}));
  registry.publishLayerDirectory("deps", source({{"a", "2"}}));
  registry.deployDirectory("app", source({{"handler.py", "1"}}), withLayers({{"deps", 1}}));
  registry.deployDirectory("app", source({{"handler.py", "2"}}), {});
  registry.deployDirectory("app", source({{"handler.py", "3"}}), withLayers({{"deps", 2}}));
  registry.deployDirectory("web", source({{"handler.py", "w"}}), withLayers({{"deps", 2}}));
  try {
    registry.removeLayer("deps");
    ADD_FAILURE() << "removed a layer in use";
  } catch (const DeployError& e) {
    EXPECT_EQ(std::string(e.what()),
              "layer 'deps' is used by function 'app' versions 1, 3; 'web' version 1: remove the "
              "function, or deploy it without the layer until the versions that use it are past "
              "[registry] keep_versions");
  }
  EXPECT_EQ(registry.layers().versions("deps").size(), 2u);
  EXPECT_TRUE(fs::exists(deps.codeDir + "/a"));
  EXPECT_TRUE(registry.takeRemoved().empty());

  // Once no stored version uses it, it goes.
  EXPECT_TRUE(registry.remove("app"));
  EXPECT_THROW(registry.removeLayer("deps"), DeployError);
  EXPECT_TRUE(registry.remove("web"));
  EXPECT_TRUE(registry.removeLayer("deps"));
  EXPECT_FALSE(fs::exists(state_ + "/layers/deps"));
  for (const std::string& tree : registry.takeRemoved()) removeTree(tree);
  EXPECT_EQ(deployError(registry, "app", withLayers({{"deps", 2}})),
            "there is no layer named 'deps'");
}

TEST_F(RegistryTest, AFunctionVersionWhoseLayerDidNotLoadIsSkipped) {
  {
    Registry registry(state_);
    registry.publishLayerDirectory("deps", source({{"a", "1"}}));
    registry.deployDirectory("app", source({{"handler.py", "1"}}), withLayers({{"deps", 1}}));
    registry.deployDirectory("app", source({{"handler.py", "2"}}), {});
  }
  writeFile(state_ + "/layers/deps/1/layer.toml", "garbage [[[");
  ::testing::internal::CaptureStderr();
  Registry reopened(state_);
  std::string warnings = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(reopened.layers().list().empty());
  ASSERT_EQ(reopened.versions("app").size(), 1u);
  EXPECT_EQ(reopened.versions("app")[0].version, 2u);
  EXPECT_NE(warnings.find("skipping layer " + state_ + "/layers/deps/1"), std::string::npos)
      << warnings;
  EXPECT_NE(warnings.find("skipping " + functions_ + "/app/1: there is no layer named 'deps'"),
            std::string::npos)
      << warnings;
  // Numbers stay taken for both.
  EXPECT_EQ(reopened.publishLayerDirectory("deps", source({{"a", "2"}})).version, 2u);
  EXPECT_EQ(reopened.deployDirectory("app", source({{"handler.py", "3"}}), {}).version, 3u);
}

TEST_F(RegistryTest, LeftoversOfInterruptedPublishesAreRemoved) {
  {
    Registry registry(state_);
    registry.publishLayerDirectory("deps", source({{"a", "1"}}));
  }
  std::string layers = state_ + "/layers";
  writeFile(layers + "/.tmp-aaaaaa/code/a", "half");
  sealTree(layers + "/.tmp-aaaaaa");
  writeFile(layers + "/.tmp-bbbbbb", "3\n");
  Registry reopened(state_);
  EXPECT_EQ(namesIn(layers), (std::set<std::string>{".removed", "deps"}));
  EXPECT_EQ(reopened.layers().versions("deps").size(), 1u);
}

TEST_F(RegistryTest, LayersCountAgainstMaxStored) {
  const std::string code(100'000, 'x');
  LayerVersion probe{"p", 1, "", 0, code.size(), 1};
  Registry registry(state_, {}, Retention{0, storedBytesOf(probe) + 50'000});
  registry.publishLayerDirectory("big", source({{"a", code}}));
  auto staged = registry.layerStagingArea().directory(source({{"a", code}}));
  try {
    registry.publishLayer("big", *staged);
    ADD_FAILURE() << "published over max_stored";
  } catch (const DeployError& e) {
    EXPECT_NE(std::string(e.what()).find("thatchd's registry is full"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(registry.deployDirectory("app", source({{"handler.py", code}}), {}), DeployError);
  registry.discard(*staged);
  for (const std::string& tree : registry.takeRemoved()) removeTree(tree);
  EXPECT_EQ(registry.layers().versions("big").size(), 1u);
  EXPECT_EQ(namesIn(state_ + "/layers"), (std::set<std::string>{".removed", "big"}));
}

TEST_F(RegistryTest, SandboxUidCanReadALayerButWriteNothing) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to become another uid";
  Registry registry(state_);
  LayerVersion v = registry.publishLayerDirectory("deps", source({{"python/m.py", "code"}}));
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (setgroups(0, nullptr) < 0 || setresgid(65534, 65534, 65534) < 0 ||
        setresuid(65534, 65534, 65534) < 0)
      _exit(10);
    int file = open((v.codeDir + "/python/m.py").c_str(), O_RDONLY);
    char buffer[4] = {};
    if (file < 0 || read(file, buffer, 4) != 4 || std::string(buffer, 4) != "code") _exit(11);
    if (open((v.codeDir + "/python/new.py").c_str(), O_WRONLY | O_CREAT, 0644) >= 0) _exit(12);
    std::string toml = state_ + "/layers/deps/1/layer.toml";
    if (open(toml.c_str(), O_RDONLY) >= 0 || errno != EACCES) _exit(13);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(ValidateFunctionConfigTest, Layers) {
  FunctionConfig config;
  config.layers = {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}, {"e", 5}};
  EXPECT_EQ(configError(config), "");
  config.layers.push_back({"f", 6});
  EXPECT_EQ(configError(config), "6 layers: a function may use at most 5");
  config.layers = {{"Deps", 1}};
  EXPECT_NE(configError(config).find("layer name 'Deps'"), std::string::npos);
  config.layers = {{"", 1}};
  EXPECT_EQ(configError(config), "the layer name is empty");
  config.layers = {{"deps", 0}};
  EXPECT_EQ(configError(config), "layer 'deps': versions count from 1");
  config.layers = {{"deps", 1}, {"other", 1}, {"deps", 2}};
  EXPECT_EQ(configError(config),
            "layer 'deps' is named twice: a function uses one version of each layer");
}

TEST(LayerRefTest, ReadsAndWritesNameColonVersion) {
  EXPECT_EQ(thatch::layerRefText({"deps", 12}), "deps:12");
  EXPECT_EQ(thatch::layerRefNamed("deps:12"), (LayerRef{"deps", 12}));
  EXPECT_EQ(thatch::layerRefNamed("a:b:3"), (LayerRef{"a:b", 3}));  // the name is checked later
  for (const char* bad : {"", "deps", "deps:", ":1", "deps:0", "deps:01", "deps:-1", "deps:1x",
                          "deps: 1", "deps:99999999999999999999"})
    EXPECT_EQ(thatch::layerRefNamed(bad), std::nullopt) << bad;
}

}  // namespace
}  // namespace supervisor
