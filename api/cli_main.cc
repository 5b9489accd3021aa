// thatch: the command-line client of thatchd, one subcommand per call of
// include/thatch/thatch.h. docs/cli.md describes the commands, the output
// and the exit codes.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/cli_json.h"
#include "api/cli_text.h"
#include "base/units.h"
#include "thatch/thatch.h"

namespace {

using base::approximateSize;
using cli::JsonWriter;
using cli::milliseconds;
using cli::oneLine;
using cli::plural;
using thatch::Status;

// ---------------------------------------------------------------------------
// Exit codes: one per invocation status, so that scripts can tell a timeout
// from a handler's exception without parsing text.

constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;
constexpr int kExitRefused = 4;
constexpr int kExitNotFound = 5;
constexpr int kExitInternal = 15;

struct ExitCodeInfo {
  int code;
  std::optional<Status> status;  // the invocation status it reports, if any
  std::string_view meaning;
};

constexpr ExitCodeInfo kExitCodes[] = {
    {0, Status::kOk, "the command succeeded"},
    {1, Status::kHandlerError, "the handler raised, or returned what JSON cannot encode"},
    {kExitUsage, {}, "usage: a wrong command line, or an input file that cannot be read"},
    {kExitUnreachable, {}, "thatchd cannot be reached, or the connection broke"},
    {kExitRefused, {}, "thatchd refused the request (bad name, code or option; unknown function)"},
    {kExitNotFound, Status::kNotFound, "no such function"},
    {6, Status::kBadRequest, "the payload is not what the function accepts"},
    {7, Status::kTimeout, "past its deadline: the sandbox was killed"},
    {8, Status::kOutOfMemory, "over its memory limit: the sandbox was killed"},
    {9, Status::kTooManyProcesses, "over its process limit"},
    {10, Status::kResultTooLarge, "the result (with its logs) exceeded thatchd's cap"},
    {11, Status::kCrashed, "the sandbox died or broke its channel"},
    {12, Status::kStartFailed, "no sandbox: confinement or the handler's import failed"},
    {13, Status::kOverloaded, "over the function's concurrency and queue, or the host's caps"},
    {14, Status::kShuttingDown, "thatchd is draining"},
    {kExitInternal, {}, "anything else (out of memory, cannot write the output)"},
};

constexpr bool everyStatusHasOneExitCode() {
  for (Status status : thatch::kAllStatuses) {
    int codes = 0;
    for (const ExitCodeInfo& info : kExitCodes) codes += info.status == status;
    if (codes != 1) return false;
  }
  return true;
}
static_assert(everyStatusHasOneExitCode(), "each invocation status needs its own exit code");

int exitCodeFor(Status status) {
  for (const ExitCodeInfo& info : kExitCodes)
    if (info.status == status) return info.code;
  return kExitInternal;
}

int exitCodeFor(thatch::Error::Kind kind) {
  switch (kind) {
    case thatch::Error::Kind::kConnect:
    case thatch::Error::Kind::kDisconnected:
      return kExitUnreachable;
    case thatch::Error::Kind::kRefused:
      return kExitRefused;
    case thatch::Error::Kind::kNotFound:
      return kExitNotFound;
    case thatch::Error::Kind::kLocal:
      return kExitUsage;
  }
  return kExitInternal;
}

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
  UsageError(const Command* command, const std::string& message)
      : CliError(kExitUsage, message), command_(command) {}
  const Command* command() const { return command_; }

 private:
  const Command* command_;  // null: the tool's usage
};

std::string inQuotes(std::string_view text) {
  return "'" + std::string(text) + "'";
}

// ---------------------------------------------------------------------------
// Commands and their options

struct OptionSpec {
  std::string_view name;   // "--memory"
  std::string_view alias;  // "-v", or empty
  bool takesValue;
  bool repeatable;
};

struct Invocation;
class Session;

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

// Accepted before or after the command.
constexpr OptionSpec kGlobalOptions[] = {
    {"--socket", "", true, false},
    {"--json", "", false, false},
    {"--help", "-h", false, false},
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

// The connection, made when a command first needs it: after the command
// line has been checked, so that usage errors never wait on thatchd.
class Session {
 public:
  explicit Session(std::string address) : address_(std::move(address)) {}
  const std::string& address() const { return address_; }
  thatch::Thatch& thatch() {
    if (!thatch_) thatch_ = thatch::Thatch::connect(address_);
    return *thatch_;
  }

 private:
  std::string address_;
  std::unique_ptr<thatch::Thatch> thatch_;
};

// ---------------------------------------------------------------------------
// Parsing values: small and strict. Anything unexpected names the option
// and what it accepts.

// Sizes and durations: base/units.h's grammar, as in thatchd.toml and
// thatch-run.
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

// ---------------------------------------------------------------------------
// Reading input: every byte, whatever it is; thatchd enforces the limits.

std::string systemMessage(int error) {
  std::string message = strerror(error);
  if (!message.empty()) message[0] = static_cast<char>(tolower(message[0]));
  return message;
}

std::string readAll(int fd, std::string_view what) {
  std::string data;
  char buffer[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n == 0) return data;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw CliError(kExitUsage, std::string(what) + ": " + systemMessage(errno));
    }
    data.append(buffer, static_cast<size_t>(n));
  }
}

std::string readFileOrStdin(const std::string& path) {
  if (path == "-") return readAll(STDIN_FILENO, "stdin");
  struct OwnedFd {
    int fd;
    ~OwnedFd() { close(fd); }
  } file{open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0) throw CliError(kExitUsage, "--data-file " + path + ": " + systemMessage(errno));
  return readAll(file.fd, "--data-file " + path);
}

// ---------------------------------------------------------------------------
// Writing output

void writeOut(std::string_view text) {
  fwrite(text.data(), 1, text.size(), stdout);
}
void writeErr(std::string_view text) {
  fwrite(text.data(), 1, text.size(), stderr);
}

void printJson(const JsonWriter& json) {
  writeOut(json.text());
  writeOut("\n");
}

std::string memoryColumn(const thatch::FunctionConfig& config) {
  return config.memoryBytes == 0 ? "default" : base::formatSize(config.memoryBytes);
}

std::string timeoutColumn(const thatch::FunctionConfig& config) {
  return config.timeout.count() == 0 ? "default" : base::formatDuration(config.timeout);
}

void writeFunctionInfo(JsonWriter& json, const thatch::FunctionInfo& info) {
  const thatch::FunctionConfig& config = info.config;
  json.beginObject();
  json.key("name").stringValue(info.name);
  json.key("version").unsignedValue(info.version);
  json.key("createdUnixMs").signedValue(info.createdUnixMs);
  json.key("codeBytes").unsignedValue(info.codeBytes);
  json.key("fileCount").unsignedValue(info.fileCount);
  json.key("config").beginObject();
  json.key("runtime").stringValue(config.runtime);
  json.key("handler").stringValue(config.handler);
  json.key("memoryBytes").unsignedValue(config.memoryBytes);
  json.key("timeoutMs").unsignedValue(static_cast<uint64_t>(config.timeout.count()));
  json.key("concurrency").unsignedValue(config.concurrency);
  json.key("env").beginObject();
  for (const auto& [name, value] : config.env) json.key(name).stringValue(value);
  json.endObject();
  json.key("network").stringValue(thatch::networkName(config.network));
  json.key("raw").boolValue(config.raw);
  json.endObject();
  json.endObject();
}

// ---------------------------------------------------------------------------
// deploy

thatch::FunctionConfig functionConfigFrom(const Invocation& invocation) {
  thatch::FunctionConfig config;
  if (auto handler = invocation.value("--handler")) config.handler = *handler;
  if (auto runtime = invocation.value("--runtime")) config.runtime = *runtime;
  if (auto memory = invocation.value("--memory"))
    config.memoryBytes = sizeOption("--memory", *memory);
  if (auto timeout = invocation.value("--timeout"))
    config.timeout = durationOption("--timeout", *timeout);
  if (auto concurrency = invocation.value("--concurrency"))
    config.concurrency = countOption("--concurrency", *concurrency);
  for (const std::string& env : invocation.values("--env")) config.env.push_back(parseEnv(env));
  if (auto network = invocation.value("--network")) config.network = parseNetwork(*network);
  config.raw = invocation.has("--raw");
  return config;
}

// Checked here for a clear message before connecting; the library reads it.
void checkCodePath(const std::string& path) {
  std::error_code error;
  std::filesystem::file_status status = std::filesystem::status(path, error);
  if (error) throw CliError(kExitUsage, "deploy: " + path + ": " + systemMessage(error.value()));
  if (!std::filesystem::is_directory(status) && !std::filesystem::is_regular_file(status))
    throw CliError(kExitUsage, "deploy: " + path + ": neither a directory nor an archive file");
}

int deployCommand(const Invocation& invocation, Session& session) {
  const std::string& name = invocation.args[0];
  thatch::FunctionConfig config = functionConfigFrom(invocation);
  const std::string& path = invocation.args[1];
  checkCodePath(path);
  thatch::FunctionInfo info;
  try {
    info = session.thatch().deploy(name, path, config);
  } catch (const thatch::Error& e) {
    // thatchd's reason names an entry of the archive, not the archive.
    if (e.kind() != thatch::Error::Kind::kRefused) throw;
    throw CliError(exitCodeFor(e.kind()), "cannot deploy " + path + ": " + e.what());
  }
  if (invocation.json) {
    JsonWriter json;
    writeFunctionInfo(json, info);
    printJson(json);
  } else {
    writeOut("deployed " + info.name + " version " + std::to_string(info.version) + " (" +
             plural(info.fileCount, "file") + ", " + approximateSize(info.codeBytes) + ")\n");
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// invoke

std::string payloadFrom(const Invocation& invocation) {
  std::optional<std::string> data = invocation.value("--data");
  std::optional<std::string> file = invocation.value("--data-file");
  bool fromStdin = invocation.args.size() > 1;
  if (fromStdin && invocation.args[1] != "-")
    throw UsageError(invocation.command, "unexpected argument " + inQuotes(invocation.args[1]) +
                                             " (only '-', to read stdin)");
  if (data.has_value() + file.has_value() + fromStdin > 1)
    throw UsageError(invocation.command, "give at most one of --data, --data-file and -");
  if (data) return *data;
  if (file) return readFileOrStdin(*file);
  if (fromStdin) return readFileOrStdin("-");
  return "{}";
}

// "NAME: STATUS: TYPE: MESSAGE", leaving out what is empty.
std::string failureLine(const std::string& name, const thatch::Result& result) {
  std::string line = name + ": " + thatch::statusName(result.status);
  if (!result.errorType.empty()) line += ": " + result.errorType;
  if (!result.errorMessage.empty()) line += ": " + result.errorMessage;
  return oneLine(line);
}

std::string numberOrDash(uint64_t number) {
  return number == 0 ? "-" : std::to_string(number);
}

void printInvocationDetails(const thatch::Result& result) {
  std::string text;
  text += "status:  " + std::string(thatch::statusName(result.status)) + "\n";
  text += "start:   " + std::string(result.cold ? "cold" : "warm") + "\n";
  text += "sandbox: " + numberOrDash(result.sandboxId) + "\n";
  text += "version: " + numberOrDash(result.version) + "\n";
  text += "timings: queued " + milliseconds(result.queued) + ", start " +
          milliseconds(result.start) + ", run " + milliseconds(result.run) + "\n";
  if (result.logs.empty()) {
    text += "logs:    (none)\n";
  } else {
    text += "logs:\n" + result.logs;
    if (result.logs.back() != '\n') text += "\n";
  }
  if (result.logsTruncated) text += "(logs truncated by thatchd)\n";
  writeErr(text);
}

void printResultText(const std::string& name, const thatch::Result& result, bool verbose) {
  if (verbose) printInvocationDetails(result);
  if (result.status == Status::kOk) {
    writeOut(result.payload);
    writeOut("\n");
    return;
  }
  if (verbose && !result.traceback.empty()) {
    writeErr(result.traceback);
    if (result.traceback.back() != '\n') writeErr("\n");
  }
  writeErr("thatch: " + failureLine(name, result) + "\n");
}

void printResultJson(const std::string& name, const thatch::Result& result) {
  JsonWriter json;
  json.beginObject();
  json.key("function").stringValue(name);
  json.key("status").stringValue(thatch::statusName(result.status));
  json.key("payload");
  if (result.payload.empty()) {
    json.nullValue();
  } else if (cli::isJson(result.payload)) {
    json.rawJson(result.payload);
  } else {
    json.stringValue(result.payload);  // a raw function's bytes
  }
  json.key("error");
  if (result.status == Status::kOk) {
    json.nullValue();
  } else {
    json.beginObject();
    json.key("type").stringValue(result.errorType);
    json.key("message").stringValue(result.errorMessage);
    json.key("traceback").stringValue(result.traceback);
    json.endObject();
  }
  json.key("logs").stringValue(result.logs);
  json.key("logsTruncated").boolValue(result.logsTruncated);
  json.key("cold").boolValue(result.cold);
  json.key("sandboxId").unsignedValue(result.sandboxId);
  json.key("version").unsignedValue(result.version);
  json.key("timings").beginObject();
  json.key("queuedNs").signedValue(result.queued.count());
  json.key("startNs").signedValue(result.start.count());
  json.key("runNs").signedValue(result.run.count());
  json.endObject();
  json.endObject();
  printJson(json);
}

int invokeCommand(const Invocation& invocation, Session& session) {
  const std::string& name = invocation.args[0];
  std::string payload = payloadFrom(invocation);
  thatch::Result result = session.thatch().invoke(name, std::move(payload));
  if (invocation.json) {
    printResultJson(name, result);
  } else {
    printResultText(name, result, invocation.has("--verbose"));
  }
  return exitCodeFor(result.status);
}

// ---------------------------------------------------------------------------
// ls, versions, rm

void printFunctionsJson(std::string_view key, const std::vector<thatch::FunctionInfo>& functions,
                        const std::string* name = nullptr) {
  JsonWriter json;
  json.beginObject();
  if (name) json.key("name").stringValue(*name);
  json.key(key).beginArray();
  for (const thatch::FunctionInfo& info : functions) writeFunctionInfo(json, info);
  json.endArray();
  json.endObject();
  printJson(json);
}

int listCommand(const Invocation& invocation, Session& session) {
  std::vector<thatch::FunctionInfo> functions = session.thatch().list();
  if (invocation.json) {
    printFunctionsJson("functions", functions);
  } else if (functions.empty()) {
    writeOut("no functions deployed\n");
  } else {
    std::vector<std::vector<std::string>> rows = {
        {"NAME", "VERSION", "RUNTIME", "HANDLER", "MEMORY", "TIMEOUT", "CREATED"}};
    for (const thatch::FunctionInfo& f : functions)
      rows.push_back({f.name, std::to_string(f.version), f.config.runtime, f.config.handler,
                      memoryColumn(f.config), timeoutColumn(f.config),
                      cli::localTime(f.createdUnixMs)});
    writeOut(cli::formatTable(rows));
  }
  return kExitOk;
}

int versionsCommand(const Invocation& invocation, Session& session) {
  const std::string& name = invocation.args[0];
  std::vector<thatch::FunctionInfo> versions = session.thatch().versions(name);
  if (invocation.json) {
    printFunctionsJson("versions", versions, &name);
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"VERSION", "CREATED", "FILES", "SIZE", "RUNTIME", "HANDLER", "MEMORY", "TIMEOUT"}};
  for (const thatch::FunctionInfo& v : versions)
    rows.push_back({std::to_string(v.version), cli::localTime(v.createdUnixMs),
                    std::to_string(v.fileCount), approximateSize(v.codeBytes), v.config.runtime,
                    v.config.handler, memoryColumn(v.config), timeoutColumn(v.config)});
  writeOut(cli::formatTable(rows));
  return kExitOk;
}

int removeCommand(const Invocation& invocation, Session& session) {
  const std::string& name = invocation.args[0];
  bool removed = session.thatch().remove(name);
  if (invocation.json) {
    JsonWriter json;
    json.beginObject().key("name").stringValue(name).key("removed").boolValue(removed).endObject();
    printJson(json);
  } else if (removed) {
    writeOut("removed " + name + "\n");
  } else {
    writeErr("thatch: rm: no function named " + name + "\n");
  }
  return removed ? kExitOk : kExitNotFound;
}

// ---------------------------------------------------------------------------
// stats

// The upper bound, in µs, of the power-of-two bucket that holds the
// percentile: counts[i] counts durations in [2^i, 2^(i+1)) µs.
std::optional<uint64_t> percentileUpperBoundUs(const std::vector<uint64_t>& counts,
                                               uint64_t percent) {
  uint64_t total = 0;
  for (uint64_t count : counts) total += count;
  if (total == 0) return std::nullopt;
  uint64_t wanted = std::max<uint64_t>(1, (total * percent + 99) / 100);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts.size() && i < 63; ++i) {
    seen += counts[i];
    if (seen >= wanted) return 2ull << i;
  }
  return std::nullopt;
}

std::string countsText(const std::map<std::string, uint64_t>& counts) {
  std::string text;
  for (const auto& [name, count] : counts)
    text += (text.empty() ? "" : ", ") + name + " " + std::to_string(count);
  return text.empty() ? "none" : text;
}

std::string histogramText(const std::vector<uint64_t>& counts) {
  auto p50 = percentileUpperBoundUs(counts, 50);
  auto p99 = percentileUpperBoundUs(counts, 99);
  if (!p50 || !p99) return "no samples";
  auto asMs = [](uint64_t us) { return milliseconds(std::chrono::microseconds(us)); };
  uint64_t total = 0;
  for (uint64_t count : counts) total += count;
  return "p50 < " + asMs(*p50) + ", p99 < " + asMs(*p99) + " (" + plural(total, "sample") + ")";
}

// queued, start and run first: the order an invocation goes through them.
std::vector<std::pair<std::string, const std::vector<uint64_t>*>> histogramsInOrder(
    const thatch::Stats& stats) {
  std::vector<std::pair<std::string, const std::vector<uint64_t>*>> ordered;
  for (std::string_view name : {"queued", "start", "run"}) {
    auto found = stats.histograms.find(std::string(name));
    if (found != stats.histograms.end()) ordered.emplace_back(found->first, &found->second);
  }
  for (const auto& [name, counts] : stats.histograms)
    if (name != "queued" && name != "start" && name != "run") ordered.emplace_back(name, &counts);
  return ordered;
}

void printStatsText(const thatch::Stats& stats) {
  uint64_t invocations = 0;
  for (const auto& [status, count] : stats.invocationsByStatus) invocations += count;
  std::string text;
  auto line = [&text](std::string_view label, const std::string& value) {
    text += std::string(label) +
            std::string(std::max<size_t>(17, label.size() + 1) - label.size(), ' ') + value + "\n";
  };
  line("invocations", std::to_string(invocations) +
                          (invocations ? ": " + countsText(stats.invocationsByStatus) : ""));
  line("starts",
       "cold " + std::to_string(stats.coldStarts) + ", warm " + std::to_string(stats.warmStarts));
  line("sandboxes", std::to_string(stats.liveSandboxes) + " live, " +
                        std::to_string(stats.idleSandboxes) + " idle (memory limits " +
                        approximateSize(stats.idleMemoryBytes) + ")");
  line("kills", countsText(stats.killsByReason));
  line("warm pools",
       plural(stats.evictions, "eviction") + ", " + plural(stats.expirations, "expiration"));
  line("queue", std::to_string(stats.queued) + " waiting, " + std::to_string(stats.queueTimeouts) +
                    " timed out, " + std::to_string(stats.sentAhead) + " sent ahead (" +
                    std::to_string(stats.sentAheadStarted) + " started there)");
  line("busy polling", std::to_string(stats.answeredInPage) + " answered in a shared page");
  line("zygote restarts", std::to_string(stats.zygoteRestarts));
  text += "latency (p50 and p99 are upper bounds of power-of-two histogram buckets):\n";
  for (const auto& [name, counts] : histogramsInOrder(stats))
    line("  " + name, histogramText(*counts));
  writeOut(text);
}

void writeCounters(JsonWriter& json, std::string_view key,
                   const std::map<std::string, uint64_t>& counters) {
  json.key(key).beginObject();
  for (const auto& [name, count] : counters) json.key(name).unsignedValue(count);
  json.endObject();
}

void printStatsJson(const thatch::Stats& stats) {
  JsonWriter json;
  json.beginObject();
  writeCounters(json, "invocationsByStatus", stats.invocationsByStatus);
  json.key("coldStarts").unsignedValue(stats.coldStarts);
  json.key("warmStarts").unsignedValue(stats.warmStarts);
  json.key("liveSandboxes").unsignedValue(stats.liveSandboxes);
  json.key("idleSandboxes").unsignedValue(stats.idleSandboxes);
  json.key("idleMemoryBytes").unsignedValue(stats.idleMemoryBytes);
  writeCounters(json, "killsByReason", stats.killsByReason);
  json.key("evictions").unsignedValue(stats.evictions);
  json.key("expirations").unsignedValue(stats.expirations);
  json.key("queued").unsignedValue(stats.queued);
  json.key("queueTimeouts").unsignedValue(stats.queueTimeouts);
  json.key("sentAhead").unsignedValue(stats.sentAhead);
  json.key("sentAheadStarted").unsignedValue(stats.sentAheadStarted);
  json.key("answeredInPage").unsignedValue(stats.answeredInPage);
  json.key("zygoteRestarts").unsignedValue(stats.zygoteRestarts);
  json.key("histograms").beginObject();
  for (const auto& [name, counts] : histogramsInOrder(stats)) {
    json.key(name).beginObject();
    json.key("counts").beginArray();
    for (uint64_t count : *counts) json.unsignedValue(count);
    json.endArray();
    for (uint64_t percent : {50, 99}) {
      json.key("p" + std::to_string(percent) + "UpperBoundUs");
      if (auto bound = percentileUpperBoundUs(*counts, percent)) {
        json.unsignedValue(*bound);
      } else {
        json.nullValue();
      }
    }
    json.endObject();
  }
  json.endObject();
  json.endObject();
  printJson(json);
}

int statsCommand(const Invocation& invocation, Session& session) {
  thatch::Stats stats = session.thatch().stats();
  if (invocation.json) {
    printStatsJson(stats);
  } else {
    printStatsText(stats);
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// prewarm, ping

int prewarmCommand(const Invocation& invocation, Session& session) {
  const std::string& name = invocation.args[0];
  unsigned wanted = countOption("prewarm: N", invocation.args[1]);
  unsigned started = session.thatch().prewarm(name, wanted);
  if (invocation.json) {
    JsonWriter json;
    json.beginObject().key("name").stringValue(name);
    json.key("wanted").unsignedValue(wanted).key("started").unsignedValue(started).endObject();
    printJson(json);
  } else {
    writeOut(name + ": " + std::to_string(wanted) + " warm wanted, " + std::to_string(started) +
             " started\n");
  }
  return kExitOk;
}

int pingCommand(const Invocation& invocation, Session& session) {
  thatch::Thatch& thatch = session.thatch();
  auto start = std::chrono::steady_clock::now();
  thatch.ping();
  auto roundTrip = std::chrono::steady_clock::now() - start;
  if (invocation.json) {
    JsonWriter json;
    json.beginObject().key("address").stringValue(session.address());
    json.key("roundTripNs").signedValue(roundTrip.count()).endObject();
    printJson(json);
  } else {
    writeOut("thatchd at " + session.address() + " answered in " + milliseconds(roundTrip) + "\n");
  }
  return kExitOk;
}

int helpCommand(const Invocation& invocation, Session& session);

// ---------------------------------------------------------------------------
// The command table

constexpr OptionSpec kDeployOptions[] = {
    {"--handler", "", true, false},     {"--memory", "", true, false},
    {"--timeout", "", true, false},     {"--runtime", "", true, false},
    {"--concurrency", "", true, false}, {"--env", "", true, true},
    {"--network", "", true, false},     {"--raw", "", false, false},
};

constexpr OptionSpec kInvokeOptions[] = {
    {"--data", "", true, false},
    {"--data-file", "", true, false},
    {"--verbose", "-v", false, false},
};

constexpr Command kCommands[] = {
    {"deploy", "deploy NAME DIR|ARCHIVE [OPTIONS]", "deploy a new version of a function",
     R"(Stores a new version of function NAME from a directory, or from an archive
(tar, tar.gz, tar.xz, tar.bz2, tar.zst or zip), and prints its number.
Options left out take thatchd's defaults.

  --handler MODULE.FUNC  the handler to call (default handler.handler)
  --memory SIZE          memory limit: bytes, or a number with K, M, G or T
                         (binary; KiB, MB... too), e.g. 128M, 1.5G
  --timeout DURATION     each call's deadline: a number with ms, s, m, h or
                         d, e.g. 500ms, 1.5s, 2m
  --runtime NAME         the runtime (default python3.11)
  --concurrency N        calls running at once, at least 1
  --env KEY=VALUE        an environment variable; repeat for more
  --network none|egress  egress: outbound connections allowed (default none)
  --raw                  the handler's event is the payload's bytes, not JSON
)",
     kDeployOptions, "NAME DIR|ARCHIVE", 2, 2, deployCommand},
    {"invoke", "invoke NAME [--data JSON | --data-file FILE | -] [-v]",
     "call a function and print its result",
     R"(Calls the latest version of function NAME and prints its result (JSON, or a
raw function's bytes) and a newline on stdout. The payload is --data's
text, FILE's contents, or stdin's with '-'; without any it is {}.

Any status but ok prints one line on stderr,
  thatch: NAME: STATUS: ERROR_TYPE: MESSAGE
and exits with the status's code (see `thatch --help`).

  --data JSON        the payload
  --data-file FILE   the payload is FILE's contents ('-': stdin)
  -v, --verbose      also print on stderr the status, cold or warm start,
                     sandbox id, version, timings, the captured logs and, on
                     failure, the traceback
)",
     kInvokeOptions, "NAME", 1, 2, invokeCommand},
    {"ls",
     "ls",
     "list the functions (their latest versions)",
     R"(Lists each function's latest version: name, version, runtime, handler,
memory limit, timeout and when it was deployed (local time). "default"
means thatchd's default.
)",
     {},
     "no arguments",
     0,
     0,
     listCommand},
    {"versions",
     "versions NAME",
     "list the versions of a function",
     R"(Lists every version of function NAME, oldest first, with its code's size
and configuration.
)",
     {},
     "NAME",
     1,
     1,
     versionsCommand},
    {"rm",
     "rm NAME",
     "remove a function and all its versions",
     R"(Removes function NAME and all its versions. Exits with 5 if there was no
such function.
)",
     {},
     "NAME",
     1,
     1,
     removeCommand},
    {"stats",
     "stats",
     "show thatchd's counters and latencies",
     R"(Prints thatchd's counters: invocations by status, cold and warm starts,
live and idle sandboxes, kills by reason, warm pool evictions and
expirations, the admission queue, zygote restarts, and the p50 and p99 of
the queued, start and run times. thatchd keeps those times in power-of-two
histograms, so the percentiles are the upper bounds of their buckets.
)",
     {},
     "no arguments",
     0,
     0,
     statsCommand},
    {"prewarm",
     "prewarm NAME N",
     "have N warm sandboxes of a function ready",
     R"(Asks thatchd to have N warm sandboxes of function NAME ready (within its
pool's and the host's caps) and prints how many it started.
)",
     {},
     "NAME N",
     2,
     2,
     prewarmCommand},
    {"ping",
     "ping",
     "check that thatchd answers",
     R"(Makes one round trip to thatchd and prints how long it took.
)",
     {},
     "no arguments",
     0,
     0,
     pingCommand},
    {"help",
     "help [COMMAND]",
     "this help, or a command's",
     R"(Prints the tool's help, or COMMAND's.
)",
     {},
     "at most a COMMAND",
     0,
     1,
     helpCommand},
};

const Command* findCommand(std::string_view name) {
  for (const Command& command : kCommands)
    if (command.name == name) return &command;
  return nullptr;
}

// ---------------------------------------------------------------------------
// Help

constexpr std::string_view kToolSynopsis = "[--socket PATH] [--json] COMMAND [ARGS...]";

std::string usageLine(const Command* command) {
  if (!command) return "usage: thatch " + std::string(kToolSynopsis) + "\n";
  return "usage: thatch " + std::string(command->synopsis) + "\n";
}

constexpr std::string_view kGlobalOptionsHelp =
    R"(Options, before or after the command:
  --socket PATH  thatchd's address: a Unix socket's path, unix:PATH or
                 tcp:HOST:PORT (default: $THATCH_SOCKET, else
                 /run/thatch/thatchd.sock)
  --json         print one JSON document on stdout instead of text
  -h, --help     this help; `thatch COMMAND --help` for a command's
)";

std::string exitCodesHelp() {
  std::string text = "Exit codes:\n";
  for (const ExitCodeInfo& info : kExitCodes) {
    std::string code = std::to_string(info.code);
    text += "  " + code + std::string(4 - code.size(), ' ');
    if (info.status) text += std::string(thatch::statusName(*info.status)) + ": ";
    text += std::string(info.meaning) + "\n";
  }
  return text;
}

std::string toolHelp() {
  std::string text =
      usageLine(nullptr) + "\nDeploys and invokes functions on thatchd.\n\nCommands:\n";
  for (const Command& command : kCommands)
    text += "  " + std::string(command.name) + std::string(10 - command.name.size(), ' ') +
            std::string(command.summary) + "\n";
  text += "\n" + std::string(kGlobalOptionsHelp) + "\n" + exitCodesHelp();
  return text;
}

std::string commandHelp(const Command& command) {
  return usageLine(&command) + "\n" + std::string(command.details) +
         "\nGlobal options: --socket PATH, --json, -h/--help (see `thatch --help`).\n";
}

int helpCommand(const Invocation& invocation, Session&) {
  if (invocation.args.empty()) {
    writeOut(toolHelp());
    return kExitOk;
  }
  const Command* command = findCommand(invocation.args[0]);
  if (!command) throw UsageError(nullptr, "unknown command " + inQuotes(invocation.args[0]));
  writeOut(commandHelp(*command));
  return kExitOk;
}

// ---------------------------------------------------------------------------
// The command line

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

void addArgument(Invocation& invocation, std::string_view word) {
  if (invocation.command) {
    invocation.args.emplace_back(word);
    return;
  }
  invocation.command = findCommand(word);
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

Invocation parseCommandLine(int argc, char** argv) {
  Invocation invocation;
  std::vector<std::string_view> words(argv + 1, argv + argc);
  for (size_t i = 0; i < words.size(); ++i) {
    std::string_view word = words[i];
    if (word == "-" || !word.starts_with("-")) {
      addArgument(invocation, word);
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

int runCommandLine(int argc, char** argv) {
  Invocation invocation = parseCommandLine(argc, argv);
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
