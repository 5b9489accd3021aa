// thatchd::Stager: a deploy's staging on a thread of its own, its result back on
// the loop.
#include "daemon/stager.h"

#include <gtest/gtest.h>
#include <kj/async-io.h>

#include <atomic>
#include <filesystem>
#include <future>
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

// Work that waits until the test lets it go, counting what ran.
struct Gate {
  std::promise<void> open;
  std::shared_future<void> opened = open.get_future().share();
  std::atomic<int> ran{0};
  thatchd::Stager::Work waiting() {
    return [this]() -> std::unique_ptr<supervisor::StagedCode> {
      opened.wait();
      ran++;
      return nullptr;
    };
  }
  thatchd::Stager::Work counting() {
    return [this]() -> std::unique_ptr<supervisor::StagedCode> {
      ran++;
      return nullptr;
    };
  }
};

TEST(Stager, AtMostItsThreadsRunAndItsQueueWaitsAndTheRestIsRefused) {
  auto io = kj::setupAsyncIo();
  thatchd::Stager stager(io.unixEventPort, {1, 1});
  Gate gate;
  auto first = stager.run(gate.waiting());
  auto second = stager.run(gate.counting());
  try {
    stager.run(gate.counting()).wait(io.waitScope);
    ADD_FAILURE() << "a third deploy was taken";
  } catch (const kj::Exception& e) {
    EXPECT_EQ(e.getType(), kj::Exception::Type::OVERLOADED);
    EXPECT_NE(std::string(e.getDescription().cStr()).find("staging 1 deploys and 1 more wait"),
              std::string::npos)
        << e.getDescription().cStr();
  }
  EXPECT_EQ(gate.ran, 0);  // the second waits for the one thread
  gate.open.set_value();
  first.wait(io.waitScope);
  second.wait(io.waitScope);
  EXPECT_EQ(gate.ran, 2);
}

TEST(Stager, QueuedWorkWhoseCallerWentAwayNeverRuns) {
  auto io = kj::setupAsyncIo();
  thatchd::Stager stager(io.unixEventPort, {1, 2});
  Gate gate;
  auto first = stager.run(gate.waiting());
  stager.run(gate.counting());  // dropped while it waits
  gate.open.set_value();
  first.wait(io.waitScope);
  stager.run(gate.counting()).wait(io.waitScope);
  EXPECT_EQ(gate.ran, 2);  // the first and the last
}

TEST(Stager, RemovalsRunThoughNobodyWaitsForThem) {
  auto io = kj::setupAsyncIo();
  thatchd::Stager stager(io.unixEventPort, {1, 1});
  testing_util::TempDir dir;
  std::string tree = dir.path() + "/tree";
  std::filesystem::create_directories(tree + "/a");
  testing_util::writeFile(tree + "/a/b", "x");
  Gate gate;
  auto first = stager.run(gate.waiting());
  auto second = stager.run(gate.counting());  // the queue is full
  stager.removeTrees({tree});                 // queued all the same: it must run
  gate.open.set_value();
  first.wait(io.waitScope);
  second.wait(io.waitScope);
  // One thread: this runs once the removal is done.
  stager.run(gate.counting()).wait(io.waitScope);
  EXPECT_FALSE(std::filesystem::exists(tree));
  EXPECT_EQ(gate.ran, 3);
}

}  // namespace
