// thatch-zygote: one pre-initialised interpreter of one runtime, forking
// confined sandboxes on request. Started by the supervisor (or a test) with
// its control channel on an inherited fd:
//   thatch-zygote --runtime python3.11 --control-fd 3 [--import MOD]... [--path DIR]...

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "runtime/fork_server.h"
#include "runtime/interpreter.h"
#include "sandbox/cgroup.h"
#include "sandbox/seccomp.h"

namespace {

const char kUsage[] =
    "usage: thatch-zygote --runtime NAME --control-fd FD [--import MODULE]... [--path DIR]...\n"
    "                     [--cgroup-subdir NAME] [--cgroup-parent PATH]\n"
    "                     [--testing-stop-after-fork]\n"
    "runtimes: python3.11, python3.11-numpy\n";

struct Args {
  runtime::RuntimeConfig runtime;
  int controlFd = -1;
  std::string cgroupSubdir = "thatch";
  std::string cgroupParent;    // the sandboxes' parent cgroup, in place of <own>/<subdir>
  bool stopAfterFork = false;  // thatchd's [testing] zygote_stops_after_fork
};

Args parseArgs(int argc, char** argv) {
  Args args;
  std::string name;
  std::vector<std::string> imports, paths;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--runtime")
      name = value();
    else if (arg == "--control-fd")
      args.controlFd = std::stoi(value());
    else if (arg == "--import")
      imports.push_back(value());
    else if (arg == "--path")
      paths.push_back(value());
    else if (arg == "--cgroup-subdir")
      args.cgroupSubdir = value();
    else if (arg == "--cgroup-parent")
      args.cgroupParent = value();
    else if (arg == "--testing-stop-after-fork")
      args.stopAfterFork = true;
    else
      throw std::invalid_argument("unknown argument '" + arg + "'");
  }
  auto runtime = runtime::builtinRuntime(name);
  if (!runtime) throw std::invalid_argument("unknown runtime '" + name + "'");
  if (args.controlFd < 0) throw std::invalid_argument("--control-fd is required");
  args.runtime = *runtime;
  args.runtime.modules.insert(args.runtime.modules.end(), imports.begin(), imports.end());
  args.runtime.paths = paths;
  return args;
}

// Zeroes each string of a null-terminated array, in place.
void wipeStrings(char** strings) {
  for (; *strings; ++strings) memset(*strings, 0, strlen(*strings));
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  try {
    args = parseArgs(argc, argv);
  } catch (const std::exception& e) {
    fprintf(stderr, "thatch-zygote: %s\n%s", e.what(), kUsage);
    return 2;
  }
  // A sandbox's pid 1 is a fork of this process: what /proc/1/cmdline and
  // /proc/1/environ show there is this process's argument and environment
  // strings, which name the supervisor's cgroup layout and whatever its
  // environment held. Both wiped in place, now that they are parsed.
  wipeStrings(argv + 1);
  wipeStrings(environ);
  // Run from a memfd, its name would be "memfd:thatch-zy": ps, top and
  // pgrep look for this one.
  prctl(PR_SET_NAME, "thatch-zygote");
  // The supervisor's environment is none of the sandboxes' business (each
  // gets exactly the variables of its function), and a small os.environ is
  // cheap to replace in every child.
  clearenv();
  setenv("PATH", "/usr/local/bin:/usr/bin:/bin", 1);
  // Native libraries must not start worker threads in the zygote (OpenBLAS
  // under numpy would): it forks, and a forked thread pool is a deadlock.
  setenv("OPENBLAS_NUM_THREADS", "1", 1);
  setenv("OMP_NUM_THREADS", "1", 1);
  setenv("MKL_NUM_THREADS", "1", 1);
  // A supervisor that goes away must not take the zygote down mid-write.
  signal(SIGPIPE, SIG_IGN);
  try {
    runtime::Interpreter interpreter(args.runtime);
    auto cgroups = sandbox::detectCgroups(args.cgroupSubdir, args.cgroupParent);
    auto seccomp =
        std::make_shared<sandbox::SeccompProgram>(sandbox::SeccompPolicy::forPython().compile());
    runtime::ForkServer server(interpreter, args.controlFd, *cgroups, seccomp);
    if (args.stopAfterFork) server.stopAfterEachFork();
    return server.run();
  } catch (const std::exception& e) {
    fprintf(stderr, "thatch-zygote: %s\n", e.what());
    return 1;
  }
}
