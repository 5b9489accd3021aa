// The API from a second, independent implementation of Cap'n Proto RPC:
// tests/js/client.mjs (npm capnp-es) talks to a real thatchd, so that the
// schema, the framing and the server's answers are checked against something
// other than the C++ library they were written with.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/daemon.h"
#include "tests/testing.h"

namespace {

using testing_util::repoRoot;

// testing_util::run() execs without a PATH search.
std::string findOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// Just enough JSON for the client's output lines: one flat object per line,
// whose string values are unescaped and whose other values (numbers, true,
// false, null, nested objects and arrays) are kept as their JSON text.
class JsonLine {
 public:
  explicit JsonLine(const std::string& text) : text_(text) {
    skipSpace();
    expect('{');
    skipSpace();
    if (peek() == '}') return;
    for (;;) {
      skipSpace();
      std::string key = parseString();
      skipSpace();
      expect(':');
      skipSpace();
      fields_[key] = peek() == '"' ? parseString() : rawValue();
      skipSpace();
      if (peek() == '}') break;
      expect(',');
    }
  }

  bool has(const std::string& key) const { return fields_.count(key) > 0; }
  std::string operator[](const std::string& key) const {
    auto it = fields_.find(key);
    return it == fields_.end() ? "<missing " + key + ">" : it->second;
  }

 private:
  char peek() const {
    if (pos_ >= text_.size()) throw std::runtime_error("JSON ends early: " + text_);
    return text_[pos_];
  }
  void expect(char c) {
    if (peek() != c) throw std::runtime_error(std::string("JSON: expected '") + c + "': " + text_);
    ++pos_;
  }
  void skipSpace() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }

  std::string parseString() {
    expect('"');
    std::string out;
    for (char c; (c = peek()) != '"'; ++pos_) {
      if (c != '\\') {
        out += c;
        continue;
      }
      ++pos_;
      switch (char e = peek()) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'u': {
          // JSON.stringify escapes only control characters this way.
          unsigned code = std::stoul(text_.substr(pos_ + 1, 4), nullptr, 16);
          if (code >= 0x80) throw std::runtime_error("JSON: non-ASCII \\u escape: " + text_);
          out += static_cast<char>(code);
          pos_ += 4;
          break;
        }
        default:
          out += e;  // '"', '\\', '/'
      }
    }
    ++pos_;
    return out;
  }

  std::string rawValue() {
    size_t start = pos_;
    int depth = 0;
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == '"') {
        parseString();
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (depth == 0) break;
        --depth;
      }
      if (c == ',' && depth == 0) break;
      ++pos_;
    }
    return text_.substr(start, pos_ - start);
  }

  std::string text_;
  size_t pos_ = 0;
  std::map<std::string, std::string> fields_;
};

std::vector<JsonLine> parseLines(const std::string& out) {
  std::vector<JsonLine> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.emplace_back(line);
  return lines;
}

TEST(JsClient, DeploysAndInvokesOverCapnpEs) {
  // Directory deploys are for root peers on the Unix socket only.
  if (geteuid() != 0) GTEST_SKIP() << "needs root: thatchd takes directory deploys only from root";
  const std::string root = repoRoot();
  const std::string jsDir = root + "/tests/js";
  const std::string node = findOnPath("node");
  // A missing toolchain is a broken checkout, not an unsupported host.
  ASSERT_FALSE(node.empty()) << "node is not installed: run `make deps`";
  for (const char* package : {"capnp-es", "typescript"}) {
    ASSERT_TRUE(testing_util::exists(jsDir + "/node_modules/" + package + "/package.json"))
        << "npm package " << package << " is missing from " << jsDir
        << "/node_modules: run `make deps`";
  }

  testing_util::TestDaemon daemon;
  auto result = testing_util::run({node, jsDir + "/client.mjs", "--socket", daemon.socketPath(),
                                   "--dir", root + "/examples/hello", "--name", "hello-js",
                                   "--payload", R"({"name": "capnp-es"})", "--invokes", "2",
                                   "--gen-dir", testing_util::testBinDir() + "/../gen/js"});
  ASSERT_EQ(result.exitCode, 0) << "client stderr: " << result.err << "\nstdout: " << result.out
                                << "\nthatchd log:\n"
                                << daemon.log();

  auto lines = parseLines(result.out);
  ASSERT_EQ(lines.size(), 5u) << result.out;
  EXPECT_EQ(lines[0]["call"], "ping");

  EXPECT_EQ(lines[1]["call"], "deploy");
  EXPECT_EQ(lines[1]["name"], "hello-js");
  EXPECT_EQ(lines[1]["version"], "1");

  const JsonLine& first = lines[2];
  const JsonLine& second = lines[3];
  for (const JsonLine* invoke : {&first, &second}) {
    EXPECT_EQ((*invoke)["call"], "invoke");
    EXPECT_EQ((*invoke)["status"], "ok") << (*invoke)["error"];
    // examples/hello/handler.py returns {"greeting": f"hello, {name}"}; the
    // JSON's spacing is the runtime's business, not the API's.
    const std::string payload = (*invoke)["payload"];
    EXPECT_NE(payload.find(R"("greeting")"), std::string::npos) << payload;
    EXPECT_NE(payload.find(R"("hello, capnp-es")"), std::string::npos) << payload;
    EXPECT_EQ((*invoke)["version"], "1");
    EXPECT_EQ((*invoke)["error"], "null");
  }
  EXPECT_EQ(first["cold"], "true");
  EXPECT_EQ(second["cold"], "false");
  EXPECT_NE(first["sandboxId"], "0");
  EXPECT_EQ(second["sandboxId"], first["sandboxId"]);

  EXPECT_EQ(lines[4]["call"], "list");
  EXPECT_EQ(lines[4]["functions"], R"([{"name":"hello-js","version":"1"}])");
}

}  // namespace
