#include "api/cli_commands.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "api/cli_help.h"
#include "api/cli_text.h"
#include "base/fd.h"
#include "base/json.h"
#include "base/units.h"

namespace cli {

void writeOut(std::string_view text) {
  fwrite(text.data(), 1, text.size(), stdout);
}
void writeErr(std::string_view text) {
  fwrite(text.data(), 1, text.size(), stderr);
}

std::string systemMessage(int error) {
  std::string message = strerror(error);
  if (!message.empty()) message[0] = static_cast<char>(tolower(message[0]));
  return message;
}

using base::approximateSize;
using base::JsonWriter;
using thatch::Status;

namespace {

// ---------------------------------------------------------------------------
// Reading input: every byte, whatever it is; thatchd enforces the limits.

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
  base::Fd file(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) throw CliError(kExitUsage, "--data-file " + path + ": " + systemMessage(errno));
  return readAll(file.get(), "--data-file " + path);
}

// ---------------------------------------------------------------------------
// Writing output

void printJson(const JsonWriter& json) {
  writeOut(json.text());
  writeOut("\n");
}

// What `rm` and `layer rm` say: {"name", "removed"} with --json, else
// `done` on stdout or `missing` on stderr; not found exits kExitNotFound.
int reportRemoval(const Invocation& invocation, const std::string& name, bool removed,
                  const std::string& done, const std::string& missing) {
  if (invocation.json) {
    JsonWriter json;
    json.beginObject().key("name").stringValue(name).key("removed").boolValue(removed).endObject();
    printJson(json);
  } else if (removed) {
    writeOut(done + "\n");
  } else {
    writeErr(missing + "\n");
  }
  return removed ? kExitOk : kExitNotFound;
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
  json.key("tmpNoexec").boolValue(config.tmpNoexec);
  json.key("layers").beginArray();
  for (const thatch::LayerRef& layer : config.layers) {
    json.beginObject().key("name").stringValue(layer.name);
    json.key("version").unsignedValue(layer.version).endObject();
  }
  json.endArray();
  json.endObject();
  json.endObject();
}

void writeLayerInfo(JsonWriter& json, const thatch::LayerInfo& info) {
  json.beginObject();
  json.key("name").stringValue(info.name);
  json.key("version").unsignedValue(info.version);
  json.key("createdUnixMs").signedValue(info.createdUnixMs);
  json.key("codeBytes").unsignedValue(info.codeBytes);
  json.key("fileCount").unsignedValue(info.fileCount);
  json.endObject();
}

}  // namespace

// ---------------------------------------------------------------------------
// deploy

namespace {

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
  config.tmpNoexec = invocation.has("--tmp-noexec");
  for (const std::string& layer : invocation.values("--layer"))
    config.layers.push_back(parseLayer(layer));
  return config;
}

// Checked here for a clear message before connecting; the library reads it.
void checkCodePath(std::string_view command, const std::string& path) {
  std::error_code error;
  std::filesystem::file_status status = std::filesystem::status(path, error);
  if (error)
    throw CliError(kExitUsage,
                   std::string(command) + ": " + path + ": " + systemMessage(error.value()));
  if (!std::filesystem::is_directory(status) && !std::filesystem::is_regular_file(status))
    throw CliError(kExitUsage, std::string(command) + ": " + path +
                                   ": neither a directory nor an archive file");
}

// Sends the code at `path` (a deploy, a layer's publish) and says what was
// stored: `said` and the name, version, files and size, or its JSON.
template <typename Info>
int sendCode(const Invocation& invocation, const std::string& verb, const std::string& path,
             const std::function<Info()>& send, void (*writeInfo)(JsonWriter&, const Info&),
             const std::string& said) {
  Info info;
  try {
    info = send();
  } catch (const thatch::Error& e) {
    // thatchd's reason names an entry of the archive, not the archive.
    if (e.kind() != thatch::Error::Kind::kRefused) throw;
    throw CliError(exitCodeFor(e.kind()), "cannot " + verb + " " + path + ": " + e.what());
  }
  if (invocation.json) {
    JsonWriter json;
    writeInfo(json, info);
    printJson(json);
  } else {
    writeOut(said + info.name + " version " + std::to_string(info.version) + " (" +
             plural(info.fileCount, "file") + ", " + approximateSize(info.codeBytes) + ")\n");
  }
  return kExitOk;
}

}  // namespace

int deployCommand(const Invocation& invocation, Session& session) {
  const std::string& name = invocation.args[0];
  thatch::FunctionConfig config = functionConfigFrom(invocation);
  const std::string& path = invocation.args[1];
  checkCodePath("deploy", path);
  return sendCode<thatch::FunctionInfo>(
      invocation, "deploy", path, [&]() { return session.thatch().deploy(name, path, config); },
      writeFunctionInfo, "deployed ");
}

// ---------------------------------------------------------------------------
// invoke

namespace {

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
  } else if (base::isJson(result.payload)) {
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

}  // namespace

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

namespace {

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

}  // namespace

int listCommand(const Invocation& invocation, Session& session) {
  if (invocation.has("--triggers")) return listTriggersCommand(invocation, session);
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
  return reportRemoval(invocation, name, session.thatch().remove(name), "removed " + name,
                       "thatch: rm: no function named " + name);
}

// ---------------------------------------------------------------------------
// stats

namespace {

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
  line("sandboxes", std::to_string(stats.liveSandboxes) +
                        " live: " + std::to_string(stats.startingSandboxes) + " starting, " +
                        std::to_string(stats.idleSandboxes) + " idle (" +
                        std::to_string(stats.frozenSandboxes) + " frozen; memory " +
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
  json.key("startingSandboxes").unsignedValue(stats.startingSandboxes);
  json.key("frozenSandboxes").unsignedValue(stats.frozenSandboxes);
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

}  // namespace

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
// layer publish, ls, versions, rm

namespace {

// The subcommand's arguments after its name: exactly `count` of them.
void expectLayerArgs(const Invocation& invocation, size_t count, std::string_view expected) {
  size_t given = invocation.args.size() - 1;
  std::string sub = "layer " + invocation.args[0];
  if (given < count) throw UsageError(invocation.command, sub + " needs " + std::string(expected));
  if (given > count)
    throw UsageError(invocation.command,
                     sub + ": unexpected argument " + inQuotes(invocation.args[count + 1]));
}

void printLayersJson(std::string_view key, const std::vector<thatch::LayerInfo>& layers,
                     const std::string* name = nullptr) {
  JsonWriter json;
  json.beginObject();
  if (name) json.key("name").stringValue(*name);
  json.key(key).beginArray();
  for (const thatch::LayerInfo& info : layers) writeLayerInfo(json, info);
  json.endArray();
  json.endObject();
  printJson(json);
}

int layerPublish(const Invocation& invocation, Session& session) {
  expectLayerArgs(invocation, 2, "NAME DIR|ARCHIVE");
  const std::string& name = invocation.args[1];
  const std::string& path = invocation.args[2];
  checkCodePath("layer publish", path);
  return sendCode<thatch::LayerInfo>(
      invocation, "publish", path, [&]() { return session.thatch().publishLayer(name, path); },
      writeLayerInfo, "published layer ");
}

int layerList(const Invocation& invocation, Session& session) {
  expectLayerArgs(invocation, 0, "no arguments");
  std::vector<thatch::LayerInfo> layers = session.thatch().listLayers();
  if (invocation.json) {
    printLayersJson("layers", layers);
  } else if (layers.empty()) {
    writeOut("no layers published\n");
  } else {
    std::vector<std::vector<std::string>> rows = {{"NAME", "VERSION", "FILES", "SIZE", "CREATED"}};
    for (const thatch::LayerInfo& l : layers)
      rows.push_back({l.name, std::to_string(l.version), std::to_string(l.fileCount),
                      approximateSize(l.codeBytes), cli::localTime(l.createdUnixMs)});
    writeOut(cli::formatTable(rows));
  }
  return kExitOk;
}

int layerVersions(const Invocation& invocation, Session& session) {
  expectLayerArgs(invocation, 1, "NAME");
  const std::string& name = invocation.args[1];
  std::vector<thatch::LayerInfo> versions = session.thatch().layerVersions(name);
  if (invocation.json) {
    printLayersJson("versions", versions, &name);
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"VERSION", "CREATED", "FILES", "SIZE"}};
  for (const thatch::LayerInfo& v : versions)
    rows.push_back({std::to_string(v.version), cli::localTime(v.createdUnixMs),
                    std::to_string(v.fileCount), approximateSize(v.codeBytes)});
  writeOut(cli::formatTable(rows));
  return kExitOk;
}

int layerRemove(const Invocation& invocation, Session& session) {
  expectLayerArgs(invocation, 1, "NAME");
  const std::string& name = invocation.args[1];
  return reportRemoval(invocation, name, session.thatch().removeLayer(name),
                       "removed layer " + name, "thatch: layer rm: no layer named " + name);
}

}  // namespace

int layerCommand(const Invocation& invocation, Session& session) {
  const std::string& sub = invocation.args[0];
  if (sub == "publish") return layerPublish(invocation, session);
  if (sub == "ls") return layerList(invocation, session);
  if (sub == "versions") return layerVersions(invocation, session);
  if (sub == "rm") return layerRemove(invocation, session);
  throw UsageError(invocation.command,
                   "unknown layer command " + inQuotes(sub) + " (publish, ls, versions or rm)");
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

}  // namespace cli
