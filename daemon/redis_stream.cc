#include "daemon/redis_stream.h"

#include <capnp/compat/json.h>
#include <capnp/message.h>
#include <hiredis/hiredis.h>
#include <kj/debug.h>
#include <openssl/evp.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "base/fd.h"
#include "base/json.h"
#include "base/sys_error.h"
#include "base/text.h"
#include "daemon/lambda_shapes.h"
#include "supervisor/messages.h"
#include "supervisor/store_files.h"

namespace thatchd {

namespace {

supervisor::StderrTaskErrors streamErrors("redis stream");

constexpr unsigned kMaxBatchSize = 10000;
constexpr std::chrono::milliseconds kMaxWait = std::chrono::seconds(300);
constexpr unsigned kMaxAttempts = 100;
// A connect, or a reply, takes at most this; a read that waits for new
// entries (BLOCK) waits at most kBlockChunk more, so that a stopping
// mapping's thread is joined within kBrokerTimeout + kBlockChunk.
constexpr std::chrono::milliseconds kBrokerTimeout = std::chrono::seconds(5);
constexpr std::chrono::milliseconds kBlockChunk{500};
constexpr std::chrono::milliseconds kFirstReconnectDelay{200};
constexpr std::chrono::milliseconds kMaxReconnectDelay = std::chrono::seconds(10);
constexpr std::chrono::milliseconds kLagEvery = std::chrono::seconds(1);
constexpr size_t kMaxLogLines = 64;  // waiting for the loop; past it, dropped and counted
constexpr size_t kMaxFirstReceives = 100000;

// The broker failed (unreachable, an I/O error, an answer not as expected).
class BrokerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// SQS's md5OfBody.
std::string md5Hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &size, EVP_md5(), nullptr) != 1) return "";
  return base::hexText({digest, size});
}

// ---- hiredis ----------------------------------------------------------------

struct ReplyFree {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

std::string_view text(const redisReply* reply) {
  if (reply->type != REDIS_REPLY_STRING && reply->type != REDIS_REPLY_STATUS &&
      reply->type != REDIS_REPLY_ERROR)
    return {};
  return std::string_view(reply->str, reply->len);
}

bool isError(const redisReply* reply, std::string_view prefix = "") {
  return reply->type == REDIS_REPLY_ERROR && text(reply).starts_with(prefix);
}

timeval toTimeval(std::chrono::milliseconds ms) {
  return timeval{time_t(ms.count() / 1000), suseconds_t(ms.count() % 1000 * 1000)};
}

// One connection to the broker, used by one thread. Every failure of the
// connection throws BrokerError and closes it: the caller reconnects.
class Broker {
 public:
  Broker(RedisAddress address, std::string url)
      : address_(std::move(address)), url_(std::move(url)) {}
  ~Broker() { close(); }
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  bool connected() const { return context_ != nullptr; }

  void connect() {
    close();
    context_ =
        redisConnectWithTimeout(address_.host.c_str(), address_.port, toTimeval(kBrokerTimeout));
    if (context_ == nullptr) throw BrokerError(url_ + ": out of memory");
    if (context_->err) fail("cannot connect");
    if (redisSetTimeout(context_, toTimeval(kBrokerTimeout + kBlockChunk)) != REDIS_OK)
      fail("cannot set its timeout");
    redisEnableKeepAlive(context_);
    if (address_.db != 0) {
      Reply reply = command({"SELECT", std::to_string(address_.db)});
      if (isError(reply.get())) {
        std::string why(text(reply.get()));
        close();
        throw BrokerError(url_ + ": SELECT: " + why);
      }
    }
  }

  void close() {
    if (context_) redisFree(context_);
    context_ = nullptr;
  }

  Reply command(const std::vector<std::string>& args) {
    std::vector<Reply> replies = pipeline({args});
    return std::move(replies[0]);
  }

  // Sends every command at once, then reads their replies: one round trip.
  std::vector<Reply> pipeline(const std::vector<std::vector<std::string>>& commands) {
    if (!context_) throw BrokerError(url_ + ": not connected");
    for (const std::vector<std::string>& args : commands) {
      std::vector<const char*> argv;
      std::vector<size_t> lengths;
      for (const std::string& arg : args) {
        argv.push_back(arg.data());
        lengths.push_back(arg.size());
      }
      if (redisAppendCommandArgv(context_, int(argv.size()), argv.data(), lengths.data()) !=
          REDIS_OK)
        fail("cannot send " + args[0]);
    }
    std::vector<Reply> replies;
    for (const std::vector<std::string>& args : commands) {
      void* reply = nullptr;
      if (redisGetReply(context_, &reply) != REDIS_OK || reply == nullptr)
        fail(args[0] + " got no answer");
      replies.emplace_back(static_cast<redisReply*>(reply));
    }
    return replies;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    std::string why = context_ && context_->errstr[0] ? context_->errstr : "unknown error";
    if (context_ && context_->err == REDIS_ERR_IO && errno == EAGAIN) why = "timed out";
    close();
    throw BrokerError(url_ + ": " + what + ": " + why);
  }

  RedisAddress address_;
  std::string url_;
  redisContext* context_ = nullptr;
};

// The entries of an XREADGROUP reply for one stream: nil (none), or
// [[stream, [[id, [field, value, ...] | nil], ...]]]. A nil field list is
// an entry deleted from the stream while pending: `deleted` gets its id.
std::vector<StreamMessage> entriesOf(const redisReply* reply, std::vector<std::string>& deleted) {
  std::vector<StreamMessage> out;
  if (reply->type == REDIS_REPLY_NIL) return out;
  if (reply->type != REDIS_REPLY_ARRAY) throw BrokerError("XREADGROUP: unexpected answer");
  for (size_t s = 0; s < reply->elements; ++s) {
    const redisReply* stream = reply->element[s];
    if (stream->type != REDIS_REPLY_ARRAY || stream->elements != 2 ||
        stream->element[1]->type != REDIS_REPLY_ARRAY)
      throw BrokerError("XREADGROUP: unexpected answer");
    const redisReply* entries = stream->element[1];
    for (size_t e = 0; e < entries->elements; ++e) {
      const redisReply* entry = entries->element[e];
      if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2)
        throw BrokerError("XREADGROUP: unexpected entry");
      std::string id(text(entry->element[0]));
      const redisReply* fields = entry->element[1];
      if (fields->type == REDIS_REPLY_NIL) {
        deleted.push_back(std::move(id));
        continue;
      }
      if (fields->type != REDIS_REPLY_ARRAY) throw BrokerError("XREADGROUP: unexpected fields");
      StreamMessage message;
      message.id = std::move(id);
      for (size_t f = 0; f + 1 < fields->elements; f += 2)
        message.fields.emplace_back(text(fields->element[f]), text(fields->element[f + 1]));
      out.push_back(std::move(message));
    }
  }
  return out;
}

// ---- The event --------------------------------------------------------------

// The entry's id's milliseconds: SQS's SentTimestamp.
std::string sentTimestamp(const std::string& id) {
  return id.substr(0, id.find('-'));
}

const std::string* fieldOf(const StreamMessage& message, std::string_view name) {
  for (const auto& [key, value] : message.fields)
    if (key == name) return &value;
  return nullptr;
}

std::string bodyOf(const StreamMessage& message) {
  if (const std::string* body = fieldOf(message, "body")) return *body;
  base::JsonWriter fields;
  fields.beginObject();
  for (const auto& [key, value] : message.fields) fields.key(key).stringValue(value);
  fields.endObject();
  return fields.text();
}

// The function's answer with every \uXXXX escape replaced by `_`: capnp
// 0.9's decoder misreads them (see lambda_shapes.cc), and the answer's
// strings matter here only as itemIdentifiers, which are entry ids (ASCII).
std::string withoutUnicodeEscapes(std::string_view answer) {
  std::string out;
  out.reserve(answer.size());
  for (size_t i = 0; i < answer.size(); ++i) {
    if (answer[i] == '\\' && i + 1 < answer.size()) {
      if (answer[i + 1] == 'u' && i + 5 < answer.size()) {
        out += '_';
        i += 5;
      } else {
        out.append(answer.substr(i, 2));
        ++i;
      }
      continue;
    }
    out += answer[i];
  }
  return out;
}

}  // namespace

RedisAddress parseRedisUrl(const std::string& url) {
  constexpr std::string_view kScheme = "redis://";
  auto bad = [&](const std::string& why) {
    return TriggerError("the broker's URL " + base::jsonString(url) + " " + why +
                        " (expected redis://HOST:PORT[/DB])");
  };
  if (!std::string_view(url).starts_with(kScheme)) throw bad("is not a redis:// URL");
  std::string_view rest = std::string_view(url).substr(kScheme.size());
  if (rest.find('@') != std::string_view::npos)
    throw bad("has credentials, which thatch does not take");
  if (rest.find_first_of("?#") != std::string_view::npos) throw bad("has options");
  RedisAddress address;
  std::string_view hostPort = rest.substr(0, rest.find('/'));
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) {
      auto [end, error] = std::from_chars(db.data(), db.data() + db.size(), address.db);
      if (error != std::errc() || end != db.data() + db.size() || address.db > 15)
        throw bad("has a database that is not a number from 0 to 15");
    }
  }
  size_t colon = hostPort.rfind(':');
  if (colon == std::string_view::npos) throw bad("has no port");
  std::string_view host = hostPort.substr(0, colon), port = hostPort.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty()) throw bad("has no host");
  auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), address.port);
  if (error != std::errc() || end != port.data() + port.size() || address.port < 1 ||
      address.port > 65535)
    throw bad("has a port that is not a number from 1 to 65535");
  address.host = std::string(host);
  return address;
}

std::string sqsEvent(const std::vector<StreamMessage>& batch, const EventSource& source) {
  std::string arn = "arn:aws:sqs:" + source.region + ":" + source.accountId + ":" + source.stream;
  base::JsonWriter out;
  out.beginObject().key("Records").beginArray();
  for (const StreamMessage& message : batch) {
    std::string body = bodyOf(message);
    out.beginObject();
    out.key("messageId").stringValue(message.id);
    out.key("receiptHandle")
        .stringValue(source.triggerId + "/" + message.id + "/" + std::to_string(message.attempts));
    out.key("body").stringValue(body);
    out.key("attributes").beginObject();
    out.key("ApproximateReceiveCount").stringValue(std::to_string(message.attempts));
    out.key("SentTimestamp").stringValue(sentTimestamp(message.id));
    out.key("SenderId").stringValue(source.triggerId);
    out.key("ApproximateFirstReceiveTimestamp").stringValue(std::to_string(message.firstReceiveMs));
    out.endObject();
    out.key("messageAttributes").beginObject();
    bool hasBody = fieldOf(message, "body") != nullptr;
    for (const auto& [key, value] : message.fields) {
      if (hasBody && key == "body") continue;
      out.key(key).beginObject();
      out.key("stringValue").stringValue(value);
      out.key("stringListValues").beginArray().endArray();
      out.key("binaryListValues").beginArray().endArray();
      out.key("dataType").stringValue("String");
      out.endObject();
    }
    out.endObject();
    out.key("md5OfBody").stringValue(md5Hex(body));
    out.key("eventSource").stringValue("aws:sqs");
    out.key("eventSourceARN").stringValue(arn);
    out.key("awsRegion").stringValue(source.region);
    out.endObject();
  }
  out.endArray().endObject();
  return out.text();
}

BatchVerdict judgeAnswer(std::string_view answer, const std::vector<StreamMessage>& batch) {
  BatchVerdict verdict;
  auto whole = [&](std::string why) {
    verdict.wholeBatch = true;
    verdict.why = "the answer's batchItemFailures " + why;
    return verdict;
  };
  // Only an object that names batchItemFailures is a partial batch response;
  // any other answer (None, a string, ...) is a success, as for code not
  // written for partial responses.
  if (answer.find("batchItemFailures") == std::string_view::npos) return verdict;
  std::string cleaned = withoutUnicodeEscapes(answer);
  capnp::MallocMessageBuilder message;
  capnp::JsonCodec codec;
  codec.setMaxNestingDepth(64);
  try {
    codec.decodeRaw(kj::ArrayPtr<const char>(cleaned.data(), cleaned.size()),
                    message.initRoot<capnp::JsonValue>());
  } catch (const kj::Exception& e) {
    return whole("could not be read: the answer is not JSON");
  }
  capnp::JsonValue::Reader root = message.getRoot<capnp::JsonValue>().asReader();
  if (!root.isObject()) return verdict;
  std::optional<capnp::JsonValue::Reader> failures = lambda::member(root, "batchItemFailures");
  if (!failures || failures->isNull()) return verdict;
  if (!failures->isArray()) return whole("is not a list");
  std::set<std::string> ids;
  for (const StreamMessage& message : batch) ids.insert(message.id);
  for (capnp::JsonValue::Reader item : failures->getArray()) {
    if (!item.isObject()) return whole("holds an item that is not an object");
    std::optional<capnp::JsonValue::Reader> id = lambda::member(item, "itemIdentifier");
    if (!id || !id->isString() || id->getString().size() == 0)
      return whole("holds an item without an itemIdentifier string");
    std::string value(id->getString().cStr(), id->getString().size());
    if (!ids.count(value)) return whole("names " + base::jsonString(value) + ", not in the batch");
    verdict.failed.insert(std::move(value));
  }
  return verdict;
}

std::string consumerName(const std::string& stateDir, const std::string& triggerId) {
  uint64_t hash = 0xcbf29ce484222325;  // FNV-1a: stable across builds, unlike std::hash
  for (unsigned char c : stateDir) hash = (hash ^ c) * 0x100000001b3;
  unsigned char bytes[4];
  for (int i = 0; i < 4; ++i) bytes[i] = static_cast<unsigned char>(hash >> (8 * i));
  return "thatchd-" + base::hexText(bytes) + "-" + triggerId;
}

// ---- A mapping ----------------------------------------------------------------

namespace {

struct Answer {
  thatch::Status status = thatch::Status::kOk;
  std::string payload;
  std::string error;  // for lastError: the status and the handler's error
};

struct LogLine {
  std::string event;
  std::string detail;
};

// What a mapping's thread and the loop share, under `mutex`.
struct Shared {
  std::mutex mutex;
  std::condition_variable changed;
  bool stopping = false;               // no new batch
  bool abandoned = false;              // the loop answers nothing more: do not wait for it
  bool finished = false;               // the thread is done
  std::optional<std::string> request;  // a batch's event, for the loop to invoke
  std::optional<Answer> answer;
  TriggerStats stats;  // the thread's counts; the loop copies them into the store's
  std::deque<LogLine> log;
  uint64_t logDropped = 0;
  base::Fd wake;  // an eventfd: the thread tells the loop to look

  Shared() : wake(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (!wake) base::throwSysError("eventfd");
  }
  // With mutex held.
  void signal() {
    uint64_t one = 1;
    while (write(wake.get(), &one, sizeof one) < 0 && errno == EINTR) {
    }  // EAGAIN: the counter is at its maximum, the loop will look anyway
  }
};

// What comes after an invocation that ended with `status`.
enum class Outcome { kDone, kDefer, kFailed };

Outcome outcomeOf(thatch::Status status) {
  switch (status) {
    case thatch::Status::kOk:
      return Outcome::kDone;
    case thatch::Status::kOverloaded:
    case thatch::Status::kShuttingDown:
      return Outcome::kDefer;  // thatchd could not take it now: no attempt counted
    default:
      return Outcome::kFailed;
  }
}

std::chrono::milliseconds doubled(std::chrono::milliseconds first, std::chrono::milliseconds cap,
                                  unsigned times) {
  std::chrono::milliseconds delay = std::min(first, cap);
  for (unsigned i = 0; i < times && delay < cap; ++i) delay = std::min(delay * 2, cap);
  return delay;
}

// The thread's side of a mapping: every exchange with the broker.
class Consumer {
 public:
  Consumer(const Trigger& trigger, const RedisStreamRunner::Options& options,
           std::shared_ptr<Shared> shared, std::shared_ptr<Shared> predecessor)
      : settings_(trigger.redis),
        source_{trigger.id, trigger.redis.stream, options.region, options.accountId},
        consumer_(consumerName(options.stateDir, trigger.id)),
        retryDelay_(options.retryDelay),
        claimIdleAfter_(options.claimIdleAfter),
        maxRetryDelay_(options.maxRetryDelay),
        broker_(parseRedisUrl(trigger.redis.url), trigger.redis.url),
        shared_(std::move(shared)),
        predecessor_(std::move(predecessor)) {}

  void run() {
    waitForPredecessor();
    unsigned reconnects = 0;
    while (!stopping()) {
      try {
        if (!broker_.connected()) {
          broker_.connect();
          ensureGroup();
          connected();
          reconnects = 0;
        }
        sendPendingAcks();
        std::vector<StreamMessage> batch;
        claimAbandoned();
        if (pendingMaybe_) batch = readPending();
        if (batch.empty()) batch = readNew();
        updateLag(false);
        if (!batch.empty()) deliver(std::move(batch));
      } catch (const std::exception& e) {  // BrokerError; or out of memory, say
        broker_.close();
        brokerDown(e.what());
        waitFor(doubled(kFirstReconnectDelay, kMaxReconnectDelay, reconnects++));
      }
    }
    // A last try for what was answered but not acknowledged.
    try {
      if (!pendingAcks_.empty() && broker_.connected()) sendPendingAcks();
    } catch (const BrokerError&) {
      // Left pending: delivered again at the next start (at least once).
    }
    log("redis-stream-stopped", settings_.url + " stream " + settings_.stream);
    std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->finished = true;
    shared_->signal();
    shared_->changed.notify_all();
  }

 private:
  bool stopping() {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    return shared_->stopping;
  }

  // A mapping stopped and started again: the old thread's batch first.
  void waitForPredecessor() {
    if (!predecessor_) return;
    std::unique_lock<std::mutex> lock(predecessor_->mutex);
    predecessor_->changed.wait(lock, [&]() { return predecessor_->finished; });
    predecessor_.reset();
  }

  // Sleeps `delay` unless the mapping stops first; false if it did.
  bool waitFor(std::chrono::milliseconds delay) {
    std::unique_lock<std::mutex> lock(shared_->mutex);
    return !shared_->changed.wait_for(lock, delay, [&]() { return shared_->stopping; });
  }

  template <typename Change>
  void count(Change change) {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    change(shared_->stats);
    shared_->signal();
  }

  void log(std::string event, std::string detail) {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    if (shared_->log.size() >= kMaxLogLines) {
      ++shared_->logDropped;
      return;
    }
    shared_->log.push_back({std::move(event), std::move(detail)});
    shared_->signal();
  }

  void connected() {
    log("redis-stream-connected", settings_.url + " stream " + settings_.stream + " group " +
                                      settings_.group + " consumer " + consumer_);
    pendingMaybe_ = true;  // this consumer's pending entries first, also after a restart
    if (brokerWasDown_) count([](TriggerStats& stats) { stats.lastError.clear(); });
    brokerWasDown_ = false;
  }

  void brokerDown(const std::string& why) {
    if (!brokerWasDown_) log("redis-stream-broker-down", why);
    brokerWasDown_ = true;
    count([&](TriggerStats& stats) { stats.lastError = why; });
  }

  Reply checked(const std::vector<std::string>& args) {
    Reply reply = broker_.command(args);
    if (isError(reply.get())) throw BrokerError(args[0] + ": " + std::string(text(reply.get())));
    return reply;
  }

  // A new group starts at the stream's first entry (0), as an SQS queue
  // delivers what it holds when a mapping is created; MKSTREAM: the stream
  // need not exist yet.
  void ensureGroup() {
    Reply reply =
        broker_.command({"XGROUP", "CREATE", settings_.stream, settings_.group, "0", "MKSTREAM"});
    if (isError(reply.get()) && !isError(reply.get(), "BUSYGROUP"))
      throw BrokerError("XGROUP CREATE: " + std::string(text(reply.get())));
  }

  // XREADGROUP; a group deleted under us is created again.
  std::vector<StreamMessage> readGroup(unsigned count,
                                       std::optional<std::chrono::milliseconds> block,
                                       const char* from, std::vector<std::string>& deleted) {
    std::vector<std::string> args = {"XREADGROUP", "GROUP", settings_.group,
                                     consumer_,    "COUNT", std::to_string(count)};
    if (block) {
      args.push_back("BLOCK");
      args.push_back(std::to_string(std::max<int64_t>(1, block->count())));
    }
    args.insert(args.end(), {"STREAMS", settings_.stream, from});
    Reply reply = broker_.command(args);
    if (isError(reply.get(), "NOGROUP")) {
      ensureGroup();
      reply = broker_.command(args);
    }
    if (isError(reply.get())) throw BrokerError("XREADGROUP: " + std::string(text(reply.get())));
    return entriesOf(reply.get(), deleted);
  }

  // This consumer's pending entries (delivered before and not acknowledged),
  // oldest first, with their delivery counts.
  std::vector<StreamMessage> readPending() {
    std::vector<std::string> deleted;
    std::vector<StreamMessage> batch = readGroup(settings_.batchSize, std::nullopt, "0", deleted);
    if (!deleted.empty()) ack(deleted);  // gone from the stream: nothing to deliver
    if (batch.empty()) {
      pendingMaybe_ = !deleted.empty();
      return batch;
    }
    Reply pending = checked({"XPENDING", settings_.stream, settings_.group, batch.front().id,
                             batch.back().id, std::to_string(batch.size()), consumer_});
    std::map<std::string, unsigned> deliveries;
    if (pending->type != REDIS_REPLY_ARRAY) throw BrokerError("XPENDING: unexpected answer");
    for (size_t i = 0; i < pending->elements; ++i) {
      const redisReply* entry = pending->element[i];
      if (entry->type == REDIS_REPLY_ARRAY && entry->elements == 4 &&
          entry->element[3]->type == REDIS_REPLY_INTEGER)
        deliveries[std::string(text(entry->element[0]))] = unsigned(entry->element[3]->integer);
    }
    for (StreamMessage& message : batch) {
      auto found = deliveries.find(message.id);
      message.attempts = found == deliveries.end() ? 1 : std::max(1u, found->second);
      stamp(message);
    }
    return batch;
  }

  // New entries: waits (in chunks, so that a stop is noticed) for the first,
  // then up to maxWait from it for the batch to fill.
  std::vector<StreamMessage> readNew() {
    std::vector<std::string> deleted;
    std::vector<StreamMessage> batch = readGroup(settings_.batchSize, kBlockChunk, ">", deleted);
    if (batch.empty()) return batch;
    auto deadline = std::chrono::steady_clock::now() + settings_.maxWait;
    while (batch.size() < settings_.batchSize && !stopping()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      std::vector<StreamMessage> more = readGroup(unsigned(settings_.batchSize - batch.size()),
                                                  std::min(left, kBlockChunk), ">", deleted);
      for (StreamMessage& message : more) batch.push_back(std::move(message));
    }
    for (StreamMessage& message : batch) stamp(message);
    return batch;
  }

  void stamp(StreamMessage& message) {
    if (firstReceives_.size() >= kMaxFirstReceives) firstReceives_.clear();
    auto [at, added] = firstReceives_.emplace(message.id, supervisor::nowUnixMs());
    message.firstReceiveMs = at->second;
  }

  void forget(const std::string& id) { firstReceives_.erase(id); }

  // Lambda hands the whole batch to one invocation; its answer decides
  // which messages are done.
  void deliver(std::vector<StreamMessage> batch) {
    std::string event = sqsEvent(batch, source_);
    count([&](TriggerStats& stats) {
      ++stats.deliveries;
      stats.messages += batch.size();
      stats.lastRunUnixMs = supervisor::nowUnixMs();
    });
    std::optional<Answer> answer = invoke(std::move(event));
    if (!answer) {  // thatchd is going away: the batch stays pending
      pendingMaybe_ = true;
      return;
    }
    Outcome outcome = outcomeOf(answer->status);
    if (outcome != Outcome::kDefer) deferralsInARow_ = 0;
    switch (outcome) {
      case Outcome::kDone: {
        BatchVerdict verdict = judgeAnswer(answer->payload, batch);
        if (verdict.wholeBatch) return failed(batch, verdict.why);
        std::vector<std::string> done;
        std::vector<StreamMessage> failures;
        for (StreamMessage& message : batch) {
          if (verdict.failed.count(message.id))
            failures.push_back(std::move(message));
          else
            done.push_back(message.id);
        }
        ack(done);
        if (!failures.empty())
          return failed(failures, "the function reported them failed (batchItemFailures)");
        failuresInARow_ = 0;
        return;
      }
      case Outcome::kDefer:
        // Not an attempt: the broker's delivery counts go back to what they
        // were, and the batch is read again from the pending list later.
        uncount(batch);
        pendingMaybe_ = true;
        waitFor(doubled(retryDelay_, maxRetryDelay_, deferralsInARow_++));
        return;
      case Outcome::kFailed:
        return failed(batch, answer->error);
    }
  }

  // XCLAIM to ourselves with RETRYCOUNT: the delivery count each had before
  // this delivery, kept by the broker (a restart reads it); JUSTID: the
  // claim itself counts nothing.
  void uncount(const std::vector<StreamMessage>& batch) {
    std::map<unsigned, std::vector<std::string>> byCount;
    for (const StreamMessage& message : batch) byCount[message.attempts - 1].push_back(message.id);
    for (const auto& [before, ids] : byCount) {
      std::vector<std::string> args = {"XCLAIM", settings_.stream, settings_.group, consumer_, "0"};
      args.insert(args.end(), ids.begin(), ids.end());
      args.insert(args.end(), {"RETRYCOUNT", std::to_string(before), "JUSTID"});
      checked(args);
    }
  }

  // Hands the event to the loop and waits for the invocation's end; none
  // if the loop is going away first.
  std::optional<Answer> invoke(std::string event) {
    std::unique_lock<std::mutex> lock(shared_->mutex);
    shared_->request = std::move(event);
    shared_->answer.reset();
    shared_->signal();
    shared_->changed.wait(lock, [&]() { return shared_->answer || shared_->abandoned; });
    std::optional<Answer> answer = std::exchange(shared_->answer, std::nullopt);
    shared_->request.reset();
    return answer;
  }

  // The messages stay pending and are read again after a backoff; those
  // delivered maxAttempts times go to the dead-letter stream.
  void failed(const std::vector<StreamMessage>& messages, const std::string& why) {
    count([&](TriggerStats& stats) {
      ++stats.failures;
      stats.lastError = why;
    });
    for (const StreamMessage& message : messages)
      if (message.attempts >= settings_.maxAttempts) deadLetter(message, why);
    pendingMaybe_ = true;
    waitFor(doubled(retryDelay_, maxRetryDelay_, failuresInARow_++));
  }

  // Its fields and where it came from, added to the dead-letter stream and
  // acknowledged in one transaction: never in both streams' hands, never lost.
  void deadLetter(const StreamMessage& message, const std::string& why) {
    std::vector<std::string> add = {"XADD", settings_.deadLetterStream, "*"};
    for (const auto& [key, value] : message.fields) {
      add.push_back(key);
      add.push_back(value);
    }
    add.insert(add.end(),
               {"thatch:source-stream", settings_.stream, "thatch:source-id", message.id,
                "thatch:attempts", std::to_string(message.attempts), "thatch:last-error", why});
    std::vector<Reply> replies = broker_.pipeline(
        {{"MULTI"}, add, {"XACK", settings_.stream, settings_.group, message.id}, {"EXEC"}});
    const redisReply* exec = replies.back().get();
    if (exec->type != REDIS_REPLY_ARRAY || exec->elements != 2 || isError(exec->element[0]) ||
        isError(exec->element[1]))
      throw BrokerError("moving " + message.id + " to " + settings_.deadLetterStream +
                        " failed: " + std::string(text(exec)));
    forget(message.id);
    count([](TriggerStats& stats) { ++stats.deadLettered; });
    log("redis-stream-dead-letter",
        message.id + " after " + std::to_string(message.attempts) + " attempts: " + why);
  }

  // Kept until the broker took them: after a reconnect they go first, so
  // that a broker's blip does not deliver a done message again.
  void ack(const std::vector<std::string>& ids) {
    if (ids.empty()) return;
    for (const std::string& id : ids) pendingAcks_.push_back(id);
    sendPendingAcks();
  }

  void sendPendingAcks() {
    if (pendingAcks_.empty()) return;
    std::vector<std::string> args = {"XACK", settings_.stream, settings_.group};
    args.insert(args.end(), pendingAcks_.begin(), pendingAcks_.end());
    Reply reply = broker_.command(args);
    // NOGROUP: the group is gone, and its pending list with it.
    if (isError(reply.get()) && !isError(reply.get(), "NOGROUP"))
      throw BrokerError("XACK: " + std::string(text(reply.get())));
    for (const std::string& id : pendingAcks_) forget(id);
    pendingAcks_.clear();
  }

  // Entries another consumer of the group has held longer than
  // claimIdleAfter become this one's pending entries, read next; JUSTID:
  // the claim counts no delivery. Checked at start, then every
  // claimIdleAfter / 2 (at most once a minute).
  void claimAbandoned() {
    auto now = std::chrono::steady_clock::now();
    auto every =
        std::min<std::chrono::steady_clock::duration>(claimIdleAfter_ / 2, std::chrono::minutes(1));
    if (cannotClaim_ || (claimAt_ && now - *claimAt_ < every)) return;
    claimAt_ = now;
    Reply reply = broker_.command({"XAUTOCLAIM", settings_.stream, settings_.group, consumer_,
                                   std::to_string(claimIdleAfter_.count()), "0-0", "COUNT",
                                   std::to_string(settings_.batchSize), "JUSTID"});
    if (isError(reply.get(), "NOGROUP")) return ensureGroup();  // deleted under us
    if (isError(reply.get())) {  // a broker older than Redis 6.2: this mapping does without
      cannotClaim_ = true;
      log("redis-stream-claim-unavailable", "XAUTOCLAIM: " + std::string(text(reply.get())));
      return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
        reply->element[1]->type != REDIS_REPLY_ARRAY)
      throw BrokerError("XAUTOCLAIM: unexpected answer");
    size_t claimed = reply->element[1]->elements;
    if (claimed == 0) return;
    pendingMaybe_ = true;
    log("redis-stream-claimed", std::to_string(claimed) +
                                    " entries pending with another consumer for over " +
                                    std::to_string(claimIdleAfter_.count()) + " ms");
  }

  // XINFO GROUPS' lag (Redis 7: entries not yet read by the group; nil
  // when it cannot tell, then left as it was), once a second at most.
  void updateLag(bool now) {
    auto at = std::chrono::steady_clock::now();
    if (!now && at - lagAt_ < kLagEvery) return;
    lagAt_ = at;
    Reply reply = broker_.command({"XINFO", "GROUPS", settings_.stream});
    if (reply->type != REDIS_REPLY_ARRAY) return;
    for (size_t g = 0; g < reply->elements; ++g) {
      const redisReply* group = reply->element[g];
      if (group->type != REDIS_REPLY_ARRAY) continue;
      std::optional<uint64_t> lag;
      bool ours = false;
      for (size_t i = 0; i + 1 < group->elements; i += 2) {
        std::string_view key = text(group->element[i]);
        const redisReply* value = group->element[i + 1];
        if (key == "name") ours = text(value) == settings_.group;
        if (key == "lag" && value->type == REDIS_REPLY_INTEGER) lag = uint64_t(value->integer);
      }
      if (ours && lag) count([&](TriggerStats& stats) { stats.lag = *lag; });
    }
  }

  const RedisStreamSettings settings_;
  const EventSource source_;
  const std::string consumer_;
  const std::chrono::milliseconds retryDelay_, claimIdleAfter_, maxRetryDelay_;
  Broker broker_;
  std::shared_ptr<Shared> shared_;
  std::shared_ptr<Shared> predecessor_;
  bool pendingMaybe_ = true;
  bool brokerWasDown_ = false;
  unsigned failuresInARow_ = 0;
  unsigned deferralsInARow_ = 0;
  std::vector<std::string> pendingAcks_;
  std::map<std::string, int64_t> firstReceives_;
  std::chrono::steady_clock::time_point lagAt_{};
  std::optional<std::chrono::steady_clock::time_point> claimAt_;
  bool cannotClaim_ = false;
};

}  // namespace

// The loop's side of a mapping: invokes what its thread hands over, copies
// its counts into the store's stats, writes its log lines.
class RedisStreamRunner::Mapping {
 public:
  Mapping(const Trigger& trigger, TriggerStats& stats, RedisStreamRunner& runner,
          std::shared_ptr<Shared> predecessor)
      : id_(trigger.id),
        function_(trigger.function),
        runner_(runner),
        stats_(&stats),
        shared_(std::make_shared<Shared>()),
        observer_(kj::heap<kj::UnixEventPort::FdObserver>(
            runner.eventPort_, shared_->wake.get(), kj::UnixEventPort::FdObserver::OBSERVE_READ)),
        tasks_(kj::heap<kj::TaskSet>(streamErrors)) {
    stats.lastError.clear();
    shared_->stats = stats;  // its counts go on from what it did before it was disabled
    tasks_->add(watch());
    auto consumer =
        std::make_unique<Consumer>(trigger, runner.options_, shared_, std::move(predecessor));
    thread_ = std::thread([consumer = std::move(consumer)]() { consumer->run(); });
  }

  ~Mapping() {
    abandon();
    tasks_ = nullptr;  // an invocation under way is cancelled
    if (thread_.joinable()) thread_.join();
  }

  const std::string& id() const { return id_; }
  std::shared_ptr<Shared> shared() const { return shared_; }

  // No new batch; the one under way finishes. The store's stats are no
  // longer ours.
  void stop() {
    stats_ = nullptr;
    std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->stopping = true;
    shared_->changed.notify_all();
  }

  void abandon() {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->stopping = shared_->abandoned = true;
    shared_->changed.notify_all();
  }

  bool finished() {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    return shared_->finished;
  }

 private:
  kj::Promise<void> watch() {
    return observer_->whenBecomesReadable().then([this]() {
      uint64_t ignored;
      while (read(shared_->wake.get(), &ignored, sizeof ignored) < 0 && errno == EINTR) {
      }
      look();
      return watch();
    });
  }

  void look() {
    std::optional<std::string> request;
    std::deque<LogLine> lines;
    uint64_t dropped;
    bool finished;
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      if (stats_) {
        const TriggerStats& counted = shared_->stats;
        stats_->deliveries = counted.deliveries;
        stats_->messages = counted.messages;
        stats_->failures = counted.failures;
        stats_->deadLettered = counted.deadLettered;
        stats_->lag = counted.lag;
        stats_->lastRunUnixMs = counted.lastRunUnixMs;
        stats_->lastError = counted.lastError;
      }
      if (shared_->request && !invoking_) {
        request = std::move(shared_->request);
        shared_->request.reset();
      }
      lines.swap(shared_->log);
      dropped = std::exchange(shared_->logDropped, 0);
      finished = shared_->finished;
    }
    for (const LogLine& line : lines)
      runner_.log_.write(line.event, {{"trigger", id_}, {"detail", line.detail}});
    if (dropped > 0)
      runner_.log_.write("redis-stream-log-dropped", {{"trigger", id_}, {"lines", dropped}});
    if (request) startInvocation(std::move(*request));
    if (finished) runner_.tasks_->add(kj::evalLater([&runner = runner_]() { runner.reap(); }));
  }

  void startInvocation(std::string event) {
    invoking_ = true;
    tasks_->add(runner_.invoke_(function_, std::move(event))
                    .then(
                        [this](supervisor::InvokeResult result) {
                          Answer answer{result.status, std::move(result.payload), ""};
                          if (result.status != thatch::Status::kOk) {
                            answer.error = thatch::statusName(result.status);
                            if (!result.errorType.empty()) answer.error += ": " + result.errorType;
                            if (!result.errorMessage.empty())
                              answer.error += ": " + result.errorMessage;
                          }
                          answered(std::move(answer));
                        },
                        [this](kj::Exception&& e) {
                          answered(Answer{thatch::Status::kCrashed, "",
                                          std::string("crashed: ") + e.getDescription().cStr()});
                        }));
  }

  void answered(Answer answer) {
    invoking_ = false;
    std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->answer = std::move(answer);
    shared_->changed.notify_all();
  }

  std::string id_, function_;
  RedisStreamRunner& runner_;
  TriggerStats* stats_;  // the store's while running; null once stopped
  std::shared_ptr<Shared> shared_;
  kj::Own<kj::UnixEventPort::FdObserver> observer_;
  bool invoking_ = false;
  kj::Own<kj::TaskSet> tasks_;  // the watch and the invocation under way
  std::thread thread_;
};

RedisStreamRunner::RedisStreamRunner(Options options, kj::UnixEventPort& eventPort, Invoke invoke,
                                     supervisor::EventLog log)
    : options_(std::move(options)),
      eventPort_(eventPort),
      invoke_(std::move(invoke)),
      log_(std::move(log)),
      tasks_(kj::heap<kj::TaskSet>(streamErrors)) {}

RedisStreamRunner::~RedisStreamRunner() noexcept {
  // Every thread at once, then each joined: the wait is the longest one's.
  for (auto& [id, mapping] : running_) mapping->abandon();
  for (auto& mapping : stopping_) mapping->abandon();
  running_.clear();
  stopping_.clear();
  tasks_ = nullptr;
}

void RedisStreamRunner::check(Trigger& trigger) {
  RedisStreamSettings& redis = trigger.redis;
  parseRedisUrl(redis.url);
  if (redis.stream.empty()) throw TriggerError("a Redis stream mapping needs a stream's name");
  if (redis.group.empty()) redis.group = "thatch";
  if (redis.batchSize == 0) redis.batchSize = 10;
  if (redis.batchSize > kMaxBatchSize)
    throw TriggerError("the batch size " + std::to_string(redis.batchSize) +
                       " is over the limit of " + std::to_string(kMaxBatchSize));
  if (redis.maxWait.count() < 0 || redis.maxWait > kMaxWait)
    throw TriggerError("the maximum wait of " + std::to_string(redis.maxWait.count()) +
                       " ms is not between 0 and 300 s");
  if (redis.maxAttempts == 0) redis.maxAttempts = 3;
  if (redis.maxAttempts > kMaxAttempts)
    throw TriggerError("maxAttempts " + std::to_string(redis.maxAttempts) +
                       " is over the limit of " + std::to_string(kMaxAttempts));
  if (redis.deadLetterStream.empty()) redis.deadLetterStream = redis.stream + ":dead-letter";
  if (redis.deadLetterStream == redis.stream)
    throw TriggerError("the dead-letter stream cannot be the stream itself");
}

void RedisStreamRunner::start(const Trigger& trigger, TriggerStats& stats) {
  stop(trigger.id);
  std::shared_ptr<Shared> predecessor;
  for (const auto& mapping : stopping_)
    if (mapping->id() == trigger.id) predecessor = mapping->shared();
  running_[trigger.id] = std::make_unique<Mapping>(trigger, stats, *this, std::move(predecessor));
}

void RedisStreamRunner::stop(const std::string& id) {
  auto found = running_.find(id);
  if (found == running_.end()) return;
  found->second->stop();
  stopping_.push_back(std::move(found->second));
  running_.erase(found);
}

void RedisStreamRunner::reap() {
  std::erase_if(stopping_,
                [](const std::unique_ptr<Mapping>& mapping) { return mapping->finished(); });
}

}  // namespace thatchd
