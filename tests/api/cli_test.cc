// The `thatch` CLI end to end: build/bin/thatch run as a user would, against
// a real thatchd, its stdout, stderr and exit code checked. Its --json
// output is read back with Python's json module, a reader independent of
// the CLI's own writer.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "api/cli_text.h"
#include "base/json.h"
#include "tests/daemon.h"
#include "tests/testing.h"

namespace {

using testing_util::CommandResult;
using testing_util::TestDaemon;

using testing_util::example;
using testing_util::repoRoot;

CommandResult thatch(std::vector<std::string> args, const std::string& input = "") {
  args.insert(args.begin(), testing_util::testBinDir() + "/../bin/thatch");
  return testing_util::run(args, input);
}

// The value of the Python expression `expression` over the document `d`,
// as compact JSON with sorted keys; "" (and a failure) if the document
// does not parse as strict JSON (no NaN) or is not on one line.
std::string jsonAt(const std::string& document, const std::string& expression) {
  constexpr const char* kScript = R"(
import json, sys
def refuse(constant):
    raise ValueError("not JSON: " + constant)
d = json.loads(sys.stdin.read(), parse_constant=refuse)
print(json.dumps(eval(sys.argv[1]), sort_keys=True, separators=(",", ":")))
)";
  EXPECT_EQ(std::count(document.begin(), document.end(), '\n'), 1) << document;
  CommandResult parsed =
      testing_util::run({"/usr/bin/python3", "-c", kScript, expression}, document);
  EXPECT_EQ(parsed.exitCode, 0) << parsed.err << "\nin: " << document;
  if (parsed.exitCode != 0 || parsed.out.empty()) return "";
  return parsed.out.substr(0, parsed.out.size() - 1);
}

size_t lineCount(const std::string& text) {
  return std::count(text.begin(), text.end(), '\n');
}

// The value after "label:" on a line of --verbose output.
std::string verboseField(const std::string& err, const std::string& label) {
  std::smatch match;
  std::regex line("(^|\n)" + label + ": +([^\n]*)");
  return std::regex_search(err, match, line) ? match[2].str() : "";
}

// ---------------------------------------------------------------------------
// Without a daemon: the command line, help and the connect error

// Nothing listens here: a command that got past its checks would exit 3.
const char kNoSocket[] = "/nonexistent/thatchd.sock";

TEST(CliUsage, NoCommandIsAUsageError) {
  CommandResult r = thatch({});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "thatch: no command given\n"
            "usage: thatch [--socket PATH] [--json] COMMAND [ARGS...]\n");
}

TEST(CliUsage, UnknownCommandsAndOptionsPrintTheUsage) {
  CommandResult r = thatch({"frobnicate"});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.err,
            "thatch: unknown command 'frobnicate'\n"
            "usage: thatch [--socket PATH] [--json] COMMAND [ARGS...]\n");

  r = thatch({"ls", "--frob"});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.err, "thatch: ls has no option --frob\nusage: thatch ls [--triggers]\n");

  r = thatch({"--verbose", "invoke", "hello"});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.err.rfind("thatch: unknown option --verbose (before the command", 0), 0) << r.err;

  r = thatch({"invoke"});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.err,
            "thatch: invoke needs NAME\n"
            "usage: thatch invoke NAME [--data JSON | --data-file FILE | -] [-v]\n");

  r = thatch({"prewarm", "hello", "2", "3"});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.err, "thatch: prewarm: unexpected argument '3'\nusage: thatch prewarm NAME N\n");

  r = thatch({"invoke", "hello", "--data"});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.err.rfind("thatch: --data needs a value\n", 0), 0) << r.err;

  r = thatch({"ls", "--json=yes"});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.err.rfind("thatch: --json takes no value\n", 0), 0) << r.err;

  r = thatch({"deploy", "x", example("hello"), "--memory", "1M", "--memory", "2M"});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.err.rfind("thatch: --memory is given twice\n", 0), 0) << r.err;
}

TEST(CliUsage, BadOptionValuesSayWhatIsAccepted) {
  struct Case {
    std::vector<std::string> options;
    std::string error;
  };
  const Case cases[] = {
      {{"--memory", "12X"},
       "thatch: --memory: invalid size '12X': the unit must be B, K, M, G or T (also KB, "
       "KiB...)\n"},
      {{"--memory", "0"}, "thatch: --memory must be more than 0\n"},
      {{"--timeout", "3"}, "thatch: --timeout: duration '3' has no unit (ms, s, m, h or d)\n"},
      {{"--timeout", "2000h"},
       "thatch: --timeout '2000h': must be more than 0 and at most 1193h\n"},
      {{"--timeout=-1s"}, "thatch: --timeout: duration '-1s' is negative\n"},
      {{"--concurrency", "0"},
       "thatch: --concurrency '0': expected a whole number from 1 to 4294967295\n"},
      {{"--env", "NOEQUALS"}, "thatch: --env 'NOEQUALS': expected KEY=VALUE, e.g. LEVEL=debug\n"},
      {{"--env", "=v"}, "thatch: --env '=v': expected KEY=VALUE"},
      {{"--network", "bridge"}, "thatch: --network 'bridge': expected none or egress\n"},
      {{"--layer", "deps"}, "thatch: --layer 'deps': expected NAME:VERSION, e.g. deps:1\n"},
      {{"--layer", "deps:latest"},
       "thatch: --layer 'deps:latest': expected NAME:VERSION, e.g. deps:1\n"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"--socket", kNoSocket, "deploy", "x", example("hello")};
    args.insert(args.end(), c.options.begin(), c.options.end());
    CommandResult r = thatch(args);
    EXPECT_EQ(r.exitCode, 2) << c.options[0];
    EXPECT_EQ(r.err.rfind(c.error, 0), 0) << r.err;
    EXPECT_EQ(lineCount(r.err), 1u) << r.err;
  }
  CommandResult r = thatch({"--socket", kNoSocket, "prewarm", "hello", "many"});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.err, "thatch: prewarm: N 'many': expected a whole number from 1 to 4294967295\n");
}

// `layer` takes its own command word; each is checked before connecting.
TEST(CliUsage, LayerCommandsAreCheckedBeforeConnecting) {
  const std::string usage =
      "usage: thatch layer publish NAME DIR|ARCHIVE | layer ls | layer versions NAME | layer rm "
      "NAME\n";
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const Case cases[] = {
      {{"layer"}, "thatch: layer needs a layer command: publish, ls, versions or rm\n"},
      {{"layer", "frob"}, "thatch: unknown layer command 'frob' (publish, ls, versions or rm)\n"},
      {{"layer", "publish", "deps"}, "thatch: layer publish needs NAME DIR|ARCHIVE\n"},
      {{"layer", "ls", "extra"}, "thatch: layer ls: unexpected argument 'extra'\n"},
      {{"layer", "versions"}, "thatch: layer versions needs NAME\n"},
      {{"layer", "rm", "a", "b"}, "thatch: layer rm: unexpected argument 'b'\n"},
      {{"layer", "publish", "deps", "/nonexistent/layer"},
       "thatch: layer publish: /nonexistent/layer: no such file or directory\n"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"--socket", kNoSocket};
    args.insert(args.end(), c.args.begin(), c.args.end());
    CommandResult r = thatch(args);
    EXPECT_EQ(r.exitCode, 2) << c.error;
    bool usageError = c.error.find("/nonexistent") == std::string::npos;
    EXPECT_EQ(r.err, c.error + (usageError ? usage : ""));
  }
}

TEST(CliUsage, UnreadableInputIsALocalError) {
  CommandResult r = thatch({"--socket", kNoSocket, "invoke", "x", "--data-file", "/nonexistent"});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.err, "thatch: --data-file /nonexistent: no such file or directory\n");

  r = thatch({"--socket", kNoSocket, "invoke", "x", "--data-file", "/"});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.err, "thatch: --data-file /: is a directory\n");

  r = thatch({"--socket", kNoSocket, "invoke", "x", "--data", "{}", "-"});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.err.rfind("thatch: give at most one of --data, --data-file and -\n", 0), 0);

  r = thatch({"--socket", kNoSocket, "deploy", "x", "/nonexistent/code"});
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_EQ(r.err, "thatch: deploy: /nonexistent/code: no such file or directory\n");
}

TEST(CliUsage, HelpForTheToolAndEveryCommand) {
  CommandResult r = thatch({"--help"});
  EXPECT_EQ(r.exitCode, 0);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out.rfind("usage: thatch [--socket PATH] [--json] COMMAND [ARGS...]\n", 0), 0);
  // The exit codes, each status's included.
  EXPECT_NE(r.out.find("\n  1   handler_error: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n  5   not_found: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n  7   timeout: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n  14  shutting_down: "), std::string::npos) << r.out;
  EXPECT_EQ(thatch({"-h"}).out, r.out);
  EXPECT_EQ(thatch({"help"}).out, r.out);

  for (std::string command :
       {"deploy", "invoke", "ls", "versions", "rm", "layer", "stats", "prewarm", "ping", "help"}) {
    // Help wins over missing arguments, and needs no daemon.
    CommandResult help = thatch({"--socket", kNoSocket, command, "--help"});
    EXPECT_EQ(help.exitCode, 0) << command;
    EXPECT_EQ(help.err, "") << command;
    EXPECT_EQ(help.out.rfind("usage: thatch " + command, 0), 0) << help.out;
    EXPECT_EQ(thatch({"help", command}).out, help.out);
    EXPECT_EQ(thatch({"-h", command}).out, help.out);
  }
  EXPECT_NE(thatch({"deploy", "-h"}).out.find("--memory SIZE"), std::string::npos);
  EXPECT_NE(thatch({"invoke", "-h"}).out.find("-v, --verbose"), std::string::npos);
}

TEST(CliUsage, NoDaemonIsOneLineAndExitThree) {
  CommandResult r = thatch({"--socket", "/tmp/no-thatchd-here.sock", "ping"});
  EXPECT_EQ(r.exitCode, 3);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "thatch: cannot connect to /tmp/no-thatchd-here.sock: no such file — is thatchd "
            "running?\n");

  // THATCH_SOCKET when there is no --socket; --socket after the command too.
  r = testing_util::run({"/usr/bin/env", "THATCH_SOCKET=/tmp/from-env.sock",
                         testing_util::testBinDir() + "/../bin/thatch", "ls"});
  EXPECT_EQ(r.exitCode, 3);
  EXPECT_NE(r.err.find("cannot connect to /tmp/from-env.sock: "), std::string::npos) << r.err;
  r = testing_util::run({"/usr/bin/env", "THATCH_SOCKET=/tmp/from-env.sock",
                         testing_util::testBinDir() + "/../bin/thatch", "ls", "--socket",
                         "/tmp/from-option.sock"});
  EXPECT_EQ(r.exitCode, 3);
  EXPECT_NE(r.err.find("cannot connect to /tmp/from-option.sock: "), std::string::npos) << r.err;
  EXPECT_EQ(lineCount(r.err), 1u) << r.err;
}

// ---------------------------------------------------------------------------
// The helpers behind the option values and --json

// The same words for sizes and durations as thatchd.toml and thatch-run
// (base/units.h, tests/unit/units_test.cc): what the CLI once refused.
TEST(CliUsage, SizesAndDurationsFollowTheOneGrammar) {
  for (const std::vector<std::string>& options :
       std::vector<std::vector<std::string>>{{"--memory", "1.5G"},
                                             {"--memory", "134217728"},
                                             {"--memory", "128 MB"},
                                             {"--timeout", "1.5s"},
                                             {"--timeout", "1d"}}) {
    std::vector<std::string> args = {"--socket", kNoSocket, "deploy", "x", example("hello")};
    args.insert(args.end(), options.begin(), options.end());
    CommandResult r = thatch(args);
    // Past the command line: only the missing thatchd stops it.
    EXPECT_EQ(r.exitCode, 3) << options[0] << " " << options[1] << ": " << r.err;
  }
}

TEST(CliText, CountsTimesAndTables) {
  EXPECT_EQ(cli::parseWholeNumber("4096"), 4096u);
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "1K", "99999999999999999999"})
    EXPECT_EQ(cli::parseWholeNumber(bad), std::nullopt) << bad;
  EXPECT_EQ(cli::milliseconds(std::chrono::microseconds(21)), "0.021 ms");
  EXPECT_EQ(cli::milliseconds(std::chrono::microseconds(4180)), "4.18 ms");
  EXPECT_EQ(cli::milliseconds(std::chrono::microseconds(48200)), "48.2 ms");
  EXPECT_EQ(cli::milliseconds(std::chrono::milliseconds(1532)), "1532 ms");
  EXPECT_EQ(cli::oneLine("a\nb\n\n"), "a\\nb");
  EXPECT_EQ(cli::oneLine("red \x1b[31m\tx\r"), "red \\x1b[31m\tx");
  EXPECT_EQ(cli::formatTable({{"A", "BB"}, {"ccc", "d"}}), "A    BB\nccc  d\n");
}

TEST(CliJson, ValidatesStrictlyAndWritesUtf8) {
  for (const char* good : {"{}", " [1, -0.5e+3, \"x\", true, null] ", "\"\\u00e9\\n\"",
                           "{\"a\":{\"b\":[[]]}}", "\"h\xc3\xa9\""})
    EXPECT_TRUE(base::isJson(good)) << good;
  for (const char* bad : {"", "{", "[1,]", "01", "NaN", "{\"a\"}", "\"\x01\"", "\"\xff\"", "'x'",
                          "[1] [2]", "\"\\x\"", "1.", "-"})
    EXPECT_FALSE(base::isJson(bad)) << bad;
  // Deeper than any recursion could follow: an untrusted handler's result.
  std::string deep = std::string(1'000'000, '[') + std::string(1'000'000, ']');
  EXPECT_TRUE(base::isJson(deep));
  EXPECT_FALSE(base::isJson(deep + "]"));

  EXPECT_EQ(base::jsonString("a\"\\\n\x01h\xc3\xa9\xff"),
            "\"a\\\"\\\\\\n\\u0001h\xc3\xa9\xef\xbf\xbd\"");
  base::JsonWriter json;
  json.beginObject().key("a").beginArray().unsignedValue(1).signedValue(-2).endArray();
  json.key("b").rawJson(" {\"c\":null} \n").key("d").boolValue(false).endObject();
  EXPECT_EQ(json.text(), "{\"a\":[1,-2],\"b\":{\"c\":null},\"d\":false}");
}

// ---------------------------------------------------------------------------
// Against a daemon

// One thatchd for the suite: starting one costs ~0.5 s. Each test deploys
// functions of its own names.
class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() == 0) daemon_ = new TestDaemon("[limits]\ntimeout = \"5s\"\n");
  }

  static void TearDownTestSuite() {
    if (!daemon_) return;
    EXPECT_EQ(daemon_->stop(), 0) << daemon_->log();
    delete daemon_;
    daemon_ = nullptr;
  }

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (thatchd)";
  }

  // The CLI with --socket first, as a user with many daemons would write it.
  static CommandResult cli(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {"--socket", daemon_->socketPath()});
    return thatch(args, input);
  }

  static void deploy(const std::string& name, const std::string& exampleName,
                     std::vector<std::string> options = {}) {
    std::vector<std::string> args = {"deploy", name, example(exampleName)};
    args.insert(args.end(), options.begin(), options.end());
    CommandResult r = cli(args);
    ASSERT_EQ(r.exitCode, 0) << r.err;
  }

  static TestDaemon* daemon_;
};

TestDaemon* CliTest::daemon_ = nullptr;

TEST_F(CliTest, DeployThenInvokeWithDataStdinAndFile) {
  CommandResult r = cli({"deploy", "hello", example("hello")});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_TRUE(
      std::regex_match(r.out, std::regex("deployed hello version 1 \\(1 file, \\d+ B\\)\n")))
      << r.out;
  EXPECT_EQ(r.err, "");

  r = cli({"invoke", "hello", "--data", R"({"name":"cli"})"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, "{\"greeting\":\"hello, cli\"}\n");
  EXPECT_EQ(r.err, "");

  r = cli({"invoke", "hello", "-"}, R"({"name":"stdin"})");
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, "{\"greeting\":\"hello, stdin\"}\n");

  r = cli({"invoke", "hello"});  // {}
  EXPECT_EQ(r.out, "{\"greeting\":\"hello, world\"}\n");

  testing_util::TempDir dir;
  testing_util::writeFile(dir.path() + "/event.json", R"({"name":"file"})");
  r = cli({"invoke", "hello", "--data-file=" + dir.path() + "/event.json"});
  EXPECT_EQ(r.out, "{\"greeting\":\"hello, file\"}\n");

  r = cli({"invoke", "hello", "--data-file", "-"}, R"({"name":"dash"})");
  EXPECT_EQ(r.out, "{\"greeting\":\"hello, dash\"}\n");

  // A second deploy is version 2, and calls go to it.
  r = cli({"deploy", "hello", example("echo")});
  EXPECT_EQ(r.out.rfind("deployed hello version 2 (1 file, ", 0), 0) << r.out;
  r = cli({"invoke", "hello", "--data", "[1,2]"});
  EXPECT_EQ(r.out, "[1,2]\n");
}

TEST_F(CliTest, JsonInvokeIsTheWholeResult) {
  deploy("hello-json", "hello");
  CommandResult r = cli({"invoke", "hello-json", "--data", R"({"name":"json"})", "--json"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(jsonAt(r.out, "d['payload']"), R"({"greeting":"hello, json"})");
  EXPECT_EQ(jsonAt(r.out, "[d['function'], d['status'], d['error'], d['version'], d['cold']]"),
            R"(["hello-json","ok",null,1,true])");
  EXPECT_EQ(jsonAt(r.out, "[d['logs'], d['logsTruncated']]"), R"(["",false])");
  EXPECT_EQ(jsonAt(r.out, "d['sandboxId'] > 0 and d['timings']['runNs'] > 0"), "true");
  EXPECT_EQ(jsonAt(r.out, "d['timings']['startNs'] > 0 and d['timings']['queuedNs'] > 0"), "true");

  // A result that is not JSON (a raw function's bytes) is a string.
  deploy("raw-json", "echo", {"--raw"});
  r = cli({"--json", "invoke", "raw-json", "--data", "not json\n"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(jsonAt(r.out, "d['payload']"), R"("not json\n")");

  // A failure: the error, no payload.
  deploy("raises-json", "raises");
  r = cli({"--json", "invoke", "raises-json"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(jsonAt(r.out, "[d['status'], d['payload'], d['error']['type']]"),
            R"(["handler_error",null,"ValueError"])");
  EXPECT_EQ(jsonAt(r.out, "'check_quantity' in d['error']['traceback']"), "true");
}

TEST_F(CliTest, VerboseShowsColdThenWarmTimingsAndLogs) {
  deploy("warmth", "hello");
  CommandResult first = cli({"invoke", "warmth", "-v"});
  ASSERT_EQ(first.exitCode, 0) << first.err;
  EXPECT_EQ(first.out, "{\"greeting\":\"hello, world\"}\n");
  EXPECT_EQ(verboseField(first.err, "status"), "ok");
  EXPECT_EQ(verboseField(first.err, "start"), "cold");
  EXPECT_EQ(verboseField(first.err, "version"), "1");
  EXPECT_EQ(verboseField(first.err, "logs"), "(none)");
  EXPECT_TRUE(std::regex_match(
      verboseField(first.err, "timings"),
      std::regex("queued \\d+(\\.\\d+)? ms, start \\d+(\\.\\d+)? ms, run \\d+(\\.\\d+)? ms")))
      << first.err;

  CommandResult second = cli({"invoke", "--verbose", "warmth"});
  ASSERT_EQ(second.exitCode, 0) << second.err;
  EXPECT_EQ(verboseField(second.err, "start"), "warm");
  EXPECT_EQ(verboseField(second.err, "sandbox"), verboseField(first.err, "sandbox"));
  EXPECT_NE(verboseField(first.err, "sandbox"), "");

  // Logs follow their header; thatchd bounds them and says so.
  deploy("chatty", "prints10mb");
  CommandResult chatty = cli({"invoke", "chatty", "-v"});
  ASSERT_EQ(chatty.exitCode, 0) << chatty.err;
  EXPECT_EQ(chatty.out, "\"done\"\n");
  EXPECT_NE(chatty.err.find("\nlogs:\n" + std::string(1023, 'x') + "\n"), std::string::npos);
  EXPECT_NE(chatty.err.find("\n(logs truncated by thatchd)\n"), std::string::npos);
}

TEST_F(CliTest, EachFailureHasItsLineAndExitCode) {
  deploy("raises", "raises");
  CommandResult r = cli({"invoke", "raises"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "thatch: raises: handler_error: ValueError: quantity must be a positive integer, got "
            "{}\n");

  // --verbose adds the traceback; the one-line summary stays last.
  r = cli({"invoke", "raises", "-v", "--data", "[]"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.err.find("Traceback (most recent call last):\n"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("in check_quantity\n"), std::string::npos) << r.err;
  std::string last =
      "thatch: raises: handler_error: ValueError: quantity must be a positive "
      "integer, got []\n";
  EXPECT_EQ(r.err.substr(r.err.size() - std::min(r.err.size(), last.size())), last);

  r = cli({"invoke", "no-such-function"});
  EXPECT_EQ(r.exitCode, 5);
  EXPECT_EQ(r.err.rfind("thatch: no-such-function: not_found: ", 0), 0) << r.err;
  EXPECT_NE(r.err.find("no function named"), std::string::npos) << r.err;
  EXPECT_EQ(lineCount(r.err), 1u) << r.err;

  deploy("spins", "spins", {"--timeout", "500ms"});
  auto start = std::chrono::steady_clock::now();
  r = cli({"invoke", "spins"});
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
  EXPECT_EQ(r.exitCode, 7);
  EXPECT_EQ(r.err.rfind("thatch: spins: timeout", 0), 0) << r.err;
  EXPECT_EQ(lineCount(r.err), 1u) << r.err;

  deploy("strict", "hello");
  r = cli({"invoke", "strict", "--data", "[1"});
  EXPECT_EQ(r.exitCode, 6);
  EXPECT_EQ(r.err.rfind("thatch: strict: bad_request: ", 0), 0) << r.err;

  deploy("nonjson", "nonjson");
  r = cli({"invoke", "nonjson"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.err,
            "thatch: nonjson: handler_error: ResultNotSerializable: Object of type set is not "
            "JSON serializable\n");

  deploy("exits", "exits");
  r = cli({"invoke", "exits"});
  EXPECT_EQ(r.exitCode, 11);
  EXPECT_EQ(r.err.rfind("thatch: exits: crashed", 0), 0) << r.err;

  // Whatever a handler puts in its message, the summary stays one line and
  // cannot drive the terminal.
  testing_util::TempDir code;
  testing_util::writeFile(code.path() + "/handler.py",
                          "def handler(event, context):\n"
                          "    raise RuntimeError('one\\ntwo \\x1b[2J')\n");
  ASSERT_EQ(cli({"deploy", "multiline", code.path()}).exitCode, 0);
  r = cli({"invoke", "multiline"});
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_EQ(r.err, "thatch: multiline: handler_error: RuntimeError: one\\ntwo \\x1b[2J\n");

  // Refused by thatchd: exit 4, its reason on one line.
  r = cli({"deploy", "Not A Name", example("hello")});
  EXPECT_EQ(r.exitCode, 4);
  EXPECT_EQ(r.err.rfind("thatch: ", 0), 0);
  EXPECT_EQ(lineCount(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("Not A Name"), std::string::npos) << r.err;
  // A file that is no archive: the line names it.
  testing_util::TempDir junk;
  testing_util::writeFile(junk.path() + "/code.zip", "not a zip");
  r = cli({"deploy", "junk", junk.path() + "/code.zip"});
  EXPECT_EQ(r.exitCode, 4);
  EXPECT_EQ(r.err.rfind("thatch: cannot deploy " + junk.path() + "/code.zip: ", 0), 0) << r.err;
  EXPECT_EQ(lineCount(r.err), 1u) << r.err;
}

TEST_F(CliTest, BinaryAndLargeInputIsSentWhole) {
  deploy("raw-echo", "echo", {"--raw"});
  std::string input(3 << 20, '\0');
  std::mt19937 random(7);
  for (char& c : input) c = static_cast<char>(random());
  input += "\xff\xfe not UTF-8";
  CommandResult r = cli({"invoke", "raw-echo", "-"}, input);
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out.size(), input.size() + 1);
  EXPECT_TRUE(r.out == input + "\n");

  // The JSON function refuses bytes that are not UTF-8: thatchd decides.
  deploy("json-echo", "echo");
  r = cli({"invoke", "json-echo", "-"}, "\"\xff\"");
  EXPECT_EQ(r.exitCode, 6);
  EXPECT_NE(r.err.find("not UTF-8 JSON"), std::string::npos) << r.err;
}

TEST_F(CliTest, LsShowsAlignedColumns) {
  deploy("ls-small", "hello", {"--memory", "64M", "--timeout", "2s"});
  deploy("ls-a-longer-name", "echo", {"--handler", "handler.handler"});
  CommandResult r = cli({"ls"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  std::vector<std::string> lines;
  for (size_t start = 0, end; (end = r.out.find('\n', start)) != std::string::npos; start = end + 1)
    lines.push_back(r.out.substr(start, end - start));
  ASSERT_GE(lines.size(), 3u) << r.out;
  const std::string& header = lines[0];
  EXPECT_TRUE(std::regex_match(
      header, std::regex("NAME +VERSION +RUNTIME +HANDLER +MEMORY +TIMEOUT +CREATED")))
      << header;
  auto row = [&lines](const std::string& name) {
    for (const std::string& line : lines)
      if (line.rfind(name + " ", 0) == 0) return line;
    return std::string();
  };
  std::string small = row("ls-small"), longer = row("ls-a-longer-name");
  ASSERT_NE(small, "") << r.out;
  ASSERT_NE(longer, "") << r.out;
  for (const std::string& line : {small, longer}) {
    EXPECT_EQ(line.find("python3.11"), header.find("RUNTIME")) << line;
    EXPECT_EQ(line.find("handler.handler"), header.find("HANDLER")) << line;
    EXPECT_TRUE(std::regex_search(line, std::regex(" \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d$")));
  }
  EXPECT_EQ(small.find("64MiB"), header.find("MEMORY")) << small;
  EXPECT_EQ(small.find("2s"), header.find("TIMEOUT")) << small;
  EXPECT_EQ(longer.find("default"), header.find("MEMORY")) << longer;
  EXPECT_EQ(longer.substr(header.find("VERSION"), 2), "1 ");

  r = cli({"ls", "--json"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(jsonAt(r.out, "[f['config'] for f in d['functions'] if f['name'] == 'ls-small']"),
            R"([{"concurrency":0,"env":{},"handler":"handler.handler","layers":[],)"
            R"("memoryBytes":67108864,"network":"none","raw":false,"runtime":"python3.11",)"
            R"("timeoutMs":2000,"tmpNoexec":false}])");
}

TEST_F(CliTest, VersionsListsEachDeploy) {
  deploy("twice", "hello");
  deploy("twice", "hello",
         {"--memory", "256MiB", "--timeout", "2m", "--env", "LEVEL=debug", "--env", "B=x=y",
          "--concurrency", "3", "--network", "egress", "--runtime", "python3.11", "--tmp-noexec"});
  CommandResult r = cli({"versions", "twice"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  ASSERT_EQ(lineCount(r.out), 3u) << r.out;
  EXPECT_TRUE(std::regex_search(
      r.out, std::regex("^VERSION +CREATED +FILES +SIZE +RUNTIME +HANDLER +MEMORY +TIMEOUT\n")));
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\n1 +\\S+ \\S+ +1 +\\d+ B +python3.11 +"
                                                  "handler.handler +default +default\n")))
      << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\n2 +\\S+ \\S+ +1 +\\d+ B +python3.11 +"
                                                  "handler.handler +256MiB +2m\n$")))
      << r.out;

  r = cli({"--json", "versions", "twice"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(jsonAt(r.out, "[d['name'], [v['version'] for v in d['versions']]]"),
            R"(["twice",[1,2]])");
  EXPECT_EQ(
      jsonAt(r.out, "d['versions'][1]['config']"),
      R"({"concurrency":3,"env":{"B":"x=y","LEVEL":"debug"},"handler":"handler.handler",)"
      R"("layers":[],"memoryBytes":268435456,"network":"egress","raw":false,"runtime":"python3.11",)"
      R"("timeoutMs":120000,"tmpNoexec":true})");
  EXPECT_EQ(
      jsonAt(r.out, "d['versions'][0]['fileCount'] == 1 and d['versions'][0]['codeBytes'] > 0"),
      "true");

  r = cli({"versions", "never-deployed"});
  EXPECT_EQ(r.exitCode, 5);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.rfind("thatch: ", 0), 0);
  EXPECT_NE(r.err.find("never-deployed"), std::string::npos) << r.err;
  EXPECT_EQ(lineCount(r.err), 1u) << r.err;
}

TEST_F(CliTest, RmRemovesAFunctionOnce) {
  deploy("doomed", "hello");
  CommandResult r = cli({"rm", "doomed"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, "removed doomed\n");
  EXPECT_EQ(cli({"ls"}).out.find("\ndoomed "), std::string::npos);
  EXPECT_EQ(cli({"invoke", "doomed"}).exitCode, 5);

  r = cli({"rm", "doomed"});
  EXPECT_EQ(r.exitCode, 5);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "thatch: rm: no function named doomed\n");

  r = cli({"rm", "doomed", "--json"});
  EXPECT_EQ(r.exitCode, 5);
  EXPECT_EQ(jsonAt(r.out, "d"), R"({"name":"doomed","removed":false})");
}

// Trigger commands are checked before connecting.
TEST(CliUsage, TriggerCommandsAreCheckedBeforeConnecting) {
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const Case cases[] = {
      {{"url", "create"}, "thatch: url needs a url command: create, get or rm, and a NAME\n"},
      {{"url", "frob", "f"}, "thatch: unknown url command 'frob' (create, get or rm)\n"},
      {{"schedule", "add", "f"}, "thatch: schedule add takes NAME EXPRESSION\n"},
      {{"schedule", "frob"}, "thatch: unknown schedule command 'frob' (add, ls or rm)\n"},
      {{"trigger", "add", "sqs", "a", "b", "c"},
       "thatch: trigger add takes a kind: redis-stream URL STREAM FUNCTION (function URLs: "
       "`thatch url`; schedules: `thatch schedule`)\n"},
      {{"trigger", "add", "redis-stream", "redis://127.0.0.1:1", "s", "f", "--batch-size", "0"},
       "thatch: --batch-size '0': expected a whole number from 1 to 4294967295\n"},
      {{"trigger", "add", "redis-stream", "redis://127.0.0.1:1", "s", "f", "--max-wait", "5"},
       "thatch: --max-wait: duration '5' has no unit (ms, s, m, h or d)\n"},
      {{"trigger", "enable"}, "thatch: trigger enable takes ID\n"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"--socket", kNoSocket};
    args.insert(args.end(), c.args.begin(), c.args.end());
    CommandResult r = thatch(args);
    EXPECT_EQ(r.exitCode, 2) << c.error;
    EXPECT_EQ(r.err.rfind(c.error, 0), 0u) << r.err;
  }
}

TEST_F(CliTest, TriggersAreAddedListedDisabledAndGoWithTheirFunction) {
  deploy("triggered", "hello");
  CommandResult r = cli({"url", "create", "triggered"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  // No http_listen in this daemon: the id, and why there is no address.
  EXPECT_TRUE(
      std::regex_match(r.out, std::regex("url id [a-z0-9]{32} \\(thatchd has no http_listen\\)\n")))
      << r.out;
  r = cli({"url", "create", "triggered"});
  EXPECT_EQ(r.exitCode, 4);
  EXPECT_EQ(r.err, "thatch: function 'triggered' already has a URL\n");
  r = cli({"url", "create", "never-deployed"});
  EXPECT_EQ(r.exitCode, 5) << r.err;

  r = cli({"schedule", "add", "triggered", "cron(0 25 * * ? *)"});
  EXPECT_EQ(r.exitCode, 4);
  EXPECT_NE(r.err.find("column"), std::string::npos) << r.err;
  r = cli({"schedule", "add", "triggered", "rate(5 minutes)", "--data", "{\"k\": 1}"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  std::string id = r.out.substr(0, r.out.find(' '));
  EXPECT_EQ(id.rfind("schedule-", 0), 0u) << r.out;
  EXPECT_NE(r.out.find(" next run "), std::string::npos) << r.out;

  r = cli({"ls", "--triggers", "--json"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(
      jsonAt(r.out, "sorted(t['kind'] for t in d['triggers'] if t['function'] == 'triggered')"),
      R"(["schedule","url"])");
  EXPECT_EQ(jsonAt(r.out, "[t['detail'] for t in d['triggers'] if t['id'] == '" + id + "']"),
            R"([{"k":1}])");
  r = cli({"trigger", "disable", id});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, "disabled trigger " + id + "\n");
  r = cli({"schedule", "ls", "triggered"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find(id + "  triggered  disabled  rate(5 minutes)"), std::string::npos) << r.out;
  EXPECT_EQ(cli({"trigger", "enable", id}).exitCode, 0);
  EXPECT_EQ(jsonAt(cli({"trigger", "ls", "triggered", "--json"}).out,
                   "[t['enabled'] for t in d['triggers']]"),
            "[true,true]");
  r = cli({"trigger", "enable", "schedule-999999"});
  EXPECT_EQ(r.exitCode, 4);
  EXPECT_EQ(r.err, "thatch: no trigger 'schedule-999999'\n");

  // Removed with the function: none is left, and a new function of the
  // same name starts with none.
  ASSERT_EQ(cli({"rm", "triggered"}).exitCode, 0);
  deploy("triggered", "hello");
  EXPECT_EQ(jsonAt(cli({"trigger", "ls", "triggered", "--json"}).out, "d['triggers']"), "[]");
  r = cli({"url", "get", "triggered"});
  EXPECT_EQ(r.exitCode, 5);
  EXPECT_EQ(r.err, "thatch: function triggered has no URL\n");
  r = cli({"trigger", "rm", id});
  EXPECT_EQ(r.exitCode, 5);
  ASSERT_EQ(cli({"rm", "triggered"}).exitCode, 0);
}

TEST_F(CliTest, LayersArePublishedListedUsedAndRemoved) {
  testing_util::TempDir layer;
  std::filesystem::create_directories(layer.path() + "/python/cli_layer");
  testing_util::writeFile(layer.path() + "/python/cli_layer/__init__.py", "WORD = 'layered'\n");
  CommandResult r = cli({"layer", "publish", "cli-deps", layer.path()});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_TRUE(std::regex_match(
      r.out, std::regex("published layer cli-deps version 1 \\(1 file, \\d+ B\\)\n")))
      << r.out;
  r = cli({"--json", "layer", "publish", "cli-deps", layer.path()});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(jsonAt(r.out, "[d['name'], d['version'], d['fileCount'], d['codeBytes'] > 0]"),
            R"(["cli-deps",2,1,true])");

  r = cli({"layer", "ls"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("^NAME +VERSION +FILES +SIZE +CREATED\n")))
      << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\ncli-deps +2 +1 +\\d+ B +\\d{4}-"))) << r.out;
  r = cli({"layer", "versions", "cli-deps"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(lineCount(r.out), 3u) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("^VERSION +CREATED +FILES +SIZE\n1 "))) << r.out;
  r = cli({"--json", "layer", "versions", "cli-deps"});
  EXPECT_EQ(jsonAt(r.out, "[d['name'], [v['version'] for v in d['versions']]]"),
            R"(["cli-deps",[1,2]])");
  r = cli({"layer", "versions", "cli-never"});
  EXPECT_EQ(r.exitCode, 5);
  EXPECT_EQ(r.err, "thatch: no layer named 'cli-never'\n");

  // A function using it: the handler imports from /opt/python.
  testing_util::TempDir code;
  testing_util::writeFile(code.path() + "/handler.py",
                          "import cli_layer\ndef handler(event, context):\n"
                          "    return cli_layer.WORD\n");
  r = cli({"deploy", "cli-layered", code.path(), "--layer", "cli-deps:2"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  r = cli({"invoke", "cli-layered"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, "\"layered\"\n");
  r = cli({"--json", "versions", "cli-layered"});
  EXPECT_EQ(jsonAt(r.out, "d['versions'][0]['config']['layers']"),
            R"([{"name":"cli-deps","version":2}])");

  // A layer version that is not stored: refused, nothing deployed.
  r = cli({"deploy", "cli-layered", code.path(), "--layer", "cli-deps:9"});
  EXPECT_EQ(r.exitCode, 4);
  EXPECT_EQ(r.err, "thatch: cannot deploy " + code.path() +
                       ": layer 'cli-deps' has no version 9 (its versions: 1, 2)\n");
  EXPECT_EQ(jsonAt(cli({"--json", "versions", "cli-layered"}).out, "len(d['versions'])"), "1");

  // Removal waits for the function.
  r = cli({"layer", "rm", "cli-deps"});
  EXPECT_EQ(r.exitCode, 4);
  EXPECT_EQ(r.err.rfind("thatch: layer 'cli-deps' is used by function 'cli-layered' version 1", 0),
            0)
      << r.err;
  EXPECT_EQ(lineCount(r.err), 1u) << r.err;
  ASSERT_EQ(cli({"rm", "cli-layered"}).exitCode, 0);
  r = cli({"layer", "rm", "cli-deps"});
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, "removed layer cli-deps\n");
  r = cli({"layer", "rm", "cli-deps"});
  EXPECT_EQ(r.exitCode, 5);
  EXPECT_EQ(r.err, "thatch: layer rm: no layer named cli-deps\n");
  r = cli({"--json", "layer", "rm", "cli-deps"});
  EXPECT_EQ(r.exitCode, 5);
  EXPECT_EQ(jsonAt(r.out, "d"), R"({"name":"cli-deps","removed":false})");
  EXPECT_EQ(cli({"layer", "ls"}).out.find("cli-deps"), std::string::npos);
}

TEST_F(CliTest, PrewarmedSandboxesServeTheNextCall) {
  deploy("prewarmed", "hello");
  CommandResult r = cli({"prewarm", "prewarmed", "2"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, "prewarmed: 2 warm wanted, 2 started\n");

  // Already there: none to start.
  r = cli({"--json", "prewarm", "prewarmed", "2"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(jsonAt(r.out, "d"), R"({"name":"prewarmed","started":0,"wanted":2})");

  r = cli({"invoke", "prewarmed", "-v"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(verboseField(r.err, "start"), "warm");

  r = cli({"prewarm", "never-deployed", "1"});
  EXPECT_EQ(r.exitCode, 5);
  EXPECT_EQ(lineCount(r.err), 1u) << r.err;
}

TEST_F(CliTest, StatsSummarizeTheDaemon) {
  deploy("counted", "hello");
  deploy("counted-error", "raises");
  ASSERT_EQ(cli({"invoke", "counted"}).exitCode, 0);
  ASSERT_EQ(cli({"invoke", "counted"}).exitCode, 0);
  ASSERT_EQ(cli({"invoke", "counted-error"}).exitCode, 1);

  CommandResult json = cli({"stats", "--json"});
  ASSERT_EQ(json.exitCode, 0) << json.err;
  EXPECT_EQ(jsonAt(json.out, "d['invocationsByStatus']['ok'] >= 2"), "true");
  EXPECT_EQ(jsonAt(json.out, "d['invocationsByStatus']['handler_error'] >= 1"), "true");
  EXPECT_EQ(jsonAt(json.out, "d['coldStarts'] >= 2 and d['warmStarts'] >= 1"), "true");
  EXPECT_EQ(jsonAt(json.out, "sorted(d['histograms'])"), R"(["queued","run","start"])");
  // Nothing queued, so nothing sent ahead (the API suite covers the counts).
  EXPECT_EQ(jsonAt(json.out, "[d['sentAhead'], d['sentAheadStarted']]"), "[0,0]");
  // Each call is a process start after the last, long past a sandbox's
  // busy polling: no answer came through a shared page.
  EXPECT_EQ(jsonAt(json.out, "d['answeredInPage']"), "0");
  // Upper bounds of power-of-two buckets of microseconds.
  EXPECT_EQ(
      jsonAt(json.out,
             "[(lambda b: b > 0 and b & (b - 1) == 0)(h[k]) for h in d['histograms'].values() "
             "for k in ('p50UpperBoundUs', 'p99UpperBoundUs')]"),
      "[true,true,true,true,true,true]");
  EXPECT_EQ(jsonAt(json.out, "sum(d['histograms']['run']['counts']) >= 3"), "true");

  CommandResult text = cli({"stats"});
  ASSERT_EQ(text.exitCode, 0) << text.err;
  for (const char* line :
       {"^invocations +\\d+: [^\n]*\\bhandler_error \\d+", "^invocations +\\d+: [^\n]*\\bok \\d+",
        "\nstarts +cold \\d+, warm \\d+\n",
        "\nsandboxes +\\d+ live: \\d+ starting, \\d+ idle \\(\\d+ frozen; memory \\d+(\\.\\d)? "
        "[KMG]?i?B\\)\n",
        "\nkills +(none|\\w+ \\d+)", "\nwarm pools +\\d+ evictions?, \\d+ expirations?\n",
        "\nqueue +\\d+ waiting, \\d+ timed out, 0 sent ahead \\(0 started there\\)\n",
        "\nzygote restarts +0\n",
        "\nlatency \\(p50 and p99 are upper bounds of power-of-two histogram buckets\\):\n"
        "  queued +p50 < [0-9.]+ ms, p99 < [0-9.]+ ms \\(\\d+ samples\\)\n"
        "  start +p50 < [0-9.]+ ms, p99 < [0-9.]+ ms \\(\\d+ samples\\)\n"
        "  run +p50 < [0-9.]+ ms, p99 < [0-9.]+ ms \\(\\d+ samples\\)\n$"})
    EXPECT_TRUE(std::regex_search(text.out, std::regex(line))) << line << "\n" << text.out;
}

TEST_F(CliTest, PingAndGlobalOptionsAnywhere) {
  CommandResult r = cli({"ping"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_TRUE(std::regex_match(
      r.out, std::regex("thatchd at " + daemon_->socketPath() + " answered in [0-9.]+ ms\n")))
      << r.out;

  r = thatch({"ping", "--json", "--socket", "unix:" + daemon_->socketPath()});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(jsonAt(r.out, "d['address']"), "\"unix:" + daemon_->socketPath() + "\"");
  EXPECT_EQ(jsonAt(r.out, "d['roundTripNs'] > 0"), "true");

  r = testing_util::run({"/usr/bin/env", "THATCH_SOCKET=" + daemon_->socketPath(),
                         testing_util::testBinDir() + "/../bin/thatch", "ping"});
  EXPECT_EQ(r.exitCode, 0) << r.err;

  deploy("deploy-json", "hello");
  r = cli({"deploy", "--json", "deploy-json", example("hello"), "--env=K=V", "--raw"});
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(jsonAt(r.out,
                   "[d['name'], d['version'], d['fileCount'], d['config']['env'], "
                   "d['config']['raw']]"),
            R"(["deploy-json",2,1,{"K":"V"},true])");
}

}  // namespace
