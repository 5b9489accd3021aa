// Redis stream event source mappings (docs/triggers.md, "Redis streams"):
// a mapping consumes a stream through a consumer group and hands batches of
// its entries to a function in the shape of Lambda's SQS events; a message
// is acknowledged (XACK) only once the function succeeded with it, retried
// after a backoff when it did not, and moved to a dead-letter stream after
// maxAttempts deliveries. At least once: what thatchd has not acknowledged
// stays in the group's pending list, which a mapping reads before anything
// new, also after a restart (its consumer name is stable).
//
// Each running mapping has a thread of its own that speaks to the broker
// with libhiredis' blocking API: hiredis' async API reads once per
// readiness callback and expects level-triggered readiness, where kj's
// UnixEventPort is edge-triggered, and its connect resolves names with a
// blocking getaddrinfo(); a thread keeps every broker round trip (and a
// broker that hangs) off thatchd's loop. The loop only invokes: the thread
// hands it one batch at a time (a mailbox and an eventfd the loop
// observes) and waits for the answer, so memory is bounded by one batch
// per mapping.
#pragma once

#include <kj/async-unix.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/triggers.h"
#include "supervisor/event_log.h"
#include "supervisor/stats.h"

namespace thatchd {

// redis://HOST:PORT[/DB]
struct RedisAddress {
  std::string host;
  int port = 6379;
  unsigned db = 0;
};
// Throws TriggerError naming what is wrong with `url`.
RedisAddress parseRedisUrl(const std::string& url);

// One stream entry as a batch carries it.
struct StreamMessage {
  std::string id;  // the entry's id, "MS-SEQ"
  std::vector<std::pair<std::string, std::string>> fields;
  unsigned attempts = 1;       // deliveries so far, this one included
  int64_t firstReceiveMs = 0;  // when thatchd first delivered it (this run), ms since the epoch
};

// What the event says of where its messages come from.
struct EventSource {
  std::string triggerId;
  std::string stream;
  std::string region;     // [lambda] region
  std::string accountId;  // [lambda] account_id
};

// The SQS-shaped event ({"Records": [...]}) of a batch.
std::string sqsEvent(const std::vector<StreamMessage>& batch, const EventSource& source);

// What a successful invocation's answer says of its batch (Lambda's partial
// batch response): the ids of the messages that failed, or the whole batch
// failed (`wholeBatch`, with `why`) for a malformed batchItemFailures or an
// itemIdentifier that is not in the batch.
struct BatchVerdict {
  bool wholeBatch = false;
  std::set<std::string> failed;
  std::string why;
};
BatchVerdict judgeAnswer(std::string_view answer, const std::vector<StreamMessage>& batch);

// The consumer name of a mapping: stable for one state directory and
// trigger id, so that a restarted thatchd reads its own pending entries.
std::string consumerName(const std::string& stateDir, const std::string& triggerId);

class RedisStreamRunner final : public TriggerRunner {
 public:
  // The supervisor's invoke (RequestResponse), on the loop.
  using Invoke = std::function<kj::Promise<supervisor::InvokeResult>(const std::string& function,
                                                                     std::string payload)>;
  struct Options {
    std::string stateDir;
    std::string region = "us-east-1";
    std::string accountId = "000000000000";
    // After a failed batch, doubled with each failure in a row, up to maxRetryDelay.
    std::chrono::milliseconds retryDelay{250};
    std::chrono::milliseconds maxRetryDelay{10'000};
    // Entries pending this long with another consumer of the group (a
    // removed mapping's, a host's that is gone) are claimed (XAUTOCLAIM)
    // and delivered here: twice Lambda's longest timeout, longer than a
    // batch under way elsewhere should run.
    std::chrono::milliseconds claimIdleAfter = std::chrono::minutes(30);
  };

  RedisStreamRunner(Options options, kj::UnixEventPort& eventPort, Invoke invoke,
                    supervisor::EventLog log = supervisor::EventLog());
  // Stops every mapping: each finishes the batch whose answer it has (its
  // acknowledgements sent) and its thread is joined. Bounded: a thread
  // waits on the broker at most kBrokerTimeout at a time.
  ~RedisStreamRunner() noexcept override;
  RedisStreamRunner(const RedisStreamRunner&) = delete;
  RedisStreamRunner& operator=(const RedisStreamRunner&) = delete;

  void check(Trigger& trigger) override;
  void start(const Trigger& trigger, TriggerStats& stats) override;
  void stop(const std::string& id) override;

  size_t running() const { return running_.size(); }
  size_t stopping() const { return stopping_.size(); }  // finishing their batch

 private:
  class Mapping;
  void reap();  // joins the stopped mappings whose threads are done

  Options options_;
  kj::UnixEventPort& eventPort_;
  Invoke invoke_;
  supervisor::EventLog log_;
  std::map<std::string, std::unique_ptr<Mapping>> running_;  // by trigger id
  std::vector<std::unique_ptr<Mapping>> stopping_;           // finishing their batch
  kj::Own<kj::TaskSet> tasks_;
};

}  // namespace thatchd
