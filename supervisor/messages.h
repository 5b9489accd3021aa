// Text for thatchd's messages: user input that may be hostile or binary,
// and failed system calls.
#pragma once

#include <kj/async.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <string_view>

namespace supervisor {

// `text` with control bytes escaped (\xNN) and cut after `limit` bytes
// (then "..."), so that it cannot garble a message or a log line.
std::string printable(std::string_view text, size_t limit);

// The length of the UTF-8 sequence starting at text[pos], or 0 when it is
// not one: overlong forms, surrogates and code points past U+10FFFF are not.
size_t utf8Length(std::string_view text, size_t pos);
bool isUtf8(std::string_view text);

// `text` as a JSON string literal. Bytes that are not UTF-8 become U+FFFD:
// JSON text must be UTF-8.
std::string jsonString(std::string_view text);

// printable(text, limit) in single quotes.
std::string quoted(std::string_view text, size_t limit);

// Throws std::system_error("<what>: <strerror>") for errno `err`: a failure
// of the host, as opposed to bad input.
[[noreturn]] void throwSystemError(const std::string& what, int err = errno);

// A kj exception whose description is `message` alone (KJ_EXCEPTION would
// prefix a computed message with its source text).
kj::Exception failure(kj::Exception::Type type, std::string_view message);

// For a kj::TaskSet whose failures have nowhere to go but stderr: one line,
// "thatchd: WHAT: DESCRIPTION".
class StderrTaskErrors final : public kj::TaskSet::ErrorHandler {
 public:
  explicit StderrTaskErrors(const char* what) : what_(what) {}
  void taskFailed(kj::Exception&& exception) override;

 private:
  const char* what_;
};

}  // namespace supervisor
