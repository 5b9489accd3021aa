// kj's side of thatchd's messages: exceptions that carry a message for the
// user, and failures of background tasks.
#pragma once

#include <kj/async.h>

#include <string_view>

namespace supervisor {

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
