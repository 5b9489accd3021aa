// What both examples do with a thatch::Thatch, whichever way they got it:
// deploy a function, invoke it a few times one after another, then many
// times at once on one connection, and print each result with its timings.
#pragma once

#include <thatch/thatch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>

namespace example {

constexpr char kFunction[] = "embed-example";
constexpr int kBlockingCalls = 3;

inline double millis(std::chrono::nanoseconds d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

// "call 2: ok, warm, 0.61 ms round trip, 0.40 ms in thatchd: {...}" (no round
// trip for calls made together); false unless the handler returned.
inline bool report(int call, const thatch::Result& result, double roundTripMs = -1) {
  bool ok = result.status == thatch::Status::kOk;
  printf("call %d: %s, %s", call, thatch::statusName(result.status), result.cold ? "cold" : "warm");
  if (roundTripMs >= 0) printf(", %.2f ms round trip", roundTripMs);
  std::string detail = ok                         ? result.payload
                       : result.errorType.empty() ? result.errorMessage
                                                  : result.errorType + ": " + result.errorMessage;
  printf(", %.2f ms in thatchd: %s\n", millis(result.queued + result.start + result.run),
         detail.c_str());
  return ok;
}

inline std::string payload(int call) {
  return R"({"name":"call )" + std::to_string(call) + R"("})";
}

// Deploys `functionDir`, then the calls; true if every one returned ok.
inline bool deployAndInvoke(thatch::Thatch& client, const std::string& functionDir,
                            int concurrent) {
  using Clock = std::chrono::steady_clock;
  thatch::FunctionInfo info = client.deploy(kFunction, functionDir);
  printf("deployed %s version %llu from %s\n", kFunction,
         static_cast<unsigned long long>(info.version), functionDir.c_str());

  bool allOk = true;
  int call = 1;
  for (; call <= kBlockingCalls; ++call) {
    Clock::time_point start = Clock::now();
    thatch::Result result = client.invoke(kFunction, payload(call));
    allOk &= report(call, result, millis(Clock::now() - start));
  }

  // Many calls in flight at once: start them all, then run the event loop
  // until every one has answered.
  Clock::time_point start = Clock::now();
  auto calls = kj::heapArrayBuilder<kj::Promise<thatch::Result>>(concurrent);
  for (int i = 0; i < concurrent; ++i)
    calls.add(client.invokeAsync(kFunction, payload(call + i)));
  kj::Array<thatch::Result> results = kj::joinPromises(calls.finish()).wait(client.waitScope());
  double elapsed = millis(Clock::now() - start);
  int ok = 0, cold = 0;
  for (const thatch::Result& result : results) {
    ok += report(call++, result);
    cold += result.cold;
  }
  printf("%d at once: %d ok, %d cold, %.2f ms for all\n", concurrent, ok, cold, elapsed);
  return allOk && ok == concurrent;
}

// The command line both share: [-n N] [FUNCTION_DIR], and the program's own
// options, which `own` takes (with the index of the next argument, to take
// a value) and returns false for any it does not know.
struct Options {
  int concurrent = 8;
  std::string functionDir = "examples/hello";
};
inline bool parseArgs(int argc, char** argv, Options& options,
                      const std::function<bool(const std::string& arg, int& next)>& own) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-n" && i + 1 < argc)
      options.concurrent = std::atoi(argv[++i]);
    else if (!arg.empty() && arg[0] != '-')
      options.functionDir = arg;
    else if (!own(arg, i))
      return false;
  }
  return options.concurrent > 0 && options.concurrent <= 1000;
}

// main() of both: deploys and invokes on what `open` returns; errors are one
// line on stderr, "PROGRAM: MESSAGE", and exit status 1.
inline int run(const char* program, const Options& options,
               const std::function<std::unique_ptr<thatch::Thatch>()>& open) {
  try {
    std::unique_ptr<thatch::Thatch> thatch = open();
    return deployAndInvoke(*thatch, options.functionDir, options.concurrent) ? 0 : 1;
  } catch (const thatch::Error& e) {
    fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  } catch (const kj::Exception& e) {
    // What the *Async promises fail with, e.g. when thatchd goes away.
    fprintf(stderr, "%s: %s\n", program, thatch::errorFrom(e).what());
    return 1;
  }
}

}  // namespace example
