// embed: the thatch library in a program of your own. Deploys a function,
// invokes it a few times one after another, then many times at once on one
// connection. README.md beside this file says how to build and run it.
#include <thatch/thatch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

namespace {

using Clock = std::chrono::steady_clock;

constexpr char kUsage[] =
    "usage: embed [--socket PATH] [-n N] [FUNCTION_DIR]\n"
    "       embed --in-process [--config FILE] [--state-dir DIR] [--zygote PATH] [-n N]\n"
    "             [FUNCTION_DIR]\n"
    "Deploys FUNCTION_DIR (default examples/hello) as embed-example, invokes it 3 times,\n"
    "then N times at once (default 8). --in-process runs the supervisor in this program\n"
    "(root only) instead of connecting to thatchd.\n";
constexpr char kFunction[] = "embed-example";
constexpr int kBlockingCalls = 3;

struct Options {
  std::string socket = thatch::Thatch::defaultAddress();
  bool inProcess = false;
  thatch::InProcessOptions inProcessOptions;
  int concurrent = 8;
  std::string functionDir = "examples/hello";
};

bool parseArgs(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    bool hasValue = i + 1 < argc;
    if (arg == "--in-process")
      options.inProcess = true;
    else if (arg == "--socket" && hasValue)
      options.socket = argv[++i];
    else if (arg == "--config" && hasValue)
      options.inProcessOptions.configPath = argv[++i];
    else if (arg == "--state-dir" && hasValue)
      options.inProcessOptions.stateDir = argv[++i];
    else if (arg == "--zygote" && hasValue)
      options.inProcessOptions.zygotePath = argv[++i];
    else if (arg == "-n" && hasValue)
      options.concurrent = std::atoi(argv[++i]);
    else if (!arg.empty() && arg[0] != '-')
      options.functionDir = arg;
    else
      return false;
  }
  return options.concurrent > 0 && options.concurrent <= 1000;
}

double millis(std::chrono::nanoseconds d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

// "call 2: ok, warm, 0.61 ms round trip, 0.40 ms in thatchd: {...}" (no round
// trip for calls made together); false unless the handler returned.
bool report(int call, const thatch::Result& result, double roundTripMs = -1) {
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

std::string payload(int call) {
  return R"({"name":"call )" + std::to_string(call) + R"("})";
}

bool run(thatch::Thatch& client, const Options& options) {
  thatch::FunctionInfo info = client.deploy(kFunction, options.functionDir);
  printf("deployed %s version %llu from %s\n", kFunction,
         static_cast<unsigned long long>(info.version), options.functionDir.c_str());

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
  auto calls = kj::heapArrayBuilder<kj::Promise<thatch::Result>>(options.concurrent);
  for (int i = 0; i < options.concurrent; ++i)
    calls.add(client.invokeAsync(kFunction, payload(call + i)));
  kj::Array<thatch::Result> results = kj::joinPromises(calls.finish()).wait(client.waitScope());
  double elapsed = millis(Clock::now() - start);
  int ok = 0, cold = 0;
  for (const thatch::Result& result : results) {
    ok += report(call++, result);
    cold += result.cold;
  }
  printf("%d at once: %d ok, %d cold, %.2f ms for all\n", options.concurrent, ok, cold, elapsed);
  return allOk && ok == options.concurrent;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parseArgs(argc, argv, options)) {
    fputs(kUsage, stderr);
    return 2;
  }
  try {
    std::unique_ptr<thatch::Thatch> client =
        options.inProcess ? thatch::Thatch::inProcess(options.inProcessOptions)
                          : thatch::Thatch::connect(options.socket);
    return run(*client, options) ? 0 : 1;
  } catch (const thatch::Error& e) {
    fprintf(stderr, "embed: %s\n", e.what());
    return 1;
  } catch (const kj::Exception& e) {
    // What the *Async promises fail with, e.g. when thatchd goes away.
    fprintf(stderr, "embed: %s\n", thatch::errorFrom(e).what());
    return 1;
  }
}
