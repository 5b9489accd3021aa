#include "base/sys_error.h"

namespace base {

SysError::SysError(const std::string& what, int err)
    : std::system_error(err, std::generic_category(), what) {}

void throwSysError(std::string_view what, int err) {
  throw SysError(std::string(what), err);
}

}  // namespace base
