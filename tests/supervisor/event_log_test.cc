// The log's two formats, and values that must not break a line apart.
#include "supervisor/event_log.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace supervisor {
namespace {

TEST(EventLog, TextIsKeyValueQuotingOnlyWhatNeedsIt) {
  EventLog log(EventLog::Format::kText);
  EXPECT_EQ(log.format("invocation", {{"function", "hello"},
                                      {"version", uint64_t(3)},
                                      {"cold", true},
                                      {"error", "a b=\"c\"\nd"},
                                      {"empty", ""}}),
            "thatchd: invocation function=hello version=3 cold=true "
            "error=\"a b=\\\"c\\\"\\nd\" empty=\"\"");
}

TEST(EventLog, JsonIsOneObjectPerLine) {
  EventLog log(EventLog::Format::kJson);
  EXPECT_EQ(log.format("sandbox_killed",
                       {{"sandbox", uint64_t(7)}, {"reason", "timeout"}, {"ctl", "\x01"}}),
            R"({"event":"sandbox_killed","sandbox":7,"reason":"timeout","ctl":"\u0001"})");
}

TEST(EventLog, WritesEachEventToTheSink) {
  std::vector<std::string> lines;
  EventLog log(EventLog::Format::kText, [&](std::string_view line) { lines.emplace_back(line); });
  log.write("zygote_restarted", {{"runtime", "python3.11"}});
  log.write("zygote_died", {{"runtime", "python3.11"}});
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], "thatchd: zygote_died runtime=python3.11");
}

}  // namespace
}  // namespace supervisor
