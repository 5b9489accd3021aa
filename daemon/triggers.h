// What starts a function besides a client's invoke (docs/triggers.md): a
// function URL on the HTTP listener, a schedule, a Redis stream. This is
// their one store: the definitions, persisted in STATE/triggers.json, and
// what each has done since thatchd started. The kinds that run on their
// own (schedules, streams) have a TriggerRunner, which the store starts
// and stops as triggers come, go, are enabled and disabled; function URLs
// are looked up by the HTTP API when a request comes.
//
// Single-threaded: thatchd's loop. The file is small and bounded
// (kMaxTriggers); it is rewritten whole, atomically, on each change.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "api/thatch.capnp.h"
#include "supervisor/event_log.h"

namespace thatchd {

enum class TriggerKind { kUrl, kSchedule, kRedisStream };
// "url", "schedule", "redis-stream": the CLI's words, the ids' prefixes.
const char* kindName(TriggerKind kind);

struct FunctionUrlSettings {
  std::string urlId;                  // 32 lowercase letters and digits
  std::string authType = "NONE";      // NONE | AWS_IAM
  std::string payloadFormat = "2.0";  // "2.0" | "1.0"
  bool operator==(const FunctionUrlSettings&) const = default;
};

struct ScheduleSettings {
  std::string expression;  // rate(...) | cron(...), UTC
  std::string detail;      // JSON: the scheduled event's detail; "" = {}
  bool operator==(const ScheduleSettings&) const = default;
};

struct RedisStreamSettings {
  std::string url;  // redis://HOST:PORT[/DB]
  std::string stream;
  std::string group = "thatch";            // the consumer group
  unsigned batchSize = 10;                 // 1..10000
  std::chrono::milliseconds maxWait{500};  // a batch waits at most this to fill
  unsigned maxAttempts = 3;                // deliveries before the dead-letter stream
  std::string deadLetterStream;            // "" until checked: then STREAM:dead-letter
  bool operator==(const RedisStreamSettings&) const = default;
};

struct Trigger {
  std::string id;  // "url-NAME", "schedule-N", "redis-stream-N": the store's
  TriggerKind kind = TriggerKind::kUrl;
  std::string function;
  bool enabled = true;
  int64_t createdUnixMs = 0;
  // The kind's settings; the others are left empty.
  FunctionUrlSettings url;
  ScheduleSettings schedule;
  RedisStreamSettings redis;
};

// What a trigger has done since thatchd started (missed: at its start).
struct TriggerStats {
  uint64_t deliveries = 0;    // invocations it started (a stream: batches)
  uint64_t messages = 0;      // a stream's messages delivered, retries too
  uint64_t failures = 0;      // invocations that did not succeed
  uint64_t skipped = 0;       // schedule runs skipped: the previous run still ran
  uint64_t missed = 0;        // schedule runs due while thatchd was down
  uint64_t lag = 0;           // a stream's entries its group has not read yet
  uint64_t deadLettered = 0;  // messages moved to the dead-letter stream
  int64_t lastRunUnixMs = 0;
  int64_t nextRunUnixMs = 0;  // a schedule's next due time; 0 when none or disabled
  std::string lastError;      // why the last delivery failed, or the broker is unreachable
};

// A definition thatchd refuses; what() says why, for the client.
class TriggerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Runs the triggers of one kind.
class TriggerRunner {
 public:
  virtual ~TriggerRunner() = default;
  // Before a trigger is added: throws TriggerError for bad settings (a
  // schedule's expression, with its position), fills in defaults.
  virtual void check(Trigger& trigger) = 0;
  // It was added, enabled, or found at start enabled: from now on it runs.
  // `stats` is the store's, for as long as the trigger runs.
  virtual void start(const Trigger& trigger, TriggerStats& stats) = 0;
  // Removed or disabled: nothing more starts for it. What it has under way
  // may finish; a stream's unacknowledged messages stay in the broker.
  virtual void stop(const std::string& id) = 0;
  // Removed (after stop() if it ran, or disabled): what the runner keeps
  // of it (a schedule's last run, on disk) goes too.
  virtual void forget(const std::string& id) { (void)id; }
};

class Triggers {
 public:
  static constexpr size_t kMaxTriggers = 4096;

  // Loads `path` (STATE/triggers.json; none there: no triggers). Throws
  // std::runtime_error naming the file for one it cannot read or parse:
  // thatchd does not start without the triggers it was given.
  Triggers(std::string path, supervisor::EventLog log);
  // Stops nothing: the runners are unset, or gone, first (they stop
  // their triggers as they go).
  ~Triggers();
  Triggers(const Triggers&) = delete;
  Triggers& operator=(const Triggers&) = delete;

  // The runner of `kind`; the enabled triggers of that kind start now.
  // `runner` must outlive the store or be unset (nullptr) first.
  void setRunner(TriggerKind kind, TriggerRunner* runner);

  // Checks `trigger` (its kind's runner), gives it its id (and a URL its
  // urlId), stores it and starts it when enabled. Throws TriggerError for
  // bad settings, a second URL for one function, too many triggers, or a
  // store that cannot be written (then nothing changed).
  const Trigger& add(Trigger trigger);
  // False if there is no such trigger.
  bool remove(const std::string& id);
  // Throws TriggerError if there is no such trigger.
  void setEnabled(const std::string& id, bool enabled);
  // A function URL's auth type and payload format change
  // (UpdateFunctionUrlConfig); its urlId, creation time and stats stay.
  // Throws TriggerError if `id` is no URL, for bad settings, or a store
  // that cannot be written (then nothing changed).
  const Trigger& updateUrl(const std::string& id, FunctionUrlSettings settings);
  // A removed function's: every trigger of `function` goes. Their number.
  size_t removeFunction(const std::string& function);

  // By function, then id; `function` "" = all.
  std::vector<const Trigger*> list(const std::string& function = "") const;
  const Trigger* find(const std::string& id) const;
  const Trigger* urlOf(const std::string& function) const;
  const Trigger* byUrlId(const std::string& urlId) const;
  // Where the HTTP listener serves (its bound "HOST:PORT", set by the
  // Lambda API when it starts; "" without one): what URLs are made of.
  void setHttpAddress(std::string address) { httpAddress_ = std::move(address); }
  const std::string& httpAddress() const { return httpAddress_; }

  // Null if there is no such trigger.
  TriggerStats* stats(const std::string& id);
  const TriggerStats* stats(const std::string& id) const;

 private:
  struct Entry {
    Trigger trigger;
    TriggerStats stats;
  };
  void load();
  void save() const;  // throws TriggerError
  void startIfEnabled(Entry& entry);
  void stopIfRunning(const Trigger& trigger);
  TriggerRunner* runnerOf(TriggerKind kind) const;

  std::string path_;
  supervisor::EventLog log_;
  std::map<std::string, Entry> entries_;       // by id
  std::map<std::string, std::string> urlIds_;  // a URL's urlId: its trigger's id
  uint64_t lastNumber_ = 0;                    // of the ids "KIND-N": never reused while running
  std::map<TriggerKind, TriggerRunner*> runners_;
  std::string httpAddress_;
};

// Where a function URL is served: http://URLID.lambda-url.REGION.localhost:PORT/
// for thatchd's http_listen "HOST:PORT" (names under .localhost resolve to
// loopback; a client elsewhere sends the Host header, or uses the path form
// /lambda-url/URLID/ on the listener's address: docs/triggers.md). "" when
// there is no HTTP listener.
std::string functionUrlAddress(const std::string& httpListen, const std::string& region,
                               const std::string& urlId);

// The wire's Trigger (api/thatch.capnp), both ways. fromWire throws
// TriggerError for an unknown kind.
void toWire(const Trigger& trigger, const TriggerStats* stats, thatch::api::Trigger::Builder out);
Trigger triggerFromWire(thatch::api::Trigger::Reader in);

}  // namespace thatchd
