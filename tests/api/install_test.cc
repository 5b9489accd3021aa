// `make install` into a temporary prefix, checked the way its users meet
// it: the files and their modes, the systemd unit, and examples/embed's
// two programs built against the installed tree alone (pkg-config): a
// client run against a real thatchd, and a program running thatch in
// process.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "sandbox/cgroup.h"
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

  // `pkg-config --cflags --libs --static PACKAGE` against the installed tree.
  std::string pkgConfig(const std::string& package) {
    CommandResult flags = run({"/usr/bin/env", "PKG_CONFIG_PATH=" + prefix() + "/lib/pkgconfig",
                               "pkg-config", "--cflags", "--libs", "--static", package});
    EXPECT_EQ(flags.exitCode, 0) << flags.err;
    return flags.out;
  }

  bool compile(const std::string& source, const std::string& flags, const std::string& binary) {
    std::vector<std::string> argv = {"/usr/bin/env", "g++", "-std=c++20", "-Wall", "-Wextra"};
    argv.insert(argv.end(), {"-Werror", source, "-o", binary});
    for (const std::string& flag : words(flags)) argv.push_back(flag);
    CommandResult compiled = run(argv);
    EXPECT_EQ(compiled.exitCode, 0) << flags << "\n" << compiled.err;
    return compiled.exitCode == 0;
  }

  // What examples/embed's calls print: 3 calls one after another, then 4
  // at once; results are compact JSON.
  static void expectSevenCalls(const std::string& out) {
    EXPECT_NE(out.find("deployed embed-example version 1 from"), std::string::npos) << out;
    for (int call = 1; call <= 7; ++call) {
      EXPECT_NE(out.find("call " + std::to_string(call) + ": ok, "), std::string::npos) << out;
      EXPECT_NE(out.find(R"({"greeting":"hello, call )" + std::to_string(call) + R"("})"),
                std::string::npos)
          << out;
    }
    EXPECT_NE(out.find("4 at once: 4 ok"), std::string::npos) << out;
  }

  const std::string repo_ = testing_util::repoRoot();
  const std::string build_ =
      fs::relative(fs::canonical(testing_util::testBinDir() + "/.."), repo_).string();
  testing_util::TempDir prefixDir_{"thatch-install"};
};

TEST_F(Install, InstalledTreeBuildsAndRunsAClientAndAnEmbeddingProgram) {
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
  // The host scripts, run from the prefix, find the thatchd installed beside them.
  for (const char* script : {"thatch-check-host", "thatch-tune-host"})
    EXPECT_EQ(mode(prefix() + "/bin/" + script), 0755u) << script;
  CommandResult tuning = run({prefix() + "/bin/thatch-tune-host", "--dry-run"});
  EXPECT_EQ(tuning.exitCode, 0) << tuning.out << tuning.err;
  CommandResult hostCheck = run({prefix() + "/bin/thatch-check-host"});
  EXPECT_NE(hostCheck.out.find("OK"), std::string::npos) << hostCheck.out << hostCheck.err;
  EXPECT_NE(hostCheck.exitCode, 2) << hostCheck.out << hostCheck.err;  // 2: it found no thatchd
  for (const char* library : {"libthatch.a", "libthatch-embedded.a"})
    EXPECT_EQ(mode(prefix() + "/lib/" + library), 0644u) << library;
  for (const char* header : {"thatch.h", "types.h", "embedded.h"}) {
    std::string installed = prefix() + "/include/thatch/" + header;
    EXPECT_EQ(mode(installed), 0644u) << installed;
    EXPECT_EQ(readFile(installed), readFile(repo_ + "/include/thatch/" + header)) << installed;
  }
  for (const char* package : {"thatch.pc", "thatch-embedded.pc"}) {
    std::string pc = prefix() + "/lib/pkgconfig/" + package;
    EXPECT_EQ(mode(pc), 0644u) << pc;
    EXPECT_NE(readFile(pc).find("prefix=" + prefix() + "\n"), std::string::npos) << readFile(pc);
  }

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
  EXPECT_NE(unitText.find("\nExecReload=/bin/kill -HUP $MAINPID\n"), std::string::npos) << unitText;
  if (access("/usr/bin/systemd-analyze", X_OK) == 0) {
    // It exits 0 on unknown keys and bad values, but says so on stderr.
    CommandResult verify = run({"/usr/bin/systemd-analyze", "verify", unit});
    EXPECT_EQ(verify.exitCode, 0) << verify.err;
    EXPECT_EQ(verify.err, "");
  }

  // A client, built from the installed header and library only: none of
  // the daemon's libraries.
  std::string flags = pkgConfig("thatch");
  for (const char* daemonOnly : {"-lthatch-embedded", "-ltomlplusplus", "-lseccomp", "-lnl-"})
    EXPECT_EQ(flags.find(daemonOnly), std::string::npos) << flags;
  std::string client = prefix() + "/client";
  ASSERT_TRUE(compile(repo_ + "/examples/embed/client.cc", flags, client));
  testing_util::TestDaemon daemon;
  CommandResult connected =
      run({client, "--socket", daemon.socketPath(), "-n", "4", repo_ + "/examples/hello"});
  EXPECT_EQ(connected.exitCode, 0) << connected.out << connected.err;
  expectSevenCalls(connected.out);

  // thatch in process, from the installed headers and both libraries.
  std::string embed = prefix() + "/embed";
  ASSERT_TRUE(compile(repo_ + "/examples/embed/embed.cc", pkgConfig("thatch-embedded"), embed));
  chmod(prefix().c_str(), 0711);  // sandboxes open their code below it with their own uid
  std::string subdir = "install-" + std::to_string(getpid());
  testing_util::writeFile(prefix() + "/embed.toml",
                          "state_dir = \"" + prefix() +
                              "/embed-state\"\ncgroup_subdir = \"thatch/" + subdir +
                              "\"\n[[runtime]]\nname = \"python3.11\"\nstem_cells = 0\n");
  CommandResult embedded =
      run({embed, "--config", prefix() + "/embed.toml", "--zygote", prefix() + "/bin/thatch-zygote",
           "-n", "4", repo_ + "/examples/hello"});
  try {
    sandbox::detectCgroups("thatch")->remove(subdir);
  } catch (const std::exception&) {
    // Already gone: the supervisor removes its own when it stops.
  }
  EXPECT_EQ(embedded.exitCode, 0) << embedded.out << embedded.err;
  expectSevenCalls(embedded.out);

  // A reinstall keeps the operator's config; uninstall keeps it too.
  testing_util::writeFile(config, "# edited by its operator\n");
  install = make("install");
  ASSERT_EQ(install.exitCode, 0) << install.err;
  EXPECT_EQ(readFile(config), "# edited by its operator\n");
  CommandResult uninstall = make("uninstall");
  ASSERT_EQ(uninstall.exitCode, 0) << uninstall.err;
  for (const char* gone :
       {"bin/thatchd", "bin/thatch-zygote", "lib/libthatch.a", "lib/libthatch-embedded.a",
        "lib/pkgconfig/thatch.pc", "lib/pkgconfig/thatch-embedded.pc", "include/thatch",
        "lib/systemd/system/thatchd.service"})
    EXPECT_FALSE(testing_util::exists(prefix() + "/" + gone)) << gone;
  EXPECT_TRUE(testing_util::exists(config));
}

}  // namespace
