// The `thatch` CLI's help and exit codes: the command table with each
// command's usage and help text, the tool's help, and the exit code of
// every outcome (one per invocation status, so that scripts can tell a
// timeout from a handler's exception without parsing text).
#pragma once

#include <span>
#include <string>

#include "api/cli_args.h"
#include "thatch/thatch.h"

namespace cli {

constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;
constexpr int kExitRefused = 4;
constexpr int kExitNotFound = 5;
constexpr int kExitInternal = 15;

int exitCodeFor(thatch::Status status);
int exitCodeFor(thatch::Error::Kind kind);

// Every command, in the order `thatch --help` lists them.
std::span<const Command> commands();

// "usage: thatch ...\n": the command's, or the tool's when null.
std::string usageLine(const Command* command);
std::string toolHelp();
std::string commandHelp(const Command& command);

// `thatch help [COMMAND]`.
int helpCommand(const Invocation& invocation, Session& session);

}  // namespace cli
