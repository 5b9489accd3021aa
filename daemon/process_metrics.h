// thatchd's own figures for /metrics (process_*), as Prometheus' client
// libraries read theirs: /proc/self/stat, /proc/stat's boot time, the
// number of entries of /proc/self/fd and RLIMIT_NOFILE. Small bounded
// reads, on the loop: two files and a stat() of the fd directory (before
// Linux 6.2, a listing of it).
#pragma once

#include <string>

#include "daemon/metrics.h"

namespace thatchd {

// Throws base::SysError naming the call that failed, std::runtime_error when
// a file is not as the kernel writes it.
ProcessMetrics readProcessMetrics(const std::string& proc = "/proc");

}  // namespace thatchd
