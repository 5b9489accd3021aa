// client: a program of your own talking to thatchd through the thatch
// library (thatch/thatch.h, `pkg-config thatch`). README.md beside this file
// says how to build and run it.
#include <thatch/thatch.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "calls.h"

namespace {

constexpr char kUsage[] =
    "usage: client [--socket PATH] [-n N] [FUNCTION_DIR]\n"
    "Deploys FUNCTION_DIR (default examples/hello) as embed-example on thatchd, invokes\n"
    "it 3 times, then N times at once (default 8).\n";

struct Options {
  std::string socket = thatch::Thatch::defaultAddress();
  int concurrent = 8;
  std::string functionDir = "examples/hello";
};

bool parseArgs(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    bool hasValue = i + 1 < argc;
    if (arg == "--socket" && hasValue)
      options.socket = argv[++i];
    else if (arg == "-n" && hasValue)
      options.concurrent = std::atoi(argv[++i]);
    else if (!arg.empty() && arg[0] != '-')
      options.functionDir = arg;
    else
      return false;
  }
  return options.concurrent > 0 && options.concurrent <= 1000;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parseArgs(argc, argv, options)) {
    fputs(kUsage, stderr);
    return 2;
  }
  try {
    std::unique_ptr<thatch::Thatch> client = thatch::Thatch::connect(options.socket);
    return example::deployAndInvoke(*client, options.functionDir, options.concurrent) ? 0 : 1;
  } catch (const thatch::Error& e) {
    fprintf(stderr, "client: %s\n", e.what());
    return 1;
  } catch (const kj::Exception& e) {
    // What the *Async promises fail with, e.g. when thatchd goes away.
    fprintf(stderr, "client: %s\n", thatch::errorFrom(e).what());
    return 1;
  }
}
