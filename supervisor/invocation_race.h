// What an invocation's run means: the pieces of Supervisor::execute() (in
// invocation_race.cc) that turn what the sandbox and the kernel reported
// into a result, kept pure so that they are tested on their own.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/channel_messages.h"
#include "runtime/zygote_control.h"
#include "supervisor/clock.h"
#include "supervisor/stats.h"

namespace supervisor {

// An answer the sandbox gave in step, not past its deadline: its status,
// and its payload or error; a payload over `maxResultBytes` is
// result_too_large. `run` is the handler's own time.
InvokeResult resultOfAnswer(runtime::InvocationOutcome outcome, uint64_t maxResultBytes);

// A sandbox that died during its invocation: the status its exit event
// tells (a limit, or crashed), and the words for it.
Status statusOfDeath(const runtime::ExitEvent& exit);
std::string describeDeath(const runtime::ExitEvent& exit);

// The invocation outlived `timeout`.
InvokeResult timedOut(Duration timeout);

}  // namespace supervisor
