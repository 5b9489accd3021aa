// kj exceptions that carry a message for the user, and nothing else.
#pragma once

#include <kj/exception.h>

#include <string_view>

namespace base {

// A kj exception whose description is `message` alone (KJ_EXCEPTION would
// prefix a computed message with its source text).
inline kj::Exception failure(kj::Exception::Type type, std::string_view message) {
  return kj::Exception(type, __FILE__, __LINE__, kj::heapString(message.data(), message.size()));
}

}  // namespace base
