#include "supervisor/messages.h"

#include <cstdio>
#include <system_error>

namespace supervisor {

std::string printable(std::string_view text, size_t limit) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i == limit) return out + "...";
    unsigned char u = static_cast<unsigned char>(text[i]);
    if (u < 0x20 || u == 0x7f) {
      char hex[8];
      snprintf(hex, sizeof hex, "\\x%02x", u);
      out += hex;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::string quoted(std::string_view text, size_t limit) {
  return "'" + printable(text, limit) + "'";
}

void throwSystemError(const std::string& what, int err) {
  throw std::system_error(err, std::generic_category(), what);
}

kj::Exception failure(kj::Exception::Type type, std::string_view message) {
  return kj::Exception(type, __FILE__, __LINE__, kj::heapString(message.data(), message.size()));
}

void StderrTaskErrors::taskFailed(kj::Exception&& exception) {
  fprintf(stderr, "thatchd: %s: %s\n", what_, exception.getDescription().cStr());
}

}  // namespace supervisor
