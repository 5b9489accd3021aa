// thatch-replay: replays an Azure Functions 2019 trace through thatchd's
// warm pools under each keep-alive policy and prints, per policy, the cold
// starts, the memory kept idle and the sandboxes started.
//
//   thatch-replay TRACE.csv [--durations FILE] [--memory FILE|SIZE]
//                 [--policy ttl,lru,greedy-dual,histogram] [--idle-ttl 10m]
//                 [--max-warm 8] [--host-memory 4GiB] [--host-warm 256]
//
// TRACE.csv is invocations_per_function_md.anon.d01.csv (or one like it);
// --durations is function_durations_percentiles.anon.d01.csv, --memory
// app_memory_percentiles.anon.d01.csv, or a size: the host's cap on idle
// memory (as --host-memory). docs/thatching.md, "Tuning from a trace".
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/units.h"
#include "bench/replay.h"

namespace {

using supervisor::KeepAliveKind;

struct Help {};

struct Arguments {
  std::string trace, durations, memory;
  std::vector<KeepAliveKind> policies;
  replay::Options options;
};

const char kUsage[] =
    "usage: thatch-replay TRACE.csv [--durations FILE] [--memory FILE|SIZE]\n"
    "                     [--policy ttl,lru,greedy-dual,histogram] [--idle-ttl 10m]\n"
    "                     [--max-warm 8] [--host-memory 4GiB] [--host-warm 256]\n"
    "--memory names the app memory file, or gives the host's cap on idle memory\n"
    "(a size, as --host-memory); docs/thatching.md, \"Tuning from a trace\".\n";

std::vector<KeepAliveKind> parsePolicies(const std::string& list) {
  std::vector<KeepAliveKind> kinds;
  size_t start = 0;
  for (;;) {
    size_t comma = list.find(',', start);
    std::string name = list.substr(start, comma - start);
    std::optional<KeepAliveKind> kind = supervisor::parseKeepAlive(name);
    if (!kind)
      throw std::invalid_argument("no policy '" + name + "' (" + supervisor::keepAliveNames() +
                                  ")");
    kinds.push_back(*kind);
    if (comma == std::string::npos) return kinds;
    start = comma + 1;
  }
}

Arguments parseArguments(int argc, char** argv) {
  Arguments args;
  auto all = supervisor::allKeepAliveKinds();
  args.policies.assign(all.begin(), all.end());
  std::map<std::string, std::function<void(const std::string&)>> flags = {
      {"--durations", [&](const std::string& v) { args.durations = v; }},
      // A file that exists is the memory file; anything else must be a size.
      {"--memory",
       [&](const std::string& v) {
         if (access(v.c_str(), F_OK) == 0)
           args.memory = v;
         else
           args.options.host.maxWarmMemoryBytes = base::parseSize(v);
       }},
      {"--policy", [&](const std::string& v) { args.policies = parsePolicies(v); }},
      {"--idle-ttl", [&](const std::string& v) { args.options.idleTtl = base::parseDuration(v); }},
      {"--host-memory",
       [&](const std::string& v) { args.options.host.maxWarmMemoryBytes = base::parseSize(v); }},
      {"--max-warm",
       [&](const std::string& v) { args.options.maxWarm = static_cast<unsigned>(std::stoul(v)); }},
      {"--host-warm",
       [&](const std::string& v) {
         args.options.host.maxWarm = static_cast<unsigned>(std::stoul(v));
       }},
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") throw Help{};
    if (auto flag = flags.find(arg); flag != flags.end()) {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      try {
        flag->second(argv[++i]);
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(arg + " " + argv[i] + ": " + e.what());
      } catch (const std::out_of_range& e) {
        throw std::invalid_argument(arg + " " + argv[i] + ": out of range");
      }
    } else if (arg.rfind("--", 0) == 0 || !args.trace.empty()) {
      throw std::invalid_argument("unexpected argument '" + arg + "'");
    } else {
      args.trace = arg;
    }
  }
  if (args.trace.empty()) throw std::invalid_argument("no trace file given");
  return args;
}

std::ifstream open(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw replay::TraceError(path + ": cannot open: " + std::strerror(errno));
  return in;
}

}  // namespace

int main(int argc, char** argv) {
  Arguments args;
  try {
    args = parseArguments(argc, argv);
  } catch (const Help&) {
    fputs(kUsage, stdout);
    return 0;
  } catch (const std::exception& e) {
    fprintf(stderr, "thatch-replay: %s\n%s", e.what(), kUsage);
    return 2;
  }
  try {
    std::ifstream traceFile = open(args.trace);
    replay::Trace trace = replay::readInvocations(traceFile, args.trace);
    if (!args.durations.empty()) {
      std::ifstream in = open(args.durations);
      replay::readDurations(trace, in, args.durations);
    }
    if (!args.memory.empty()) {
      std::ifstream in = open(args.memory);
      replay::readMemory(trace, in, args.memory);
    }
    printf("%zu functions, %u minutes; idle_ttl %s, host caps %u sandboxes and %s idle\n",
           trace.functions.size(), trace.minutes,
           base::formatDuration(
               std::chrono::duration_cast<std::chrono::milliseconds>(args.options.idleTtl))
               .c_str(),
           args.options.host.maxWarm,
           base::formatSize(args.options.host.maxWarmMemoryBytes).c_str());
    printf("%-12s %12s %8s %14s %9s %9s %10s %9s\n", "policy", "invocations", "cold %",
           "wasted GiB-s", "p75 cold", "p99 cold", "sandboxes", "prewarms");
    for (KeepAliveKind kind : args.policies) {
      replay::Options options = args.options;
      options.policy = kind;
      replay::Result r = replay::run(trace, options);
      printf("%-12s %12llu %8.3f %14.0f %9.3f %9.3f %10llu %9llu\n",
             supervisor::keepAliveName(kind), static_cast<unsigned long long>(r.invocations),
             r.coldPercent(), r.wastedGibSeconds, r.coldRatioP75, r.coldRatioP99,
             static_cast<unsigned long long>(r.sandboxesStarted),
             static_cast<unsigned long long>(r.prewarms));
    }
  } catch (const std::exception& e) {
    fprintf(stderr, "thatch-replay: %s\n", e.what());
    return 1;
  }
  return 0;
}
