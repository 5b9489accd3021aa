// embed: thatch's supervisor inside a program of your own, no thatchd
// (thatch/embedded.h, `pkg-config thatch-embedded`). README.md beside this
// file says how to build and run it.
#include <thatch/embedded.h>
#include <thatch/thatch.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "calls.h"

namespace {

constexpr char kUsage[] =
    "usage: embed [--config FILE] [--state-dir DIR] [--zygote PATH] [-n N] [FUNCTION_DIR]\n"
    "Runs thatch's supervisor in this program (root only), deploys FUNCTION_DIR (default\n"
    "examples/hello) as embed-example, invokes it 3 times, then N times at once (default 8).\n";

struct Options {
  thatch::InProcessOptions inProcess;
  int concurrent = 8;
  std::string functionDir = "examples/hello";
};

bool parseArgs(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    bool hasValue = i + 1 < argc;
    if (arg == "--config" && hasValue)
      options.inProcess.configPath = argv[++i];
    else if (arg == "--state-dir" && hasValue)
      options.inProcess.stateDir = argv[++i];
    else if (arg == "--zygote" && hasValue)
      options.inProcess.zygotePath = argv[++i];
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
    std::unique_ptr<thatch::Thatch> thatch = thatch::startInProcess(options.inProcess);
    return example::deployAndInvoke(*thatch, options.functionDir, options.concurrent) ? 0 : 1;
  } catch (const thatch::Error& e) {
    fprintf(stderr, "embed: %s\n", e.what());
    return 1;
  } catch (const kj::Exception& e) {
    fprintf(stderr, "embed: %s\n", thatch::errorFrom(e).what());
    return 1;
  }
}
