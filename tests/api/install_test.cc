// `make install` into a temporary prefix, checked the way its users meet
// it: the files and their modes, the systemd unit, and examples/embed
// built against the installed tree alone (pkg-config) and run against a
// real thatchd.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "tests/daemon.h"
#include "tests/testing.h"

namespace {

namespace fs = std::filesystem;
using testing_util::CommandResult;
using testing_util::readFile;
using testing_util::run;

unsigned mode(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

// The lines of make's output that compile, link or archive.
std::string buildSteps(const std::string& makeOutput) {
  std::istringstream lines(makeOutput);
  std::string steps;
  for (std::string line; std::getline(lines, line);)
    if (line.find(" -c ") != std::string::npos || line.find(" -o ") != std::string::npos ||
        line.find(" rcs ") != std::string::npos)
      steps += line + "\n";
  return steps;
}

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string word; in >> word;) out.push_back(word);
  return out;
}

class Install : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (thatchd)";
  }

  // make in the repository, with the build directory these tests came from
  // whatever its name, and without the flags of a make that may run us.
  CommandResult make(const std::string& target, const std::vector<std::string>& flags = {}) {
    std::vector<std::string> argv = {"/usr/bin/env", "-u", "MAKEFLAGS", "-u", "MFLAGS"};
    argv.insert(argv.end(), {"-u", "MAKELEVEL", "make", "-C", repo_, "BUILD=" + build_});
    argv.push_back("PREFIX=" + prefix());
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back(target);
    return run(argv);
  }

  std::string prefix() const { return prefixDir_.path(); }

  const std::string repo_ = testing_util::repoRoot();
  const std::string build_ =
      fs::relative(fs::canonical(testing_util::testBinDir() + "/.."), repo_).string();
  testing_util::TempDir prefixDir_{"thatch-install"};
};

TEST_F(Install, InstalledTreeBuildsAndRunsAnEmbeddingProgram) {
  // A test must not build behind its user's back (nor race a build running
  // beside it): the tree must be up to date, and install then only copies.
  CommandResult dryRun = make("install", {"-n"});
  ASSERT_EQ(dryRun.exitCode, 0) << dryRun.err;
  ASSERT_EQ(buildSteps(dryRun.out), "") << "the build is not up to date: run `make all` first";
  CommandResult install = make("install");
  ASSERT_EQ(install.exitCode, 0) << install.out << install.err;
  EXPECT_EQ(buildSteps(install.out), "");

  // thatchd and the in-process mode find thatch-zygote beside themselves.
  for (const char* program : {"thatchd", "thatch", "thatch-run", "thatch-zygote"}) {
    std::string installed = prefix() + "/bin/" + program;
    EXPECT_EQ(mode(installed), 0755u) << installed;
    EXPECT_TRUE(readFile(installed) == readFile(repo_ + "/" + build_ + "/bin/" + program))
        << installed << " differs from the build's";
  }
  EXPECT_EQ(mode(prefix() + "/lib/libthatch.a"), 0644u);
  for (const char* header : {"thatch.h", "types.h"}) {
    std::string installed = prefix() + "/include/thatch/" + header;
    EXPECT_EQ(mode(installed), 0644u) << installed;
    EXPECT_EQ(readFile(installed), readFile(repo_ + "/include/thatch/" + header)) << installed;
  }

  std::string pc = prefix() + "/lib/pkgconfig/thatch.pc";
  EXPECT_EQ(mode(pc), 0644u);
  EXPECT_NE(readFile(pc).find("prefix=" + prefix() + "\n"), std::string::npos) << readFile(pc);

  // A self-contained prefix keeps its config inside (/usr/local's goes to /etc).
  std::string config = prefix() + "/etc/thatch/thatchd.toml";
  EXPECT_EQ(mode(config), 0644u);
  EXPECT_EQ(readFile(config), readFile(repo_ + "/scripts/thatchd.toml"));
  CommandResult check = run({prefix() + "/bin/thatchd", "--check-config", config});
  EXPECT_EQ(check.exitCode, 0) << check.err;

  std::string unit = prefix() + "/lib/systemd/system/thatchd.service";
  EXPECT_EQ(mode(unit), 0644u);
  std::string unitText = readFile(unit);
  EXPECT_NE(unitText.find("\nDelegate=yes\n"), std::string::npos) << unitText;
  EXPECT_NE(unitText.find("\nExecStart=" + prefix() + "/bin/thatchd --config " + config + "\n"),
            std::string::npos)
      << unitText;
  if (access("/usr/bin/systemd-analyze", X_OK) == 0) {
    // It exits 0 on unknown keys and bad values, but says so on stderr.
    CommandResult verify = run({"/usr/bin/systemd-analyze", "verify", unit});
    EXPECT_EQ(verify.exitCode, 0) << verify.err;
    EXPECT_EQ(verify.err, "");
  }

  // The example, built from the installed header and library only.
  CommandResult flags = run({"/usr/bin/env", "PKG_CONFIG_PATH=" + prefix() + "/lib/pkgconfig",
                             "pkg-config", "--cflags", "--libs", "--static", "thatch"});
  ASSERT_EQ(flags.exitCode, 0) << flags.err;
  std::string embed = prefix() + "/embed";
  std::vector<std::string> compile = {"/usr/bin/env", "g++", "-std=c++20", "-Wall", "-Wextra"};
  compile.insert(compile.end(), {"-Werror", repo_ + "/examples/embed/embed.cc", "-o", embed});
  for (const std::string& flag : words(flags.out)) compile.push_back(flag);
  CommandResult compiled = run(compile);
  ASSERT_EQ(compiled.exitCode, 0) << flags.out << "\n" << compiled.err;

  testing_util::TestDaemon daemon;
  CommandResult embedded =
      run({embed, "--socket", daemon.socketPath(), "-n", "4", repo_ + "/examples/hello"});
  EXPECT_EQ(embedded.exitCode, 0) << embedded.out << embedded.err;
  EXPECT_NE(embedded.out.find("deployed embed-example version 1 from"), std::string::npos)
      << embedded.out;
  // 3 calls one after another, then 4 at once; results are compact JSON.
  for (int call = 1; call <= 7; ++call)
    EXPECT_NE(embedded.out.find("call " + std::to_string(call) + ": ok, "), std::string::npos)
        << embedded.out;
  for (int call = 1; call <= 7; ++call)
    EXPECT_NE(embedded.out.find(R"({"greeting":"hello, call )" + std::to_string(call) + R"("})"),
              std::string::npos)
        << embedded.out;
  EXPECT_NE(embedded.out.find("4 at once: 4 ok"), std::string::npos) << embedded.out;

  // A reinstall keeps the operator's config; uninstall keeps it too.
  testing_util::writeFile(config, "# edited by its operator\n");
  install = make("install");
  ASSERT_EQ(install.exitCode, 0) << install.err;
  EXPECT_EQ(readFile(config), "# edited by its operator\n");
  CommandResult uninstall = make("uninstall");
  ASSERT_EQ(uninstall.exitCode, 0) << uninstall.err;
  for (const char* gone :
       {"bin/thatchd", "bin/thatch-zygote", "lib/libthatch.a", "lib/pkgconfig/thatch.pc",
        "include/thatch", "lib/systemd/system/thatchd.service"})
    EXPECT_FALSE(testing_util::exists(prefix() + "/" + gone)) << gone;
  EXPECT_TRUE(testing_util::exists(config));
}

}  // namespace
