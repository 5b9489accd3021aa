// The `thatch` CLI's command line: the options and commands it knows, what
// a parsed command line holds, and the strict parsing of option values.
// Anything unexpected is a UsageError that names the option and what it
// accepts; the command table itself is in api/cli_help.h.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "thatch/types.h"

namespace cli {

// Ends the command: "thatch: MESSAGE" on stderr and `exitCode`.
class CliError : public std::runtime_error {
 public:
  CliError(int exitCode, const std::string& message)
      : std::runtime_error(message), exitCode_(exitCode) {}
  int exitCode() const { return exitCode_; }

 private:
  int exitCode_;
};

struct Command;

// A wrong command line: the message, then the command's usage line.
class UsageError : public CliError {
 public:
  UsageError(const Command* command, const std::string& message);
  const Command* command() const { return command_; }

 private:
  const Command* command_;  // null: the tool's usage
};

// 'text', as messages quote what the user typed.
std::string inQuotes(std::string_view text);

struct OptionSpec {
  std::string_view name;   // "--memory"
  std::string_view alias;  // "-v", or empty
  bool takesValue;
  bool repeatable;
};

struct Invocation;
class Session;  // api/cli_commands.h

struct Command {
  std::string_view name;
  std::string_view synopsis;  // after "usage: thatch "
  std::string_view summary;   // one line in `thatch --help`
  std::string_view details;   // the rest of `thatch COMMAND --help`
  std::span<const OptionSpec> options;
  std::string_view expected;  // the arguments, named in errors
  size_t minArgs, maxArgs;
  int (*run)(const Invocation& invocation, Session& session);
};

// What the command line asked for.
struct Invocation {
  const Command* command = nullptr;
  std::vector<std::string> args;                                  // after the command's name
  std::vector<std::pair<std::string_view, std::string>> options;  // the command's, in order
  std::string socket;
  bool json = false;
  bool help = false;

  bool has(std::string_view option) const { return value(option).has_value(); }
  std::optional<std::string> value(std::string_view option) const {
    for (const auto& [name, value] : options)
      if (name == option) return value;
    return std::nullopt;
  }
  std::vector<std::string> values(std::string_view option) const {
    std::vector<std::string> all;
    for (const auto& [name, value] : options)
      if (name == option) all.push_back(value);
    return all;
  }
};

// The command line against `commands`: global options anywhere, a
// command's own after it. Throws UsageError.
Invocation parseCommandLine(std::span<const Command> commands, int argc, char** argv);

const Command* findCommand(std::span<const Command> commands, std::string_view name);

// Option values. Sizes and durations: base/units.h's grammar, as in
// thatchd.toml and thatch-run. Each throws CliError (exit 2) naming the
// option.
uint64_t sizeOption(std::string_view option, std::string_view text);
std::chrono::milliseconds durationOption(std::string_view option, std::string_view text);
unsigned countOption(std::string_view what, std::string_view text);
std::pair<std::string, std::string> parseEnv(std::string_view text);
thatch::Network parseNetwork(std::string_view text);
thatch::LayerRef parseLayer(std::string_view text);  // --layer NAME:VERSION

}  // namespace cli
