#include "supervisor/event_log.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "base/text.h"
#include "supervisor/messages.h"

namespace supervisor {

using base::jsonString;

namespace {

// Text values are quoted (JSON-style) only when they would otherwise be
// ambiguous: empty, or holding spaces, quotes, '=' or control characters.
void appendTextValue(std::string& out, std::string_view value) {
  bool plain = !value.empty();
  for (unsigned char c : value)
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) plain = false;
  if (plain) {
    out += value;
  } else {
    out += jsonString(value);
  }
}

}  // namespace

EventLog::EventLog(Format format, Sink sink) : format_(format), sink_(std::move(sink)) {
  if (!sink_)
    sink_ = [](std::string_view line) {
      fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
    };
}

std::string EventLog::format(std::string_view event, std::initializer_list<Field> fields) const {
  std::string line;
  if (format_ == Format::kJson) {
    line = "{\"event\":";
    line += jsonString(event);
    for (const Field& field : fields) {
      line += ',';
      line += jsonString(field.key);
      line += ':';
      if (field.number) {
        line += field.value;
      } else {
        line += jsonString(field.value);
      }
    }
    line += '}';
    return line;
  }
  line = "thatchd: ";
  line += event;
  for (const Field& field : fields) {
    line += ' ';
    line += field.key;
    line += '=';
    appendTextValue(line, field.value);
  }
  return line;
}

namespace {
StderrTaskErrors flushErrors("log flush failed");
}  // namespace

StderrBatch::StderrBatch() : tasks_(kj::heap<kj::TaskSet>(flushErrors)) {}

StderrBatch::~StderrBatch() {
  tasks_ = nullptr;
  flush();
}

EventLog::Sink StderrBatch::sink() {
  return [this](std::string_view line) {
    pending_ += line;
    pending_ += '\n';
    if (scheduled_) return;
    scheduled_ = true;
    tasks_->add(kj::evalLast([this]() { flush(); }));
  };
}

void StderrBatch::flush() {
  scheduled_ = false;
  size_t done = 0;
  while (done < pending_.size()) {
    ssize_t n = ::write(STDERR_FILENO, pending_.data() + done, pending_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // stderr is gone: nothing better to do with the lines
    done += size_t(n);
  }
  pending_.clear();
}

void EventLog::write(std::string_view event, std::initializer_list<Field> fields) const {
  sink_(format(event, fields));
}

}  // namespace supervisor
