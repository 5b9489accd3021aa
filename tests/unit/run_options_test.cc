#include "run/run_options.h"

#include <gtest/gtest.h>

namespace run {
namespace {

using sandbox::NetMode;

using namespace std::chrono_literals;

// The grammar itself is base/units.h's (tests/unit/units_test.cc): the same
// words mean the same here as in thatchd.toml and `thatch deploy`.
TEST(ParseRunOptions, SizesAndDurationsFollowTheOneGrammar) {
  RunOptions o = parseRunOptions(
      {"--memory", "1.5G", "--tmpfs-size", "512 KiB", "--timeout", "1.5s", "--", "/bin/true"});
  EXPECT_EQ(o.memoryBytes, 3ull << 29);
  EXPECT_EQ(o.tmpfsBytes, 512ull << 10);
  ASSERT_TRUE(o.timeout.has_value());
  EXPECT_EQ(*o.timeout, 1500ms);
  EXPECT_EQ(parseRunOptions({"--memory", "134217728", "--", "/bin/true"}).memoryBytes,
            128ull << 20);
}

TEST(ParseRunOptions, ParsesEveryOption) {
  RunOptions o = parseRunOptions({"--memory",
                                  "128M",
                                  "--pids=32",
                                  "--cpu",
                                  "0.5",
                                  "--timeout",
                                  "3s",
                                  "--net",
                                  "egress",
                                  "--ro-bind",
                                  "/usr/share:/share",
                                  "--bind",
                                  "/tmp",
                                  "--tmpfs-size",
                                  "16M",
                                  "--env",
                                  "A=b=c",
                                  "--cwd",
                                  "/tmp",
                                  "--hostname",
                                  "fn",
                                  "--",
                                  "/bin/echo",
                                  "hi"});
  EXPECT_EQ(o.memoryBytes, 128ull << 20);
  EXPECT_EQ(o.pids, 32u);
  EXPECT_DOUBLE_EQ(o.cpus, 0.5);
  ASSERT_TRUE(o.timeout.has_value());
  EXPECT_EQ(*o.timeout, 3s);
  EXPECT_EQ(o.net, NetMode::kEgress);
  ASSERT_EQ(o.binds.size(), 2u);
  EXPECT_EQ(o.binds[0].source, "/usr/share");
  EXPECT_EQ(o.binds[0].target, "/share");
  EXPECT_FALSE(o.binds[0].writable);
  EXPECT_EQ(o.binds[1].target, "/tmp");
  EXPECT_TRUE(o.binds[1].writable);
  EXPECT_EQ(o.tmpfsBytes, 16ull << 20);
  EXPECT_EQ(o.env, std::vector<std::string>{"A=b=c"});
  EXPECT_EQ(o.cwd, "/tmp");
  EXPECT_EQ(o.hostname, "fn");
  EXPECT_EQ(o.command, (std::vector<std::string>{"/bin/echo", "hi"}));
}

TEST(ParseRunOptions, CommandWithoutDoubleDash) {
  RunOptions o = parseRunOptions({"--pids", "8", "/bin/true"});
  EXPECT_EQ(o.command, std::vector<std::string>{"/bin/true"});
}

TEST(ParseRunOptions, ArgumentsAfterTheCommandAreItsOwn) {
  RunOptions o = parseRunOptions({"--", "/bin/ls", "--memory", "1"});
  EXPECT_EQ(o.command, (std::vector<std::string>{"/bin/ls", "--memory", "1"}));
  EXPECT_EQ(o.memoryBytes, 256ull << 20);
}

TEST(ParseRunOptions, RejectsBadInputWithAReason) {
  auto message = [](std::vector<std::string> args) {
    try {
      parseRunOptions(args);
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("<no error>");
  };
  EXPECT_EQ(message({}), "no command given (thatch-run [OPTIONS] -- CMD ...)");
  EXPECT_EQ(message({"--"}), "no command given (thatch-run [OPTIONS] -- CMD ...)");
  EXPECT_EQ(message({"--ro-bind", "/no/such/dir", "--", "x"}),
            "bind source '/no/such/dir' does not exist");
  EXPECT_EQ(message({"--bind", "relative", "--", "x"}),
            "bind source 'relative' must be an absolute path");
  EXPECT_EQ(message({"--ro-bind", "/usr:/a/../b", "--", "x"}),
            "bind target: '/a/../b' contains '..'");
  EXPECT_EQ(message({"--memory", "lots", "--", "x"}),
            "--memory: invalid size 'lots' (use e.g. 4096, 512K, 128M, 1.5G)");
  EXPECT_EQ(message({"--timeout", "10", "--", "x"}),
            "--timeout: duration '10' has no unit (ms, s, m, h or d)");
  EXPECT_EQ(message({"--timeout", "0s", "--", "x"}), "--timeout must be more than 0");
  EXPECT_EQ(message({"--memory"}), "option --memory needs a value");
  EXPECT_EQ(message({"--pids", "0", "--", "x"}), "invalid count '0' (a positive whole number)");
  EXPECT_EQ(message({"--net", "host", "--", "x"}), "invalid --net 'host' (none or egress)");
  EXPECT_EQ(message({"--frobnicate", "--", "x"}), "unknown option '--frobnicate'");
  EXPECT_EQ(message({"--env", "NOVALUE", "--", "x"}), "invalid --env 'NOVALUE' (K=V)");
  EXPECT_EQ(message({"--cpu", "0", "--", "x"}), "invalid CPU quota '0' (cores, e.g. 0.5 or 2)");
}

TEST(SandboxEnvironment, ExtraVariablesOverrideDefaults) {
  auto env = sandboxEnvironment({"HOME=/var/task", "X=1"});
  EXPECT_EQ(env, (std::vector<std::string>{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8",
                                           "HOME=/var/task", "X=1"}));
}

}  // namespace
}  // namespace run
