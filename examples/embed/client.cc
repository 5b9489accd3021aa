// client: a program of your own talking to thatchd through the thatch
// library (thatch/thatch.h, `pkg-config thatch`). README.md beside this file
// says how to build and run it.
#include <thatch/thatch.h>

#include <cstdio>
#include <string>

#include "calls.h"

int main(int argc, char** argv) {
  example::Options options;
  std::string socket = thatch::Thatch::defaultAddress();
  bool parsed = example::parseArgs(argc, argv, options, [&](const std::string& arg, int& next) {
    if (arg != "--socket" || next + 1 >= argc) return false;
    socket = argv[++next];
    return true;
  });
  if (!parsed) {
    const char* usage =
        "usage: client [--socket PATH] [-n N] [FUNCTION_DIR]\n"
        "Deploys FUNCTION_DIR (default examples/hello) as embed-example on thatchd, invokes\n"
        "it 3 times, then N times at once (default 8).\n";
    fputs(usage, stderr);
    return 2;
  }
  return example::run("client", options, [&] { return thatch::Thatch::connect(socket); });
}
