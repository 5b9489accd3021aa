#include "sandbox/sys_error.h"

#include <cstring>

namespace sandbox {

SysError::SysError(std::string what, int err)
    : std::runtime_error(what + ": " + std::strerror(err)), err_(err) {}

void throwSysError(std::string_view what, int err) {
  throw SysError(std::string(what), err);
}

}  // namespace sandbox
