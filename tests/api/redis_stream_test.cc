// thatchd::RedisStreamRunner against a real redis-server on loopback, with a
// fake invoke that records each batch's event and answers as the test says:
// the SQS shape, acknowledgement after success only, partial batch
// responses, retries, the dead-letter stream, a restart, a stop, a broker
// that goes away. tests/lambda/test_redis_stream.py runs mappings through a
// real thatchd and kills sandboxes and thatchd under them.
#include "daemon/redis_stream.h"

#include <capnp/compat/json.h>
#include <capnp/message.h>
#include <gtest/gtest.h>
#include <kj/async-io.h>
#include <openssl/evp.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/redis_server.h"
#include "tests/testing.h"

namespace {

using supervisor::InvokeResult;
using testing_util::RedisClient;
using testing_util::RedisReply;
using testing_util::RedisServer;
using thatch::Status;
using thatchd::RedisStreamRunner;
using thatchd::StreamMessage;
using thatchd::Trigger;
using thatchd::TriggerError;
using thatchd::TriggerKind;
using thatchd::TriggerStats;

// A parsed JSON document, kept with the message that holds it.
class Json {
 public:
  explicit Json(const std::string& text) {
    capnp::JsonCodec codec;
    codec.decodeRaw(kj::ArrayPtr<const char>(text.data(), text.size()),
                    message_->initRoot<capnp::JsonValue>());
    root_ = message_->getRoot<capnp::JsonValue>().asReader();
  }
  capnp::JsonValue::Reader root() const { return root_; }

 private:
  std::unique_ptr<capnp::MallocMessageBuilder> message_ =
      std::make_unique<capnp::MallocMessageBuilder>();
  capnp::JsonValue::Reader root_;
};

capnp::JsonValue::Reader at(capnp::JsonValue::Reader object, const std::string& name) {
  for (auto field : object.getObject())
    if (std::string(field.getName().cStr()) == name) return field.getValue();
  ADD_FAILURE() << "no member " << name;
  return object;
}

std::string str(capnp::JsonValue::Reader value) {
  return value.isString() ? std::string(value.getString().cStr()) : "<not a string>";
}

std::string md5Hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned size = 0;
  EVP_Digest(text.data(), text.size(), digest, &size, EVP_md5(), nullptr);
  char out[2 * EVP_MAX_MD_SIZE + 1];
  for (unsigned i = 0; i < size; ++i) snprintf(out + 2 * i, 3, "%02x", digest[i]);
  return std::string(out, 2 * size);
}

InvokeResult answer(Status status, std::string payload = "null") {
  InvokeResult result;
  result.status = status;
  result.payload = std::move(payload);
  if (status == Status::kHandlerError) {
    result.errorType = "ValueError";
    result.errorMessage = "no good";
  }
  return result;
}

// What one invocation received: its records' ids and receive counts.
struct Batch {
  std::vector<std::string> ids;
  std::vector<std::string> receiveCounts;
};

Batch batchOf(const std::string& event) {
  Json json(event);
  Batch batch;
  for (auto record : at(json.root(), "Records").getArray()) {
    batch.ids.push_back(str(at(record, "messageId")));
    batch.receiveCounts.push_back(str(at(at(record, "attributes"), "ApproximateReceiveCount")));
  }
  return batch;
}

class RedisStreamTest : public ::testing::Test {
 protected:
  struct Call {
    std::string function;
    std::string event;
    kj::Own<kj::PromiseFulfiller<InvokeResult>> answer;  // held ones
  };

  RedisServer redis;
  std::unique_ptr<RedisClient> client = std::make_unique<RedisClient>(redis.port());
  testing_util::TempDir state{"thatch-redis-state"};
  kj::AsyncIoContext io = kj::setupAsyncIo();
  // Answers each call at once; none (nullopt): the call is held.
  std::function<std::optional<InvokeResult>(const Call&)> respond;
  std::vector<Call> calls;
  std::vector<std::string> log;
  TriggerStats stats;
  std::chrono::milliseconds claimIdleAfter = std::chrono::minutes(30);
  std::unique_ptr<RedisStreamRunner> runner;

  ~RedisStreamTest() noexcept override { runner.reset(); }  // before the loop it runs on

  Trigger mapping(unsigned batchSize = 10, unsigned maxAttempts = 3) {
    Trigger trigger;
    trigger.id = "redis-stream-1";
    trigger.kind = TriggerKind::kRedisStream;
    trigger.function = "consumer";
    trigger.redis.url = redis.url();
    trigger.redis.stream = "orders";
    trigger.redis.batchSize = batchSize;
    trigger.redis.maxWait = std::chrono::milliseconds(100);
    trigger.redis.maxAttempts = maxAttempts;
    return trigger;
  }

  void openRunner() {
    RedisStreamRunner::Options options;
    options.stateDir = state.path();
    options.region = "eu-west-1";
    options.accountId = "123456789012";
    options.retryDelay = std::chrono::milliseconds(5);  // no test waits for a time to pass
    options.maxRetryDelay = std::chrono::milliseconds(20);
    options.claimIdleAfter = claimIdleAfter;
    runner = std::make_unique<RedisStreamRunner>(
        options, io.unixEventPort,
        [this](const std::string& function, std::string event) {
          return invoked(function, std::move(event));
        },
        supervisor::EventLog(supervisor::EventLog::Format::kText,
                             [this](std::string_view line) { log.emplace_back(line); }));
  }

  void start(Trigger trigger) {
    if (!runner) openRunner();
    runner->check(trigger);
    runner->start(trigger, stats);
  }

  // Runs the loop until `condition` holds (checked every 5 ms: the broker's
  // side changes on the mapping's thread). The bound is for failing.
  bool waitFor(const std::function<bool()>& condition) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!condition()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      io.provider->getTimer().afterDelay(5 * kj::MILLISECONDS).wait(io.waitScope);
    }
    return true;
  }

  std::string add(const std::vector<std::string>& fields, const std::string& stream = "orders") {
    std::vector<std::string> args = {"XADD", stream, "*"};
    args.insert(args.end(), fields.begin(), fields.end());
    return client->text(args);
  }

  // The group's pending entries (delivered, not acknowledged).
  long long pending(const std::string& stream = "orders") {
    RedisReply reply = client->command({"XPENDING", stream, "thatch"});
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) return -1;
    return reply->element[0]->integer;
  }

  // The dead-letter stream's entries, each as its fields.
  std::vector<std::map<std::string, std::string>> deadLetters() {
    RedisReply reply = client->command({"XRANGE", "orders:dead-letter", "-", "+"});
    std::vector<std::map<std::string, std::string>> entries;
    for (size_t i = 0; i < reply->elements; ++i) {
      std::map<std::string, std::string> fields;
      redisReply* list = reply->element[i]->element[1];
      for (size_t f = 0; f + 1 < list->elements; f += 2)
        fields[list->element[f]->str] = list->element[f + 1]->str;
      entries.push_back(std::move(fields));
    }
    return entries;
  }

  bool loggedLine(const std::string& what) {
    for (const std::string& line : log)
      if (line.find(what) != std::string::npos) return true;
    return false;
  }

 private:
  kj::Promise<InvokeResult> invoked(const std::string& function, std::string event) {
    calls.push_back(Call{function, std::move(event), {}});
    if (respond)
      if (std::optional<InvokeResult> result = respond(calls.back())) return std::move(*result);
    auto held = kj::newPromiseAndFulfiller<InvokeResult>();
    calls.back().answer = kj::mv(held.fulfiller);
    return kj::mv(held.promise);
  }
};

TEST(RedisStreamSettings, CheckFillsInDefaultsAndRefusesBadSettings) {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  RedisStreamRunner runner({}, io.unixEventPort, nullptr);
  Trigger trigger;
  trigger.kind = TriggerKind::kRedisStream;
  trigger.redis.url = "redis://127.0.0.1:6379/2";
  trigger.redis.stream = "jobs";
  trigger.redis.group = "";
  trigger.redis.batchSize = 0;
  trigger.redis.maxAttempts = 0;
  runner.check(trigger);
  EXPECT_EQ(trigger.redis.group, "thatch");
  EXPECT_EQ(trigger.redis.batchSize, 10u);
  EXPECT_EQ(trigger.redis.maxAttempts, 3u);
  EXPECT_EQ(trigger.redis.deadLetterStream, "jobs:dead-letter");

  auto refused = [&](std::function<void(Trigger&)> change, const std::string& why) {
    Trigger bad = trigger;
    change(bad);
    try {
      runner.check(bad);
    } catch (const TriggerError& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
      return;
    }
    ADD_FAILURE() << "accepted: " << why;
  };
  refused([](Trigger& t) { t.redis.url = "http://127.0.0.1:6379"; }, "is not a redis:// URL");
  refused([](Trigger& t) { t.redis.url = "redis://127.0.0.1"; }, "has no port");
  refused([](Trigger& t) { t.redis.url = "redis://:6379"; }, "has no host");
  refused([](Trigger& t) { t.redis.url = "redis://h:0"; }, "a port that is not a number");
  refused([](Trigger& t) { t.redis.url = "redis://h:6379/16"; }, "a database");
  refused([](Trigger& t) { t.redis.url = "redis://u:p@h:6379"; }, "credentials");
  refused([](Trigger& t) { t.redis.stream = ""; }, "needs a stream's name");
  refused([](Trigger& t) { t.redis.batchSize = 10001; }, "batch size 10001 is over the limit");
  refused([](Trigger& t) { t.redis.maxWait = std::chrono::milliseconds(300'001); },
          "not between 0 and 300 s");
  refused([](Trigger& t) { t.redis.maxAttempts = 101; }, "maxAttempts 101 is over the limit");
  refused([](Trigger& t) { t.redis.deadLetterStream = "jobs"; }, "cannot be the stream itself");
  EXPECT_EQ(thatchd::parseRedisUrl("redis://[::1]:7000").host, "::1");
  EXPECT_EQ(thatchd::parseRedisUrl("redis://broker:7000/").port, 7000);
}

TEST(RedisStreamSettings, ConsumerNameIsStablePerStateDirectoryAndTrigger) {
  EXPECT_EQ(thatchd::consumerName("/var/lib/thatch", "redis-stream-1"),
            thatchd::consumerName("/var/lib/thatch", "redis-stream-1"));
  EXPECT_NE(thatchd::consumerName("/var/lib/thatch", "redis-stream-1"),
            thatchd::consumerName("/var/lib/thatch", "redis-stream-2"));
  EXPECT_NE(thatchd::consumerName("/var/lib/thatch", "redis-stream-1"),
            thatchd::consumerName("/srv/thatch", "redis-stream-1"));
}

TEST(RedisStreamSettings, PartialBatchResponsesAsLambdaReadsThem) {
  std::vector<StreamMessage> batch(2);
  batch[0].id = "1-0";
  batch[1].id = "2-0";
  auto judge = [&](const std::string& answer) { return thatchd::judgeAnswer(answer, batch); };
  for (std::string success : {"null", "\"done\"", "{}", "{\"batchItemFailures\": []}",
                              "{\"batchItemFailures\": null}", "[1, 2]"}) {
    EXPECT_FALSE(judge(success).wholeBatch) << success;
    EXPECT_TRUE(judge(success).failed.empty()) << success;
  }
  auto partial =
      judge("{\"note\": \"d\\u00e5\", \"batchItemFailures\": [{\"itemIdentifier\": \"2-0\"}]}");
  EXPECT_FALSE(partial.wholeBatch) << partial.why;
  EXPECT_EQ(partial.failed, std::set<std::string>{"2-0"});
  for (std::string whole :
       {"{\"batchItemFailures\": [{\"itemIdentifier\": \"3-0\"}]}",
        "{\"batchItemFailures\": [{\"itemIdentifier\": \"\"}]}",
        "{\"batchItemFailures\": [{\"itemIdentifier\": null}]}",
        "{\"batchItemFailures\": [{\"id\": \"1-0\"}]}", "{\"batchItemFailures\": \"1-0\"}",
        "{\"batchItemFailures\": [", "{\"batchItemFailures\": [\"1-0\"]}"})
    EXPECT_TRUE(judge(whole).wholeBatch) << whole;
}

TEST_F(RedisStreamTest, DeliversABatchInTheShapeOfAnSqsEventAndAcknowledgesIt) {
  std::string first = add({"body", "{\"order\": 1}", "customer", "ada"});
  std::string second = add({"order", "2", "customer", "bob"});  // no body field
  respond = [](const Call&) { return answer(Status::kOk); };
  start(mapping());
  ASSERT_TRUE(waitFor([&]() { return !calls.empty() && pending() == 0; }));
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].function, "consumer");

  Json event(calls[0].event);
  auto records = at(event.root(), "Records").getArray();
  ASSERT_EQ(records.size(), 2u);
  auto record = records[0];
  EXPECT_EQ(str(at(record, "messageId")), first);
  EXPECT_EQ(str(at(record, "body")), "{\"order\": 1}");
  EXPECT_EQ(str(at(record, "md5OfBody")), md5Hex("{\"order\": 1}"));
  EXPECT_EQ(str(at(record, "receiptHandle")), "redis-stream-1/" + first + "/1");
  EXPECT_EQ(str(at(record, "eventSource")), "aws:sqs");
  EXPECT_EQ(str(at(record, "eventSourceARN")), "arn:aws:sqs:eu-west-1:123456789012:orders");
  EXPECT_EQ(str(at(record, "awsRegion")), "eu-west-1");
  auto attributes = at(record, "attributes");
  EXPECT_EQ(str(at(attributes, "ApproximateReceiveCount")), "1");
  EXPECT_EQ(str(at(attributes, "SentTimestamp")), first.substr(0, first.find('-')));
  EXPECT_GE(std::stoll(str(at(attributes, "ApproximateFirstReceiveTimestamp"))),
            std::stoll(first.substr(0, first.find('-'))));
  auto customer = at(at(record, "messageAttributes"), "customer");
  EXPECT_EQ(str(at(customer, "stringValue")), "ada");
  EXPECT_EQ(str(at(customer, "dataType")), "String");
  EXPECT_EQ(at(record, "messageAttributes").getObject().size(), 1u);  // not the body

  // Without a body field, the body is the JSON object of its fields.
  EXPECT_EQ(str(at(records[1], "messageId")), second);
  EXPECT_EQ(str(at(records[1], "body")), "{\"order\":\"2\",\"customer\":\"bob\"}");
  EXPECT_EQ(at(records[1], "messageAttributes").getObject().size(), 2u);

  ASSERT_TRUE(waitFor([&]() { return stats.deliveries == 1 && stats.messages == 2; }));
  EXPECT_EQ(stats.failures, 0u);
  EXPECT_TRUE(loggedLine("redis-stream-connected"));
}

TEST_F(RedisStreamTest, BatchesAreAtMostTheBatchSizeAndNothingIsDeliveredTwice) {
  std::vector<std::string> added;
  for (int i = 0; i < 25; ++i) added.push_back(add({"body", std::to_string(i)}));
  respond = [](const Call&) { return answer(Status::kOk); };
  start(mapping(10));
  ASSERT_TRUE(waitFor([&]() { return stats.messages == 25 && pending() == 0; }));
  std::vector<std::string> seen;
  for (const Call& call : calls) {
    Batch batch = batchOf(call.event);
    EXPECT_LE(batch.ids.size(), 10u);
    seen.insert(seen.end(), batch.ids.begin(), batch.ids.end());
  }
  EXPECT_EQ(seen, added);  // in order, once each
  ASSERT_TRUE(waitFor([&]() { return stats.lag == 0; }));
}

TEST_F(RedisStreamTest, OnlyTheItemsTheFunctionReportsFailedAreDeliveredAgain) {
  std::string a = add({"body", "a"}), b = add({"body", "b"}), c = add({"body", "c"});
  respond = [&](const Call&) {
    if (calls.size() == 1)
      return answer(Status::kOk, "{\"batchItemFailures\": [{\"itemIdentifier\": \"" + b + "\"}]}");
    return answer(Status::kOk, "{\"batchItemFailures\": []}");
  };
  start(mapping());
  ASSERT_TRUE(waitFor([&]() { return calls.size() >= 2 && pending() == 0; }));
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(batchOf(calls[0].event).ids, (std::vector<std::string>{a, b, c}));
  Batch retry = batchOf(calls[1].event);
  EXPECT_EQ(retry.ids, std::vector<std::string>{b});
  EXPECT_EQ(retry.receiveCounts, std::vector<std::string>{"2"});
  EXPECT_TRUE(deadLetters().empty());
}

TEST_F(RedisStreamTest, AnAnswerNamingAMessageNotInTheBatchFailsTheWholeBatch) {
  std::string a = add({"body", "a"}), b = add({"body", "b"});
  respond = [&](const Call&) {
    if (calls.size() == 1)
      return answer(Status::kOk, "{\"batchItemFailures\": [{\"itemIdentifier\": \"9-9\"}]}");
    return answer(Status::kOk);
  };
  start(mapping());
  ASSERT_TRUE(waitFor([&]() { return calls.size() >= 2 && pending() == 0; }));
  Batch retry = batchOf(calls[1].event);
  EXPECT_EQ(retry.ids, (std::vector<std::string>{a, b}));
  EXPECT_EQ(retry.receiveCounts, (std::vector<std::string>{"2", "2"}));
  EXPECT_NE(stats.lastError.find("not in the batch"), std::string::npos) << stats.lastError;
}

TEST_F(RedisStreamTest, AFailingMessageIsRetriedThenMovedToTheDeadLetterStream) {
  std::string poison = add({"body", "poison", "kind", "bad"});
  respond = [&](const Call&) { return answer(Status::kHandlerError); };
  start(mapping(10, 3));
  ASSERT_TRUE(waitFor([&]() { return deadLetters().size() == 1 && pending() == 0; }));
  ASSERT_EQ(calls.size(), 3u);  // maxAttempts deliveries, then no more
  for (size_t i = 0; i < calls.size(); ++i) {
    Batch batch = batchOf(calls[i].event);
    EXPECT_EQ(batch.ids, std::vector<std::string>{poison});
    EXPECT_EQ(batch.receiveCounts, std::vector<std::string>{std::to_string(i + 1)});
  }
  std::map<std::string, std::string> dead = deadLetters()[0];
  EXPECT_EQ(dead["body"], "poison");
  EXPECT_EQ(dead["kind"], "bad");
  EXPECT_EQ(dead["thatch:source-id"], poison);
  EXPECT_EQ(dead["thatch:source-stream"], "orders");
  EXPECT_EQ(dead["thatch:attempts"], "3");
  EXPECT_EQ(dead["thatch:last-error"], "handler_error: ValueError: no good");
  ASSERT_TRUE(waitFor([&]() { return stats.deadLettered == 1; }));
  EXPECT_EQ(stats.failures, 3u);
  EXPECT_EQ(stats.lastError, "handler_error: ValueError: no good");
  EXPECT_TRUE(loggedLine("redis-stream-dead-letter"));

  // The next message is delivered as usual.
  respond = [&](const Call&) { return answer(Status::kOk); };
  std::string next = add({"body", "fine"});
  ASSERT_TRUE(waitFor([&]() { return calls.size() == 4 && pending() == 0; }));
  EXPECT_EQ(batchOf(calls[3].event).ids, std::vector<std::string>{next});
}

TEST_F(RedisStreamTest, OverloadedAndShuttingDownAnswersCountNoAttempt) {
  std::string a = add({"body", "a"});
  respond = [&](const Call&) -> std::optional<InvokeResult> {
    if (calls.size() == 1) return answer(Status::kOverloaded);
    if (calls.size() == 2) return answer(Status::kShuttingDown);
    return std::nullopt;  // the third is held
  };
  start(mapping(10, 1));  // one attempt: a counted deferral would dead-letter it
  ASSERT_TRUE(waitFor([&]() { return calls.size() == 3; }));
  for (const Call& call : calls) EXPECT_EQ(batchOf(call.event).receiveCounts[0], "1");
  // The broker's count too, which a restart reads: the third delivery only.
  RedisReply detail = client->command({"XPENDING", "orders", "thatch", "-", "+", "10"});
  ASSERT_EQ(detail->elements, 1u);
  EXPECT_EQ(detail->element[0]->element[3]->integer, 1);
  calls[2].answer->fulfill(answer(Status::kOk));
  ASSERT_TRUE(waitFor([&]() { return pending() == 0; }));
  EXPECT_TRUE(deadLetters().empty());
}

TEST_F(RedisStreamTest, AllThatIsPendingIsDeliveredInBatchesAfterARestart) {
  std::vector<std::string> added;
  for (int i = 0; i < 25; ++i) added.push_back(add({"body", std::to_string(i)}));
  start(mapping(25));  // one batch of 25, held when thatchd "dies"
  ASSERT_TRUE(waitFor([&]() { return calls.size() == 1; }));
  runner.reset();
  EXPECT_EQ(pending(), 25);

  calls.clear();
  stats = TriggerStats();  // a new thatchd's
  respond = [](const Call&) { return answer(Status::kOk); };
  start(mapping(10));
  ASSERT_TRUE(waitFor([&]() { return pending() == 0 && stats.messages == 25; }));
  std::vector<std::string> seen;
  for (const Call& call : calls) {
    Batch batch = batchOf(call.event);
    EXPECT_LE(batch.ids.size(), 10u);
    for (const std::string& count : batch.receiveCounts) EXPECT_EQ(count, "2");
    seen.insert(seen.end(), batch.ids.begin(), batch.ids.end());
  }
  EXPECT_EQ(seen, added);
}

TEST_F(RedisStreamTest, WhatWasNotAcknowledgedIsDeliveredAgainAfterARestart) {
  std::string a = add({"body", "a"}), b = add({"body", "b"});
  start(mapping());  // the call is held: thatchd "dies" with the batch under way
  ASSERT_TRUE(waitFor([&]() { return calls.size() == 1; }));
  runner.reset();
  EXPECT_EQ(pending(), 2);

  calls.clear();
  respond = [](const Call&) { return answer(Status::kOk); };
  start(mapping());  // the same state directory and trigger: the same consumer
  ASSERT_TRUE(waitFor([&]() { return !calls.empty() && pending() == 0; }));
  Batch again = batchOf(calls[0].event);
  EXPECT_EQ(again.ids, (std::vector<std::string>{a, b}));
  EXPECT_EQ(again.receiveCounts, (std::vector<std::string>{"2", "2"}));
}

TEST_F(RedisStreamTest, EntriesLeftPendingWithAnotherConsumerAreClaimedAndDelivered) {
  std::string a = add({"body", "a"});
  client->text({"XGROUP", "CREATE", "orders", "thatch", "0"});
  // A consumer that read it and is gone (a removed mapping's, a lost host's).
  client->command(
      {"XREADGROUP", "GROUP", "thatch", "gone", "COUNT", "10", "STREAMS", "orders", ">"});
  ASSERT_EQ(pending(), 1);
  claimIdleAfter = std::chrono::milliseconds(50);
  respond = [](const Call&) { return answer(Status::kOk); };
  start(mapping());
  ASSERT_TRUE(waitFor([&]() { return !calls.empty() && pending() == 0; }));
  Batch batch = batchOf(calls[0].event);
  EXPECT_EQ(batch.ids, std::vector<std::string>{a});
  EXPECT_EQ(batch.receiveCounts, std::vector<std::string>{"2"});  // the gone one's, and this
  EXPECT_TRUE(loggedLine("redis-stream-claimed"));
}

TEST_F(RedisStreamTest, StopLetsTheBatchUnderWayFinishAndReadsNothingMore) {
  add({"body", "a"});
  start(mapping());
  ASSERT_TRUE(waitFor([&]() { return calls.size() == 1; }));
  runner->stop("redis-stream-1");
  EXPECT_EQ(runner->running(), 0u);
  add({"body", "b"});
  add({"body", "c"});
  calls[0].answer->fulfill(answer(Status::kOk));
  ASSERT_TRUE(waitFor([&]() { return pending() == 0; }));           // acknowledged though stopped
  ASSERT_TRUE(waitFor([&]() { return runner->stopping() == 0; }));  // its thread is done
  EXPECT_EQ(calls.size(), 1u);
  EXPECT_TRUE(loggedLine("redis-stream-stopped"));
  RedisReply groups = client->command({"XINFO", "GROUPS", "orders"});
  ASSERT_EQ(groups->elements, 1u);
  std::map<std::string, long long> numbers;
  for (size_t i = 0; i + 1 < groups->element[0]->elements; i += 2)
    numbers[groups->element[0]->element[i]->str] = groups->element[0]->element[i + 1]->integer;
  EXPECT_EQ(numbers["lag"], 2);  // b and c: not read

  // Started again (enabled): b and c, and its counts go on.
  respond = [](const Call&) { return answer(Status::kOk); };
  start(mapping());
  ASSERT_TRUE(waitFor([&]() { return pending() == 0 && stats.messages == 3; }));
  EXPECT_EQ(stats.deliveries, 2u);
  EXPECT_EQ(batchOf(calls[1].event).ids.size(), 2u);
}

TEST_F(RedisStreamTest, ABrokerThatIsDownIsReportedAndTheMappingRecoversWhenItIsBack) {
  respond = [](const Call&) { return answer(Status::kOk); };
  int port = redis.port();
  client.reset();
  redis.stop();
  start(mapping());
  ASSERT_TRUE(waitFor([&]() { return !stats.lastError.empty(); }));
  EXPECT_NE(stats.lastError.find(redis.url()), std::string::npos) << stats.lastError;
  EXPECT_NE(stats.lastError.find("refused"), std::string::npos) << stats.lastError;
  EXPECT_TRUE(loggedLine("redis-stream-broker-down"));

  redis.start();
  client = std::make_unique<RedisClient>(port);
  std::string a = add({"body", "a"});
  ASSERT_TRUE(waitFor([&]() { return !calls.empty() && pending() == 0; }));
  EXPECT_EQ(batchOf(calls[0].event).ids, std::vector<std::string>{a});
  ASSERT_TRUE(waitFor([&]() { return stats.lastError.empty(); }));

  // Gone while connected (its streams too: nothing is saved), and back.
  client.reset();
  redis.stop();
  ASSERT_TRUE(waitFor([&]() { return !stats.lastError.empty(); }));
  redis.start();
  client = std::make_unique<RedisClient>(port);
  std::string b = add({"body", "b"});
  ASSERT_TRUE(waitFor([&]() { return calls.size() == 2 && pending() == 0; }));
  EXPECT_EQ(batchOf(calls[1].event).ids, std::vector<std::string>{b});
}

}  // namespace
