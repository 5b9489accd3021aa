// embed: thatch's supervisor inside a program of your own, no thatchd
// (thatch/embedded.h, `pkg-config thatch-embedded`). README.md beside this
// file says how to build and run it.
#include <thatch/embedded.h>
#include <thatch/thatch.h>

#include <cstdio>
#include <string>

#include "calls.h"

int main(int argc, char** argv) {
  example::Options options;
  thatch::InProcessOptions inProcess;
  bool parsed = example::parseArgs(argc, argv, options, [&](const std::string& arg, int& next) {
    std::string* value = arg == "--config"      ? &inProcess.configPath
                         : arg == "--state-dir" ? &inProcess.stateDir
                         : arg == "--zygote"    ? &inProcess.zygotePath
                                                : nullptr;
    if (!value || next + 1 >= argc) return false;
    *value = argv[++next];
    return true;
  });
  if (!parsed) {
    const char* usage =
        "usage: embed [--config FILE] [--state-dir DIR] [--zygote PATH] [-n N] [FUNCTION_DIR]\n"
        "Runs thatch's supervisor in this program (root only), deploys FUNCTION_DIR (default\n"
        "examples/hello) as embed-example, invokes it 3 times, then N times at once (default 8).\n";
    fputs(usage, stderr);
    return 2;
  }
  return example::run("embed", options, [&] { return thatch::startInProcess(inProcess); });
}
