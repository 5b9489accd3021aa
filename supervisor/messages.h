// kj's side of thatchd's messages: exceptions that carry a message for the
// user (base/kj_errors.h), and failures of background tasks.
#pragma once

#include <kj/async.h>

#include <string_view>

#include "base/kj_errors.h"

namespace supervisor {

using base::failure;

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
