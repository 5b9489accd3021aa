#include "supervisor/messages.h"

#include <cstdio>

namespace supervisor {

void StderrTaskErrors::taskFailed(kj::Exception&& exception) {
  fprintf(stderr, "thatchd: %s: %s\n", what_, exception.getDescription().cStr());
}

}  // namespace supervisor
