// Failures of system calls, carrying the call and errno: a failure of the
// host, as opposed to bad input. The one error type for them in every layer.
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <system_error>

namespace base {

// what(): "<call or what was attempted>: <strerror>".
class SysError : public std::system_error {
 public:
  SysError(const std::string& what, int err);
  int error() const { return code().value(); }
};

// Throws SysError for `what` and errno `err`.
[[noreturn]] void throwSysError(std::string_view what, int err = errno);

// Returns `rc`, or throws SysError for `what` when rc < 0.
inline long check(long rc, std::string_view what) {
  if (rc < 0) throwSysError(what);
  return rc;
}

}  // namespace base
