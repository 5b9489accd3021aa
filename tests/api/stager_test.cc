// thatchd::Stager: a deploy's staging on a thread of its own, its result back on
// the loop.
#include "daemon/stager.h"

#include <gtest/gtest.h>
#include <kj/async-io.h>

#include <string>

#include "tests/testing.h"

namespace {

TEST(Stager, StagesOnAnotherThreadAndCommitsOnTheLoop) {
  auto io = kj::setupAsyncIo();
  testing_util::TempDir dir;
  supervisor::Registry registry(dir.path() + "/state");
  testing_util::TempDir code;
  testing_util::writeFile(code.path() + "/handler.py", "def handler(e, c):\n    return 1\n");
  thatchd::Stager stager(io.unixEventPort);
  auto area = registry.stagingArea();
  std::unique_ptr<supervisor::StagedCode> staged =
      stager.run([area, path = code.path()]() { return area.directory(path); }).wait(io.waitScope);
  supervisor::FunctionVersion version = registry.commit("staged", {}, *staged);
  EXPECT_EQ(version.version, 1u);
  EXPECT_EQ(testing_util::readFile(version.codeDir + "/handler.py"),
            "def handler(e, c):\n    return 1\n");
}

TEST(Stager, BadCodeIsARefusalWithTheReason) {
  auto io = kj::setupAsyncIo();
  testing_util::TempDir dir;
  supervisor::Registry registry(dir.path() + "/state");
  thatchd::Stager stager(io.unixEventPort);
  auto area = registry.stagingArea();
  try {
    stager.run([area]() { return area.archiveBytes("not an archive"); }).wait(io.waitScope);
    ADD_FAILURE() << "garbage was staged";
  } catch (const kj::Exception& e) {
    EXPECT_NE(std::string(e.getDescription().cStr()).find("archive"), std::string::npos)
        << e.getDescription().cStr();
  }
}

}  // namespace
