// thatchd's log: one line per event (an invocation's end, a kill, a zygote
// restart), as `key=value` text or as a JSON object, to a sink the daemon
// chooses (stderr by default).
#pragma once

#include <kj/async.h>

#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>

namespace supervisor {

class EventLog {
 public:
  enum class Format { kText, kJson };
  using Sink = std::function<void(std::string_view line)>;  // without the newline

  explicit EventLog(Format format = Format::kText, Sink sink = {});

  struct Field {
    const char* key;
    std::string value;
    bool number = false;  // unquoted in JSON
    Field(const char* k, std::string v) : key(k), value(std::move(v)) {}
    Field(const char* k, const char* v) : key(k), value(v) {}
    Field(const char* k, uint64_t v) : key(k), value(std::to_string(v)), number(true) {}
    Field(const char* k, bool v) : key(k), value(v ? "true" : "false"), number(true) {}
  };
  void write(std::string_view event, std::initializer_list<Field> fields) const;

  // The line write() hands to the sink.
  std::string format(std::string_view event, std::initializer_list<Field> fields) const;

 private:
  Format format_;
  Sink sink_;
};

// A sink that gathers the lines logged during one turn of the event loop
// and writes them to stderr in one write() once everything else queued has
// run: an invocation's answer goes out before its log line, and under load
// many lines share a syscall. Flushes what is left when destroyed.
class StderrBatch {
 public:
  StderrBatch();
  ~StderrBatch();
  StderrBatch(const StderrBatch&) = delete;
  StderrBatch& operator=(const StderrBatch&) = delete;

  EventLog::Sink sink();
  void flush();

 private:
  std::string pending_;
  bool scheduled_ = false;
  kj::Own<kj::TaskSet> tasks_;
};

}  // namespace supervisor
