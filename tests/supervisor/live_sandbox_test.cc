// The sandbox record's state machine (supervisor/live_sandbox.h): exactly
// the transitions its header lists, and a refused one is a bug reported,
// not a silent change.
#include "supervisor/live_sandbox.h"

#include <gtest/gtest.h>
#include <kj/async.h>

#include <set>
#include <string>
#include <utility>

namespace supervisor {
namespace {

using State = SandboxState;

constexpr State kStates[] = {State::kStarting, State::kLoading, State::kIdle,
                             State::kFrozen,   State::kClaimed, State::kRunning,
                             State::kRetiring, State::kKilled,  State::kExited};

// The list in live_sandbox.h, pair by pair.
const std::set<std::pair<State, State>> kAllowed = {
    {State::kStarting, State::kLoading},  {State::kStarting, State::kKilled},
    {State::kStarting, State::kExited},   {State::kLoading, State::kIdle},
    {State::kLoading, State::kClaimed},   {State::kLoading, State::kKilled},
    {State::kLoading, State::kExited},    {State::kIdle, State::kClaimed},
    {State::kIdle, State::kKilled},       {State::kIdle, State::kExited},
    {State::kIdle, State::kFrozen},       {State::kFrozen, State::kIdle},
    {State::kFrozen, State::kKilled},     {State::kFrozen, State::kExited},
    {State::kClaimed, State::kRunning},   {State::kClaimed, State::kKilled},
    {State::kClaimed, State::kExited},    {State::kRunning, State::kIdle},
    {State::kRunning, State::kRunning},   {State::kRunning, State::kRetiring},
    {State::kRunning, State::kKilled},    {State::kRunning, State::kExited},
    {State::kRetiring, State::kRetiring}, {State::kRetiring, State::kKilled},
    {State::kRetiring, State::kExited},   {State::kKilled, State::kExited},
};

TEST(SandboxState, OnlyTheDiagramsTransitionsAreAllowed) {
  for (State from : kStates)
    for (State to : kStates)
      EXPECT_EQ(canMove(from, to), kAllowed.count({from, to}) == 1)
          << stateName(from) << " -> " << stateName(to);
}

TEST(SandboxState, EveryStateHasItsOwnName) {
  std::set<std::string> names;
  for (State state : kStates) names.insert(stateName(state));
  EXPECT_EQ(names.size(), std::size(kStates));
  EXPECT_EQ(names.count("unknown"), 0u);
}

class LiveSandboxTest : public ::testing::Test {
 protected:
  // Held by pointer: kj's destructors may throw, a test fixture's may not.
  struct Loop {
    kj::EventLoop loop;
    kj::WaitScope waitScope{loop};
    kj::Own<LiveSandbox> box =
        kj::refcounted<LiveSandbox>(7, FunctionKey{"f", 1}, "python3.11", nullptr, 64 << 20);
  };
  std::unique_ptr<Loop> loop_ = std::make_unique<Loop>();
  kj::WaitScope& waitScope_ = loop_->waitScope;
  kj::Own<LiveSandbox>& box_ = loop_->box;
};

TEST_F(LiveSandboxTest, ARefusedTransitionThrowsAndChangesNothing) {
  EXPECT_THROW(box_->moveTo(State::kRunning), kj::Exception);
  EXPECT_EQ(box_->state(), State::kStarting);
  box_->moveTo(State::kLoading);
  box_->moveTo(State::kIdle);
  EXPECT_FALSE(box_->busy());
  EXPECT_TRUE(box_->alive());
  box_->moveTo(State::kClaimed);
  EXPECT_TRUE(box_->busy());
}

// A frozen sandbox is thawed (back to idle) before it is claimed: nothing
// can be sent to it frozen.
TEST_F(LiveSandboxTest, AFrozenSandboxIsIdleAndAliveButCannotBeClaimedFrozen) {
  box_->moveTo(State::kLoading);
  box_->moveTo(State::kIdle);
  box_->moveTo(State::kFrozen);
  EXPECT_FALSE(box_->busy());
  EXPECT_TRUE(box_->alive());
  EXPECT_FALSE(box_->running());
  EXPECT_THROW(box_->moveTo(State::kClaimed), kj::Exception);
  EXPECT_THROW(box_->moveTo(State::kRunning), kj::Exception);
  EXPECT_EQ(box_->state(), State::kFrozen);
  box_->moveTo(State::kIdle);
  box_->moveTo(State::kClaimed);
  EXPECT_TRUE(box_->busy());
}

TEST_F(LiveSandboxTest, ItsExitIsDeliveredOnceAndEndsItsLife) {
  kj::Promise<runtime::ExitEvent> exited = box_->whenExited();
  box_->moveTo(State::kLoading);
  box_->exitedWith({7, runtime::ExitKind::kOutOfMemory, 0, {}});
  EXPECT_EQ(box_->state(), State::kExited);
  EXPECT_FALSE(box_->alive());
  EXPECT_EQ(exited.wait(waitScope_).kind, runtime::ExitKind::kOutOfMemory);
  box_->exitedWith({7, runtime::ExitKind::kKilled, 0, {}});  // a second report changes nothing
  ASSERT_TRUE(box_->exit());
  EXPECT_EQ(box_->exit()->kind, runtime::ExitKind::kOutOfMemory);
  EXPECT_EQ(box_->whenExited().wait(waitScope_).kind, runtime::ExitKind::kOutOfMemory);
}

TEST_F(LiveSandboxTest, ASpawnThatFailedRejectsWhoeverWaitsForIt) {
  kj::Promise<void> spawned = box_->whenSpawned();
  box_->spawnReplied({7, -1, true, "mounts", 2, "no such file"});
  try {
    spawned.wait(waitScope_);
    ADD_FAILURE() << "not rejected";
  } catch (const kj::Exception& e) {
    EXPECT_EQ(std::string(e.getDescription().cStr()),
              "confinement step 'mounts' failed: no such file");
  }
  box_->gone("its spawn failed");
  EXPECT_EQ(box_->state(), State::kExited);
  EXPECT_THROW(box_->whenExited().wait(waitScope_), kj::Exception);
}

}  // namespace
}  // namespace supervisor
