#include "sandbox/rlimits.h"

#include <algorithm>
#include <string>

#include "base/sys_error.h"

namespace sandbox {

using base::check;
namespace {

struct NamedResource {
  int resource;
  const char* name;
};

constexpr NamedResource kNames[] = {
    {RLIMIT_AS, "RLIMIT_AS"},
    {RLIMIT_CORE, "RLIMIT_CORE"},
    {RLIMIT_CPU, "RLIMIT_CPU"},
    {RLIMIT_DATA, "RLIMIT_DATA"},
    {RLIMIT_FSIZE, "RLIMIT_FSIZE"},
    {RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"},
    {RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE"},
    {RLIMIT_NOFILE, "RLIMIT_NOFILE"},
    {RLIMIT_NPROC, "RLIMIT_NPROC"},
    {RLIMIT_RTPRIO, "RLIMIT_RTPRIO"},
    {RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING"},
    {RLIMIT_STACK, "RLIMIT_STACK"},
};

constexpr rlim_t kMiB = 1024 * 1024;

}  // namespace

std::vector<Rlimit> defaultRlimits() {
  return {
      {RLIMIT_CORE, 0, 0},                       // a core dump could fill the disk or leak memory
      {RLIMIT_NOFILE, 1024, 1024},               // bounds kernel memory held in open files
      {RLIMIT_FSIZE, 1024 * kMiB, 1024 * kMiB},  // writable places are size-limited tmpfs anyway
      {RLIMIT_STACK, 8 * kMiB, 8 * kMiB},
      {RLIMIT_NPROC, 1024, 1024},              // counted per host uid, which is unique per sandbox
      {RLIMIT_MEMLOCK, 64 * 1024, 64 * 1024},  // locked pages escape reclaim
      {RLIMIT_MSGQUEUE, 0, 0},
      {RLIMIT_RTPRIO, 0, 0},
  };
}

std::vector<Rlimit> withRlimit(std::vector<Rlimit> limits, int resource, rlim_t value) {
  auto it = std::find_if(limits.begin(), limits.end(),
                         [&](const Rlimit& l) { return l.resource == resource; });
  if (it == limits.end()) it = limits.insert(limits.end(), Rlimit{resource, 0, 0});
  it->soft = it->hard = value;
  return limits;
}

void applyRlimits(const std::vector<Rlimit>& limits) {
  for (const Rlimit& limit : limits) {
    rlimit value{limit.soft, limit.hard};
    check(setrlimit(limit.resource, &value),
          std::string("setrlimit ") + rlimitName(limit.resource));
  }
}

const char* rlimitName(int resource) {
  for (const auto& named : kNames)
    if (named.resource == resource) return named.name;
  return "RLIMIT_?";
}

}  // namespace sandbox
