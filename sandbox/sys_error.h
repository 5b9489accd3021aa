// Errors from system calls, carrying the call and errno.
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>
#include <string_view>

namespace sandbox {

class SysError : public std::runtime_error {
 public:
  SysError(std::string what, int err);
  int error() const { return err_; }

 private:
  int err_;
};

// Throws SysError("<what>: <strerror>") for errno `err`.
[[noreturn]] void throwSysError(std::string_view what, int err = errno);

// Returns `rc`, or throws SysError for `what` when rc < 0.
inline long check(long rc, std::string_view what) {
  if (rc < 0) throwSysError(what);
  return rc;
}

}  // namespace sandbox
