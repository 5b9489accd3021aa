#include "api/cli_args.h"

#include "api/cli_help.h"
#include "api/cli_text.h"
#include "base/units.h"

namespace cli {

UsageError::UsageError(const Command* command, const std::string& message)
    : CliError(kExitUsage, message), command_(command) {}

std::string inQuotes(std::string_view text) {
  return "'" + std::string(text) + "'";
}

const Command* findCommand(std::span<const Command> commands, std::string_view name) {
  for (const Command& command : commands)
    if (command.name == name) return &command;
  return nullptr;
}

uint64_t sizeOption(std::string_view option, std::string_view text) {
  uint64_t bytes = 0;
  try {
    bytes = base::parseSize(text);
  } catch (const std::invalid_argument& e) {
    throw CliError(kExitUsage, std::string(option) + ": " + e.what());
  }
  if (bytes == 0) throw CliError(kExitUsage, std::string(option) + " must be more than 0");
  return bytes;
}

std::chrono::milliseconds durationOption(std::string_view option, std::string_view text) {
  std::chrono::milliseconds duration;
  try {
    duration = base::parseDuration(text);
  } catch (const std::invalid_argument& e) {
    throw CliError(kExitUsage, std::string(option) + ": " + e.what());
  }
  // The API carries milliseconds in 32 bits.
  if (duration.count() == 0 || duration.count() > UINT32_MAX)
    throw CliError(kExitUsage, std::string(option) + " " + inQuotes(text) +
                                   ": must be more than 0 and at most 1193h");
  return duration;
}

unsigned countOption(std::string_view what, std::string_view text) {
  std::optional<uint64_t> count = cli::parseWholeNumber(text);
  if (!count || *count == 0 || *count > UINT32_MAX)
    throw CliError(kExitUsage, std::string(what) + " " + inQuotes(text) +
                                   ": expected a whole number from 1 to 4294967295");
  return static_cast<unsigned>(*count);
}

std::pair<std::string, std::string> parseEnv(std::string_view text) {
  size_t equals = text.find('=');
  if (equals == std::string_view::npos || equals == 0)
    throw CliError(kExitUsage,
                   "--env " + inQuotes(text) + ": expected KEY=VALUE, e.g. LEVEL=debug");
  return {std::string(text.substr(0, equals)), std::string(text.substr(equals + 1))};
}

thatch::Network parseNetwork(std::string_view text) {
  if (std::optional<thatch::Network> network = thatch::networkNamed(text)) return *network;
  throw CliError(kExitUsage, "--network " + inQuotes(text) + ": expected none or egress");
}

thatch::LayerRef parseLayer(std::string_view text) {
  if (std::optional<thatch::LayerRef> layer = thatch::layerRefNamed(text)) return *layer;
  throw CliError(kExitUsage, "--layer " + inQuotes(text) + ": expected NAME:VERSION, e.g. deps:1");
}

namespace {

// Accepted before or after the command.
constexpr OptionSpec kGlobalOptions[] = {
    {"--socket", "", true, false},
    {"--json", "", false, false},
    {"--help", "-h", false, false},
};

const OptionSpec* findOption(std::span<const OptionSpec> options, std::string_view word) {
  for (const OptionSpec& option : options)
    if (option.name == word || (!option.alias.empty() && option.alias == word)) return &option;
  return nullptr;
}

void recordOption(Invocation& invocation, const OptionSpec& option, std::string value) {
  if (option.name == "--socket") {
    if (value.empty()) throw UsageError(invocation.command, "--socket needs a non-empty PATH");
    invocation.socket = std::move(value);
  } else if (option.name == "--json") {
    invocation.json = true;
  } else if (option.name == "--help") {
    invocation.help = true;
  } else {
    if (!option.repeatable && invocation.has(option.name))
      throw UsageError(invocation.command, std::string(option.name) + " is given twice");
    invocation.options.emplace_back(option.name, std::move(value));
  }
}

const OptionSpec& lookUpOption(const Invocation& invocation, std::string_view name) {
  if (const OptionSpec* global = findOption(kGlobalOptions, name)) return *global;
  if (!invocation.command)
    throw UsageError(nullptr, "unknown option " + std::string(name) +
                                  " (before the command: --socket, --json or --help)");
  if (const OptionSpec* own = findOption(invocation.command->options, name)) return *own;
  throw UsageError(invocation.command,
                   std::string(invocation.command->name) + " has no option " + std::string(name));
}

void addArgument(std::span<const Command> commands, Invocation& invocation, std::string_view word) {
  if (invocation.command) {
    invocation.args.emplace_back(word);
    return;
  }
  invocation.command = findCommand(commands, word);
  if (!invocation.command) throw UsageError(nullptr, "unknown command " + inQuotes(word));
}

void checkArgumentCount(const Invocation& invocation) {
  const Command& command = *invocation.command;
  if (invocation.args.size() < command.minArgs)
    throw UsageError(&command,
                     std::string(command.name) + " needs " + std::string(command.expected));
  if (invocation.args.size() > command.maxArgs)
    throw UsageError(&command, std::string(command.name) + ": unexpected argument " +
                                   inQuotes(invocation.args[command.maxArgs]));
}

}  // namespace

Invocation parseCommandLine(std::span<const Command> commands, int argc, char** argv) {
  Invocation invocation;
  std::vector<std::string_view> words(argv + 1, argv + argc);
  for (size_t i = 0; i < words.size(); ++i) {
    std::string_view word = words[i];
    if (word == "-" || !word.starts_with("-")) {
      addArgument(commands, invocation, word);
      continue;
    }
    // "--name=value" or "--name value"; "-h" and "-v" are flags.
    size_t equals = word.starts_with("--") ? word.find('=') : std::string_view::npos;
    std::string_view name = word.substr(0, equals);
    const OptionSpec& option = lookUpOption(invocation, name);
    std::string value;
    if (equals != std::string_view::npos) {
      if (!option.takesValue)
        throw UsageError(invocation.command, std::string(name) + " takes no value");
      value = word.substr(equals + 1);
    } else if (option.takesValue) {
      if (i + 1 == words.size())
        throw UsageError(invocation.command, std::string(name) + " needs a value");
      value = words[++i];
    }
    recordOption(invocation, option, std::move(value));
  }
  if (invocation.help) return invocation;
  if (!invocation.command) throw UsageError(nullptr, "no command given");
  checkArgumentCount(invocation);
  return invocation;
}

}  // namespace cli
