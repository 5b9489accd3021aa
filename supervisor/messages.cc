#include "supervisor/messages.h"

#include <cstdio>

namespace supervisor {

kj::Exception failure(kj::Exception::Type type, std::string_view message) {
  return kj::Exception(type, __FILE__, __LINE__, kj::heapString(message.data(), message.size()));
}

void StderrTaskErrors::taskFailed(kj::Exception&& exception) {
  fprintf(stderr, "thatchd: %s: %s\n", what_, exception.getDescription().cStr());
}

}  // namespace supervisor
