// thatchd::Triggers: the store of triggers, persisted across restarts, and
// the runners it starts and stops as triggers come, go, are enabled and
// disabled.
#include "daemon/triggers.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "base/text.h"
#include "tests/testing.h"

namespace {

using thatchd::Trigger;
using thatchd::TriggerError;
using thatchd::TriggerKind;
using thatchd::Triggers;
using thatchd::TriggerStats;

// Records what the store asks of it; refuses an expression "bad".
class RecordingRunner final : public thatchd::TriggerRunner {
 public:
  void check(Trigger& trigger) override {
    if (trigger.schedule.expression == "bad") throw TriggerError("column 1: bad expression");
    trigger.schedule.detail = trigger.schedule.detail.empty() ? "{}" : trigger.schedule.detail;
  }
  void start(const Trigger& trigger, TriggerStats& stats) override {
    events.push_back("start " + trigger.id);
    stats.nextRunUnixMs = 42;
  }
  void stop(const std::string& id) override { events.push_back("stop " + id); }
  std::vector<std::string> events;
};

Trigger schedule(const std::string& function, const std::string& expression) {
  Trigger t;
  t.kind = TriggerKind::kSchedule;
  t.function = function;
  t.schedule.expression = expression;
  return t;
}

Trigger url(const std::string& function) {
  Trigger t;
  t.kind = TriggerKind::kUrl;
  t.function = function;
  return t;
}

class TriggersTest : public ::testing::Test {
 protected:
  testing_util::TempDir tmp{"thatch-triggers"};
  std::string path = tmp.path() + "/triggers.json";
  std::vector<std::string> logged;
  supervisor::EventLog log{supervisor::EventLog::Format::kText,
                           [this](std::string_view line) { logged.emplace_back(line); }};
};

TEST_F(TriggersTest, AddsGivesIdsAndStartsWithTheRunnerOfItsKind) {
  Triggers triggers(path, log);
  RecordingRunner runner;
  triggers.setRunner(TriggerKind::kSchedule, &runner);
  const Trigger& a = triggers.add(schedule("f", "rate(1 minute)"));
  EXPECT_EQ(a.id, "schedule-1");
  EXPECT_EQ(a.schedule.detail, "{}");  // the runner's check() filled it in
  EXPECT_GT(a.createdUnixMs, 0);
  const Trigger& b = triggers.add(schedule("g", "rate(2 minutes)"));
  EXPECT_EQ(b.id, "schedule-2");
  EXPECT_EQ(runner.events, (std::vector<std::string>{"start schedule-1", "start schedule-2"}));
  EXPECT_EQ(triggers.stats("schedule-1")->nextRunUnixMs, 42);
  EXPECT_EQ(triggers.list("g").size(), 1u);
  EXPECT_EQ(triggers.list().size(), 2u);
  triggers.setRunner(TriggerKind::kSchedule, nullptr);
}

TEST_F(TriggersTest, ARefusedCheckAddsNothing) {
  Triggers triggers(path, log);
  RecordingRunner runner;
  triggers.setRunner(TriggerKind::kSchedule, &runner);
  try {
    triggers.add(schedule("f", "bad"));
    FAIL() << "a bad expression was taken";
  } catch (const TriggerError& e) {
    EXPECT_STREQ(e.what(), "column 1: bad expression");
  }
  EXPECT_TRUE(triggers.list().empty());
  EXPECT_TRUE(runner.events.empty());
  triggers.setRunner(TriggerKind::kSchedule, nullptr);
}

TEST_F(TriggersTest, AKindWithoutARunnerIsRefused) {
  Triggers triggers(path, log);
  Trigger stream;
  stream.kind = TriggerKind::kRedisStream;
  stream.function = "f";
  EXPECT_THROW(triggers.add(stream), TriggerError);
  EXPECT_TRUE(triggers.list().empty());
}

TEST_F(TriggersTest, OneUrlPerFunctionFoundByItsId) {
  Triggers triggers(path, log);
  const Trigger& u = triggers.add(url("f"));
  EXPECT_EQ(u.id, "url-f");
  EXPECT_EQ(u.url.urlId.size(), 32u);
  for (char c : u.url.urlId) EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) << c;
  EXPECT_EQ(u.url.authType, "NONE");
  EXPECT_EQ(u.url.payloadFormat, "2.0");
  EXPECT_EQ(triggers.byUrlId(u.url.urlId), triggers.find("url-f"));
  EXPECT_EQ(triggers.urlOf("f"), triggers.find("url-f"));
  EXPECT_THROW(triggers.add(url("f")), TriggerError);
  Trigger bad = url("g");
  bad.url.payloadFormat = "3.0";
  EXPECT_THROW(triggers.add(bad), TriggerError);
  bad = url("g");
  bad.url.authType = "MAYBE";
  EXPECT_THROW(triggers.add(bad), TriggerError);
  std::string id = u.url.urlId;
  EXPECT_TRUE(triggers.remove("url-f"));
  EXPECT_EQ(triggers.byUrlId(id), nullptr);
  EXPECT_FALSE(triggers.remove("url-f"));
}

TEST_F(TriggersTest, AnUpdatedUrlKeepsItsIdAcrossARestart) {
  std::string urlId;
  int64_t created = 0;
  {
    Triggers triggers(path, log);
    const Trigger& u = triggers.add(url("f"));
    urlId = u.url.urlId;
    created = u.createdUnixMs;
    ++triggers.stats("url-f")->deliveries;
    thatchd::FunctionUrlSettings settings;
    settings.authType = "AWS_IAM";
    settings.payloadFormat = "1.0";
    settings.urlId = "ignored: a URL keeps its id";
    const Trigger& updated = triggers.updateUrl("url-f", settings);
    EXPECT_EQ(updated.url.urlId, urlId);
    EXPECT_EQ(updated.url.authType, "AWS_IAM");
    EXPECT_EQ(updated.url.payloadFormat, "1.0");
    EXPECT_EQ(triggers.stats("url-f")->deliveries, 1u);
    settings.authType = "MAYBE";
    EXPECT_THROW(triggers.updateUrl("url-f", settings), TriggerError);
    EXPECT_THROW(triggers.updateUrl("url-g", settings), TriggerError);
    EXPECT_EQ(triggers.find("url-f")->url.authType, "AWS_IAM");
  }
  Triggers again(path, log);
  ASSERT_NE(again.byUrlId(urlId), nullptr);
  EXPECT_EQ(again.byUrlId(urlId)->url.authType, "AWS_IAM");
  EXPECT_EQ(again.byUrlId(urlId)->url.payloadFormat, "1.0");
  EXPECT_EQ(again.byUrlId(urlId)->createdUnixMs, created);
}

TEST_F(TriggersTest, SurvivesARestartAndRunsWhatWasEnabled) {
  std::string urlId;
  {
    Triggers triggers(path, log);
    RecordingRunner runner;
    triggers.setRunner(TriggerKind::kSchedule, &runner);
    triggers.add(schedule("f", "rate(1 minute)"));
    triggers.add(schedule("g", "cron(0 12 * * ? *)"));
    triggers.setEnabled("schedule-2", false);
    urlId = triggers.add(url("f")).url.urlId;
    triggers.setRunner(TriggerKind::kSchedule, nullptr);
  }
  Triggers again(path, log);
  RecordingRunner runner;
  again.setRunner(TriggerKind::kSchedule, &runner);
  ASSERT_EQ(again.list().size(), 3u);
  EXPECT_EQ(runner.events, (std::vector<std::string>{"start schedule-1"}));
  EXPECT_FALSE(again.find("schedule-2")->enabled);
  EXPECT_EQ(again.find("schedule-2")->schedule.expression, "cron(0 12 * * ? *)");
  EXPECT_EQ(again.byUrlId(urlId)->function, "f");
  // Numbers are not reused: the next is after the highest found.
  EXPECT_EQ(again.add(schedule("h", "rate(5 minutes)")).id, "schedule-3");
  again.setRunner(TriggerKind::kSchedule, nullptr);
}

TEST_F(TriggersTest, DisablingStopsEnablingStarts) {
  Triggers triggers(path, log);
  RecordingRunner runner;
  triggers.setRunner(TriggerKind::kSchedule, &runner);
  triggers.add(schedule("f", "rate(1 minute)"));
  triggers.setEnabled("schedule-1", false);
  EXPECT_EQ(triggers.stats("schedule-1")->nextRunUnixMs, 0);
  triggers.setEnabled("schedule-1", false);  // no change, nothing asked
  triggers.setEnabled("schedule-1", true);
  EXPECT_EQ(runner.events,
            (std::vector<std::string>{"start schedule-1", "stop schedule-1", "start schedule-1"}));
  EXPECT_THROW(triggers.setEnabled("schedule-9", true), TriggerError);
  triggers.setRunner(TriggerKind::kSchedule, nullptr);
}

TEST_F(TriggersTest, AFunctionsTriggersGoWithIt) {
  Triggers triggers(path, log);
  RecordingRunner runner;
  triggers.setRunner(TriggerKind::kSchedule, &runner);
  triggers.add(schedule("f", "rate(1 minute)"));
  triggers.add(schedule("g", "rate(1 minute)"));
  triggers.add(url("f"));
  EXPECT_EQ(triggers.removeFunction("f"), 2u);
  EXPECT_EQ(triggers.list().size(), 1u);
  EXPECT_EQ(triggers.list()[0]->function, "g");
  EXPECT_EQ(triggers.urlOf("f"), nullptr);
  EXPECT_NE(std::find(runner.events.begin(), runner.events.end(), "stop schedule-1"),
            runner.events.end());
  triggers.setRunner(TriggerKind::kSchedule, nullptr);
  Triggers again(path, log);
  EXPECT_EQ(again.list().size(), 1u);
}

TEST_F(TriggersTest, ADamagedFileStopsTheStartNamingIt) {
  std::ofstream(path) << "{\"triggers\": [ {\"id\": ";
  try {
    Triggers triggers(path, log);
    FAIL() << "a damaged file was taken";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST_F(TriggersTest, AStoreThatCannotBeWrittenChangesNothing) {
  std::string dir = tmp.path() + "/gone";
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  Triggers triggers(dir + "/triggers.json", log);
  ASSERT_EQ(rmdir(dir.c_str()), 0);
  EXPECT_THROW(triggers.add(url("f")), TriggerError);
  EXPECT_TRUE(triggers.list().empty());
  EXPECT_EQ(triggers.urlOf("f"), nullptr);
}

// Request ids (the Lambda API's) and schedule runs' event ids: one format.
TEST(UuidText, AVersionFourUuidOfTheBitsGiven) {
  EXPECT_EQ(base::uuidText(0x0123456789abcdefull, 0xfedcba9876543210ull),
            "01234567-89ab-4def-bedc-ba9876543210");
  EXPECT_EQ(base::uuidText(0, 0), "00000000-0000-4000-8000-000000000000");
  EXPECT_EQ(base::uuidText(~0ull, ~0ull), "ffffffff-ffff-4fff-bfff-ffffffffffff");
}

TEST(FunctionUrlAddress, FromTheHttpListener) {
  EXPECT_EQ(thatchd::functionUrlAddress("127.0.0.1:9000", "eu-west-1", "abc"),
            "http://abc.lambda-url.eu-west-1.localhost:9000/");
  EXPECT_EQ(thatchd::functionUrlAddress("[::1]:8080", "us-east-1", "x"),
            "http://x.lambda-url.us-east-1.localhost:8080/");
  EXPECT_EQ(thatchd::functionUrlAddress("", "us-east-1", "x"), "");
}

}  // namespace
