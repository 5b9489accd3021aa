#include "api/cli_help.h"

#include <optional>
#include <string_view>

#include "api/cli_commands.h"

namespace cli {

using thatch::Status;

namespace {

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
    {kExitNotFound, Status::kNotFound, "no such function (or layer)"},
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

constexpr OptionSpec kDeployOptions[] = {
    {"--handler", "", true, false},     {"--memory", "", true, false},
    {"--timeout", "", true, false},     {"--runtime", "", true, false},
    {"--concurrency", "", true, false}, {"--env", "", true, true},
    {"--network", "", true, false},     {"--raw", "", false, false},
    {"--tmp-noexec", "", false, false}, {"--layer", "", true, true},
};

constexpr OptionSpec kListOptions[] = {{"--triggers", "", false, false}};
constexpr OptionSpec kUrlOptions[] = {{"--auth-type", "", true, false},
                                      {"--payload-format", "", true, false}};
constexpr OptionSpec kScheduleOptions[] = {{"--data", "", true, false},
                                           {"--disabled", "", false, false}};
constexpr OptionSpec kTriggerOptions[] = {
    {"--batch-size", "", true, false},   {"--max-wait", "", true, false},
    {"--max-attempts", "", true, false}, {"--group", "", true, false},
    {"--dead-letter", "", true, false},  {"--disabled", "", false, false},
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
  --tmp-noexec           /tmp not executable (by default it is, as on Lambda)
  --layer NAME:VERSION   a layer published with `thatch layer publish`, shown
                         read-only under /opt; repeat for more (at most 5,
                         a later one's files winning)
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
    {"ls", "ls [--triggers]", "list the functions (their latest versions), or their triggers",
     R"(Lists each function's latest version: name, version, runtime, handler,
memory limit, timeout and when it was deployed (local time). "default"
means thatchd's default.

  --triggers  list every trigger instead (as `thatch trigger ls`)
)",
     kListOptions, "no arguments", 0, 0, listCommand},
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
    {"layer",
     "layer publish NAME DIR|ARCHIVE | layer ls | layer versions NAME | layer rm NAME",
     "publish, list and remove layers (files under /opt)",
     R"(Layers, as Lambda's: files (packages, libraries, data) published once and
shown read-only under /opt in the sandboxes of the functions deployed with
--layer NAME:VERSION. Each publish makes a new version, 1, 2, ...

  layer publish NAME DIR|ARCHIVE  store a new version of layer NAME from a
                                  directory or an archive (as deploy's) and
                                  print its number; a Python package goes
                                  under python/ (or python/lib/python3.11/
                                  site-packages/), programs under bin/,
                                  libraries under lib/
  layer ls                        each layer's latest version
  layer versions NAME             every version of layer NAME, oldest first
  layer rm NAME                   remove layer NAME and all its versions;
                                  refused while a stored version of a
                                  function uses it. Exits with 5 if there
                                  was no such layer.
)",
     {},
     "a layer command: publish, ls, versions or rm",
     1,
     3,
     layerCommand},
    {"url",
     "url create NAME [--auth-type NONE|AWS_IAM] [--payload-format 2.0|1.0] | url get NAME | "
     "url rm NAME",
     "give a function a URL on thatchd's HTTP listener",
     R"(A function URL, as Lambda's: requests to it become the function's events
and its answers the HTTP responses (docs/triggers.md).

  url create NAME  give function NAME a URL and print it
      --auth-type NONE|AWS_IAM   NONE (default): anyone who reaches the
                                 listener; AWS_IAM: requests signed by an
                                 [[access_key]] that may invoke NAME
      --payload-format 2.0|1.0   the event's shape: 2.0 (default; function
                                 URLs, HTTP APIs) or 1.0 (REST APIs)
  url get NAME     print NAME's URL; exits with 5 if it has none
  url rm NAME      remove NAME's URL; exits with 5 if it had none
)",
     kUrlOptions, "a url command: create, get or rm, and a NAME", 2, 2, urlCommand},
    {"schedule", "schedule add NAME EXPRESSION [--data JSON] | schedule ls [NAME] | schedule rm ID",
     "run a function on a schedule (EventBridge's rate() and cron())",
     R"(Schedules, as EventBridge's: each run delivers a "Scheduled Event"
document to function NAME as an Event invocation (docs/triggers.md).

  schedule add NAME EXPRESSION  run NAME on EXPRESSION, in UTC:
                                rate(5 minutes), rate(1 hour), rate(2 days),
                                cron(0 12 * * ? *), cron(0/15 8-17 ? * MON-FRI *),
                                cron(0 9 L * ? *), cron(0 10 ? * 6#3 *);
                                prints its id and next run
      --data JSON               the event's `detail` (default {})
      --disabled                added disabled (`thatch trigger enable ID`)
  schedule ls [NAME]            the schedules (of NAME): expression, runs,
                                skipped and missed runs, last and next run
  schedule rm ID                remove a schedule; exits with 5 if there
                                was none
)",
     kScheduleOptions, "a schedule command: add, ls or rm", 1, 3, scheduleCommand},
    {"trigger",
     "trigger add redis-stream URL STREAM FUNCTION [OPTIONS] | trigger ls [FUNCTION] | "
     "trigger rm|enable|disable ID",
     "consume a Redis stream; list, remove, enable and disable triggers",
     R"(Event source mappings and every trigger (docs/triggers.md).

  trigger add redis-stream URL STREAM FUNCTION
      consume STREAM of the Redis at URL (redis://HOST:PORT[/DB]) through a
      consumer group, in batches shaped as Lambda's SQS events; a message is
      acknowledged once FUNCTION succeeded with it; prints the trigger's id
      --batch-size N      messages per invocation, 1-10000 (default 10)
      --max-wait D        how long a batch may wait to fill (default 500ms)
      --max-attempts N    deliveries before a message goes to the
                          dead-letter stream (default 3)
      --group NAME        the consumer group (default thatch)
      --dead-letter NAME  the dead-letter stream (default STREAM:dead-letter)
      --disabled          added disabled
  trigger ls [FUNCTION]   every trigger (of FUNCTION), with what it did
                          since thatchd started
  trigger rm ID           remove a trigger; exits with 5 if there was none
  trigger disable ID      keep it, but start nothing with it
  trigger enable ID       start again
A function's triggers are removed with it (`thatch rm`).
)",
     kTriggerOptions, "a trigger command: add, ls, rm, enable or disable", 1, 5, triggerCommand},
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

constexpr std::string_view kToolSynopsis = "[--socket PATH] [--json] COMMAND [ARGS...]";

constexpr std::string_view kGlobalOptionsHelp =
    R"(Options, before or after the command:
  --socket PATH  thatchd's address: a Unix socket's path, unix:PATH,
                 tcp:HOST:PORT or tls:HOST:PORT (default: $THATCH_SOCKET,
                 else /run/thatch/thatchd.sock); $THATCH_TOKEN is the
                 token it logs in with, $THATCH_TLS_CA the CA for tls:
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

}  // namespace

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

std::span<const Command> commands() {
  return kCommands;
}

std::string usageLine(const Command* command) {
  if (!command) return "usage: thatch " + std::string(kToolSynopsis) + "\n";
  return "usage: thatch " + std::string(command->synopsis) + "\n";
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
  const Command* command = findCommand(kCommands, invocation.args[0]);
  if (!command) throw UsageError(nullptr, "unknown command " + inQuotes(invocation.args[0]));
  writeOut(commandHelp(*command));
  return kExitOk;
}

}  // namespace cli
