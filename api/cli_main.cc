// thatch: the command-line client of thatchd, one subcommand per call of
// include/thatch/thatch.h. docs/cli.md describes the commands, the output
// and the exit codes: the command line is parsed by api/cli_args.h, the
// commands run in api/cli_commands.h, and api/cli_help.h has the help and
// the exit codes.
#include <kj/exception.h>

#include <cerrno>
#include <cstdio>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>

#include "api/cli_args.h"
#include "api/cli_commands.h"
#include "api/cli_help.h"
#include "api/cli_text.h"
#include "thatch/thatch.h"

namespace {

using namespace cli;

int runCommandLine(int argc, char** argv) {
  Invocation invocation = parseCommandLine(commands(), argc, argv);
  if (invocation.help) {
    writeOut(invocation.command ? commandHelp(*invocation.command) : toolHelp());
    return kExitOk;
  }
  Session session(invocation.socket.empty() ? thatch::Thatch::defaultAddress() : invocation.socket);
  return invocation.command->run(invocation, session);
}

// The library's messages are meant for a person already; only the prefix
// (once) is ours.
std::string withoutPrefix(std::string_view message) {
  if (message.starts_with("thatch: ")) message.remove_prefix(8);
  return oneLine(message);
}

int fail(int exitCode, std::string_view message) {
  fflush(stdout);
  writeErr("thatch: " + withoutPrefix(message) + "\n");
  return exitCode;
}

}  // namespace

int main(int argc, char** argv) {
  int exitCode;
  try {
    exitCode = runCommandLine(argc, argv);
  } catch (const UsageError& error) {
    fail(kExitUsage, error.what());
    writeErr(usageLine(error.command()));
    return kExitUsage;
  } catch (const CliError& error) {
    return fail(error.exitCode(), error.what());
  } catch (const thatch::Error& error) {
    return fail(exitCodeFor(error.kind()), error.what());
  } catch (const std::bad_alloc&) {
    return fail(kExitInternal, "out of memory");
  } catch (const kj::Exception& error) {
    return fail(kExitInternal, error.getDescription().cStr());
  } catch (const std::exception& error) {
    return fail(kExitInternal, error.what());
  }
  if (fflush(stdout) != 0) {
    // The reader went away (`thatch ls | head -1`): not worth a message.
    if (errno == EPIPE) return exitCode;
    return fail(kExitInternal, "writing stdout: " + systemMessage(errno));
  }
  return exitCode;
}
