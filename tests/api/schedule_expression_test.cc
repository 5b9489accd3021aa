// thatchd::ScheduleExpression: EventBridge's rate() and cron() in UTC, on
// times the test gives (no clock), and its errors with their columns.
#include "daemon/schedule_expression.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace {

using thatchd::ScheduleError;
using thatchd::ScheduleExpression;
using TimePoint = ScheduleExpression::TimePoint;

// "2026-12-06T12:00" or "2026-12-06T12:00:30", UTC.
TimePoint at(const std::string& text) {
  int y = std::stoi(text.substr(0, 4));
  unsigned mo = unsigned(std::stoi(text.substr(5, 2))), d = unsigned(std::stoi(text.substr(8, 2)));
  int h = std::stoi(text.substr(11, 2)), mi = std::stoi(text.substr(14, 2));
  int s = text.size() > 16 ? std::stoi(text.substr(17, 2)) : 0;
  return TimePoint(std::chrono::sys_days(std::chrono::year(y) / std::chrono::month(mo) / d)) +
         std::chrono::hours(h) + std::chrono::minutes(mi) + std::chrono::seconds(s);
}

// The first `n` due times after `after`, as "YYYY-MM-DDTHH:MM:SSZ"; "none"
// where there is no next.
std::vector<std::string> dues(const std::string& expression, const std::string& after, size_t n,
                              const std::string& anchor = "2026-12-06T12:00") {
  ScheduleExpression e = ScheduleExpression::parse(expression, at(anchor));
  std::vector<std::string> out;
  TimePoint t = at(after);
  for (size_t i = 0; i < n; ++i) {
    std::optional<TimePoint> next = e.next(t);
    if (!next) {
      out.push_back("none");
      break;
    }
    out.push_back(thatchd::isoUtc(*next));
    t = *next;
  }
  return out;
}

std::string next(const std::string& expression, const std::string& after) {
  return dues(expression, after, 1)[0];
}

// What parse() says of `expression`: "column C: why", or "" if it parsed.
std::string error(const std::string& expression) {
  try {
    ScheduleExpression::parse(expression);
  } catch (const ScheduleError& e) {
    return e.what();
  }
  return "";
}

using V = std::vector<std::string>;

// ---- rate ---------------------------------------------------------------

TEST(ScheduleRate, CountsFromItsAnchor) {
  EXPECT_EQ(dues("rate(5 minutes)", "2026-12-06T12:00", 3, "2026-12-06T12:00"),
            (V{"2026-12-06T12:05:00Z", "2026-12-06T12:10:00Z", "2026-12-06T12:15:00Z"}));
  // The anchor is truncated to its minute; a time between two dues.
  EXPECT_EQ(dues("rate(5 minutes)", "2026-12-06T12:07:59", 2, "2026-12-06T12:00:45"),
            (V{"2026-12-06T12:10:00Z", "2026-12-06T12:15:00Z"}));
  // Strictly after: a due time itself gives the one after it.
  EXPECT_EQ(dues("rate(5 minutes)", "2026-12-06T12:10", 1, "2026-12-06T12:00"),
            (V{"2026-12-06T12:15:00Z"}));
  // Before its anchor: the first due is one period after the anchor.
  EXPECT_EQ(dues("rate(1 minute)", "2020-01-01T00:00", 1, "2026-12-06T12:00"),
            (V{"2026-12-06T12:01:00Z"}));
}

TEST(ScheduleRate, HoursAndDays) {
  EXPECT_EQ(dues("rate(1 hour)", "2026-12-06T12:30", 2, "2026-12-06T12:17"),
            (V{"2026-12-06T13:17:00Z", "2026-12-06T14:17:00Z"}));
  EXPECT_EQ(dues("rate(36 hours)", "2026-12-06T12:00", 2, "2026-12-06T12:00"),
            (V{"2026-12-08T00:00:00Z", "2026-12-09T12:00:00Z"}));
  EXPECT_EQ(dues("rate(1 day)", "2026-12-31T23:59", 1, "2026-12-06T08:00"),
            (V{"2027-01-01T08:00:00Z"}));
  EXPECT_EQ(dues("rate(7 days)", "2027-02-26T00:00", 2, "2027-02-01T00:00"),
            (V{"2027-03-01T00:00:00Z", "2027-03-08T00:00:00Z"}));
  EXPECT_EQ(ScheduleExpression::parse("rate(2 hours)").period(), std::chrono::minutes(120));
  EXPECT_TRUE(ScheduleExpression::parse("rate(2 hours)").isRate());
  EXPECT_FALSE(ScheduleExpression::parse("cron(0 0 * * ? *)").isRate());
}

TEST(ScheduleRate, StopsAfter2199) {
  EXPECT_EQ(dues("rate(1 day)", "2199-12-30T12:00", 3, "2026-12-06T12:00"),
            (V{"2199-12-31T12:00:00Z", "none"}));
}

TEST(ScheduleRate, ErrorsNameTheColumn) {
  EXPECT_EQ(error("rate(0 minutes)"), "column 6: rate value 0: it must be at least 1");
  EXPECT_EQ(error("rate(1 minutes)"), "column 8: rate(1 minutes) is written rate(1 minute)");
  EXPECT_EQ(error("rate(5 minute)"), "column 8: rate(5 minute) is written rate(5 minutes)");
  EXPECT_EQ(error("rate(2 hour)"), "column 8: rate(2 hour) is written rate(2 hours)");
  EXPECT_EQ(error("rate(1 days)"), "column 8: rate(1 days) is written rate(1 day)");
  EXPECT_EQ(error("rate(5 weeks)"),
            "column 8: unit 'weeks': a rate's unit is minute(s), hour(s) or day(s)");
  EXPECT_EQ(error("rate(-5 minutes)"), "column 6: expected the rate's value (a whole number) here");
  EXPECT_EQ(error("rate(5)"),
            "column 7: expected a space and a unit (minutes, hours, days) after 5");
  EXPECT_EQ(error("rate(5 minutes"), "column 15: the expression ends before its ')'");
  EXPECT_EQ(error("rate(5 minutes) x"), "column 17: unexpected 'x' after ')'");
  EXPECT_EQ(error("rate(5 minutes now)"), "column 16: unexpected 'n' after the unit");
  EXPECT_EQ(error("rate(1234567890 minutes)"), "column 6: rate value 1234567890 is too large");
  EXPECT_EQ(error("every 5 minutes"), "column 1: a schedule is rate(N unit) or cron(6 fields)");
  EXPECT_EQ(error(""), "column 1: a schedule is rate(N unit) or cron(6 fields)");
  EXPECT_EQ(error("rate(1 minute)"), "");
  EXPECT_EQ(error("  rate(10 minutes)  "), "");
}

// ---- cron: minutes, hours, lists, ranges, steps --------------------------

TEST(ScheduleCron, EveryMinuteIsStrictlyAfter) {
  EXPECT_EQ(dues("cron(* * * * ? *)", "2026-12-06T12:00", 2),
            (V{"2026-12-06T12:01:00Z", "2026-12-06T12:02:00Z"}));
  EXPECT_EQ(next("cron(* * * * ? *)", "2026-12-06T12:00:59"), "2026-12-06T12:01:00Z");
  EXPECT_EQ(next("cron(* * * * ? *)", "2026-12-31T23:59:30"), "2027-01-01T00:00:00Z");
}

TEST(ScheduleCron, DailyAtNoon) {
  EXPECT_EQ(dues("cron(0 12 * * ? *)", "2026-12-06T12:00", 3),
            (V{"2026-12-07T12:00:00Z", "2026-12-08T12:00:00Z", "2026-12-09T12:00:00Z"}));
  EXPECT_EQ(next("cron(0 12 * * ? *)", "2026-12-06T11:59:59"), "2026-12-06T12:00:00Z");
  // The same with '?' in day-of-month and '*' in day-of-week.
  EXPECT_EQ(next("cron(0 12 ? * * *)", "2026-12-06T12:00"), "2026-12-07T12:00:00Z");
}

TEST(ScheduleCron, ListsAndRanges) {
  EXPECT_EQ(dues("cron(0,30 9-10 * * ? *)", "2026-12-06T09:00", 5),
            (V{"2026-12-06T09:30:00Z", "2026-12-06T10:00:00Z", "2026-12-06T10:30:00Z",
               "2026-12-07T09:00:00Z", "2026-12-07T09:30:00Z"}));
  EXPECT_EQ(dues("cron(15 1,3-4,23 * * ? *)", "2026-12-06T00:00", 5),
            (V{"2026-12-06T01:15:00Z", "2026-12-06T03:15:00Z", "2026-12-06T04:15:00Z",
               "2026-12-06T23:15:00Z", "2026-12-07T01:15:00Z"}));
  EXPECT_EQ(dues("cron(0 0 1,15-16 * ? *)", "2026-12-06T00:00", 4),
            (V{"2026-12-15T00:00:00Z", "2026-12-16T00:00:00Z", "2027-01-01T00:00:00Z",
               "2027-01-15T00:00:00Z"}));
}

TEST(ScheduleCron, Steps) {
  EXPECT_EQ(dues("cron(*/15 * * * ? *)", "2026-12-06T12:00", 5),
            (V{"2026-12-06T12:15:00Z", "2026-12-06T12:30:00Z", "2026-12-06T12:45:00Z",
               "2026-12-06T13:00:00Z", "2026-12-06T13:15:00Z"}));
  // 10/15: the 10th minute and every 15th after it within the hour.
  EXPECT_EQ(dues("cron(10/15 * * * ? *)", "2026-12-06T12:00", 5),
            (V{"2026-12-06T12:10:00Z", "2026-12-06T12:25:00Z", "2026-12-06T12:40:00Z",
               "2026-12-06T12:55:00Z", "2026-12-06T13:10:00Z"}));
  // AWS's own example: 1/10 is the 1st, 11th, 21st... minute.
  EXPECT_EQ(dues("cron(1/10 * * * ? *)", "2026-12-06T12:00", 3),
            (V{"2026-12-06T12:01:00Z", "2026-12-06T12:11:00Z", "2026-12-06T12:21:00Z"}));
  EXPECT_EQ(dues("cron(10-30/10 */6 * * ? *)", "2026-12-06T06:10", 4),
            (V{"2026-12-06T06:20:00Z", "2026-12-06T06:30:00Z", "2026-12-06T12:10:00Z",
               "2026-12-06T12:20:00Z"}));
  // Day-of-month steps restart each month.
  EXPECT_EQ(dues("cron(0 0 */10 * ? *)", "2027-01-25T00:00", 4),
            (V{"2027-01-31T00:00:00Z", "2027-02-01T00:00:00Z", "2027-02-11T00:00:00Z",
               "2027-02-21T00:00:00Z"}));
  // Months and years.
  EXPECT_EQ(dues("cron(0 0 1 1/4 ? *)", "2026-12-06T00:00", 3),
            (V{"2027-01-01T00:00:00Z", "2027-05-01T00:00:00Z", "2027-09-01T00:00:00Z"}));
  EXPECT_EQ(dues("cron(0 0 1 1 ? 2030-2036/3)", "2026-12-06T00:00", 4),
            (V{"2030-01-01T00:00:00Z", "2033-01-01T00:00:00Z", "2036-01-01T00:00:00Z", "none"}));
  // A step longer than its range: only the start.
  EXPECT_EQ(dues("cron(5/70 0 * * ? *)", "2026-12-06T12:00", 2),
            (V{"2026-12-07T00:05:00Z", "2026-12-08T00:05:00Z"}));
}

TEST(ScheduleCron, MonthAndDayNamesInAnyCase) {
  EXPECT_EQ(dues("cron(0 0 1 jan,Jul ? *)", "2026-12-06T00:00", 3),
            (V{"2027-01-01T00:00:00Z", "2027-07-01T00:00:00Z", "2028-01-01T00:00:00Z"}));
  EXPECT_EQ(dues("cron(0 0 1 MAR-MAY ? *)", "2026-12-06T00:00", 4),
            (V{"2027-03-01T00:00:00Z", "2027-04-01T00:00:00Z", "2027-05-01T00:00:00Z",
               "2028-03-01T00:00:00Z"}));
  // 2026-12-06 is a Sunday: weekdays at 18:00.
  EXPECT_EQ(dues("cron(0 18 ? * MON-FRI *)", "2026-12-06T00:00", 6),
            (V{"2026-12-07T18:00:00Z", "2026-12-08T18:00:00Z", "2026-12-09T18:00:00Z",
               "2026-12-10T18:00:00Z", "2026-12-11T18:00:00Z", "2026-12-14T18:00:00Z"}));
  // 1 = SUN, 7 = SAT: the same days by number; wed by name.
  EXPECT_EQ(dues("cron(0 18 ? * 2-6 *)", "2026-12-06T00:00", 6),
            dues("cron(0 18 ? * mon-fri *)", "2026-12-06T00:00", 6));
  EXPECT_EQ(dues("cron(0 8 ? * 1,wed,7 *)", "2026-12-06T08:00", 4),
            (V{"2026-12-09T08:00:00Z", "2026-12-12T08:00:00Z", "2026-12-13T08:00:00Z",
               "2026-12-16T08:00:00Z"}));
}

TEST(ScheduleCron, Years) {
  EXPECT_EQ(dues("cron(0 0 1 1 ? 2030)", "2026-12-06T00:00", 2),
            (V{"2030-01-01T00:00:00Z", "none"}));
  EXPECT_EQ(dues("cron(0 0 1 1 ? 2199)", "2026-12-06T00:00", 2),
            (V{"2199-01-01T00:00:00Z", "none"}));
  EXPECT_EQ(next("cron(0 0 1 1 ? *)", "2199-06-01T00:00"), "none");
  EXPECT_EQ(next("cron(0 0 1 1 ? 2020)", "2026-12-06T00:00"), "none");  // in the past
}

// ---- cron: the calendar --------------------------------------------------

TEST(ScheduleCron, LeapYears) {
  EXPECT_EQ(dues("cron(0 0 29 2 ? *)", "2026-12-06T00:00", 3),
            (V{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z", "2036-02-29T00:00:00Z"}));
  // 2100 is not a leap year (divisible by 100, not by 400); 2000 was.
  EXPECT_EQ(dues("cron(0 0 29 FEB ? 2096-2104)", "2096-03-01T00:00", 2),
            (V{"2104-02-29T00:00:00Z", "none"}));
  EXPECT_EQ(next("cron(0 0 29 FEB ? *)", "1999-01-01T00:00"), "2000-02-29T00:00:00Z");
  EXPECT_EQ(next("cron(0 0 L 2 ? *)", "2100-01-01T00:00"), "2100-02-28T00:00:00Z");
}

TEST(ScheduleCron, MonthEnds) {
  EXPECT_EQ(dues("cron(0 0 L * ? *)", "2026-12-06T00:00", 4),
            (V{"2026-12-31T00:00:00Z", "2027-01-31T00:00:00Z", "2027-02-28T00:00:00Z",
               "2027-03-31T00:00:00Z"}));
  EXPECT_EQ(next("cron(0 0 L * ? *)", "2028-02-01T00:00"), "2028-02-29T00:00:00Z");
  EXPECT_EQ(next("cron(0 0 L * ? *)", "2027-04-01T00:00"), "2027-04-30T00:00:00Z");
  // The 31st: only the months that have one.
  EXPECT_EQ(dues("cron(0 0 31 * ? *)", "2027-01-31T00:00", 3),
            (V{"2027-03-31T00:00:00Z", "2027-05-31T00:00:00Z", "2027-07-31T00:00:00Z"}));
  // The year's last minute rolls over into the next year.
  EXPECT_EQ(dues("cron(59 23 L 12 ? *)", "2026-12-31T23:58", 2),
            (V{"2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z"}));
}

TEST(ScheduleCron, ImpossibleExpressionsEndAtOnce) {
  auto began = std::chrono::steady_clock::now();
  EXPECT_EQ(next("cron(0 0 30 FEB ? *)", "2026-12-06T00:00"), "none");
  EXPECT_EQ(next("cron(0 0 31 4,6,9,11 ? *)", "1970-01-01T00:00"), "none");
  EXPECT_EQ(next("cron(0 0 30W 2 ? *)", "2026-12-06T00:00"), "none");
  EXPECT_EQ(next("cron(0 0 ? 2 2#5 2101-2103)", "2026-12-06T00:00"), "none");
  // A hang guard, not a figure: the search is bounded by the calendar to 2199.
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(30));
}

TEST(ScheduleCron, UtcHasNoDaylightSaving) {
  // The US (2026-03-08) and the EU (2026-03-29, 2026-10-25) change their
  // clocks; UTC does not: 02:30 happens every day, once.
  EXPECT_EQ(dues("cron(30 2 * * ? *)", "2026-03-07T03:00", 3),
            (V{"2026-03-08T02:30:00Z", "2026-03-09T02:30:00Z", "2026-03-10T02:30:00Z"}));
  EXPECT_EQ(dues("cron(30 1 * * ? *)", "2026-10-24T02:00", 2),
            (V{"2026-10-25T01:30:00Z", "2026-10-26T01:30:00Z"}));
  EXPECT_EQ(dues("rate(1 hour)", "2026-03-29T00:30", 3, "2026-03-29T00:00"),
            (V{"2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z", "2026-03-29T03:00:00Z"}));
}

// ---- cron: L, W, # -------------------------------------------------------

TEST(ScheduleCron, LastWeekdayOfTheMonth) {
  // 2026-12-31 is a Thursday; 2027-01-31 a Sunday (-> Friday 29th);
  // 2027-02-28 a Sunday (-> 26th); 2027-07-31 a Saturday (-> 30th).
  EXPECT_EQ(dues("cron(0 9 LW * ? *)", "2026-12-06T00:00", 3),
            (V{"2026-12-31T09:00:00Z", "2027-01-29T09:00:00Z", "2027-02-26T09:00:00Z"}));
  EXPECT_EQ(next("cron(0 9 LW * ? *)", "2027-07-01T00:00"), "2027-07-30T09:00:00Z");
}

TEST(ScheduleCron, NearestWeekdayNeverCrossesTheMonth) {
  // 2026-08-15 is a Saturday: Friday the 14th. 2026-02-15 a Sunday: Monday 16th.
  EXPECT_EQ(next("cron(0 0 15W 8 ? *)", "2026-01-01T00:00"), "2026-08-14T00:00:00Z");
  EXPECT_EQ(next("cron(0 0 15W 2 ? *)", "2026-01-01T00:00"), "2026-02-16T00:00:00Z");
  // A weekday: itself (2026-12-15 is a Tuesday).
  EXPECT_EQ(next("cron(0 0 15W * ? *)", "2026-12-06T00:00"), "2026-12-15T00:00:00Z");
  // 1W on a Saturday (2026-08-01) is Monday the 3rd, not Friday July 31st.
  EXPECT_EQ(next("cron(0 0 1W 8 ? *)", "2026-07-01T00:00"), "2026-08-03T00:00:00Z");
  // 1W on a Sunday (2026-02-01): Monday the 2nd.
  EXPECT_EQ(next("cron(0 0 1W 2 ? *)", "2026-01-01T00:00"), "2026-02-02T00:00:00Z");
  // 31W on a Sunday (2026-05-31) is Friday the 29th, not Monday June 1st;
  // on a Saturday (2026-01-31) Friday the 30th.
  EXPECT_EQ(next("cron(0 0 31W 5 ? *)", "2026-01-01T00:00"), "2026-05-29T00:00:00Z");
  EXPECT_EQ(next("cron(0 0 31W 1 ? *)", "2026-01-01T00:00"), "2026-01-30T00:00:00Z");
  // 31W in a month of 30 days: no day that month.
  // 2027-05-31 is a Monday; April and June have no 31st; 2027-07-31 is a Saturday.
  EXPECT_EQ(dues("cron(0 0 31W * ? *)", "2027-03-31T00:00", 2),
            (V{"2027-05-31T00:00:00Z", "2027-07-30T00:00:00Z"}));
  EXPECT_EQ(next("cron(0 0 31W 6 ? *)", "2027-01-01T00:00"), "none");
}

TEST(ScheduleCron, LastDayOfWeekInTheMonth) {
  // 5L: the last Thursday. 2026-12-31 is one; January 2027's is the 28th.
  EXPECT_EQ(dues("cron(0 0 ? * 5L *)", "2026-12-06T00:00", 3),
            (V{"2026-12-31T00:00:00Z", "2027-01-28T00:00:00Z", "2027-02-25T00:00:00Z"}));
  // 1L: the last Sunday; 2027-02-28 is a Sunday.
  EXPECT_EQ(next("cron(0 0 ? 2 1L *)", "2027-01-01T00:00"), "2027-02-28T00:00:00Z");
  // L alone is day 7, Saturday: every Saturday, not the last one.
  EXPECT_EQ(dues("cron(0 0 ? * L *)", "2026-12-06T00:00", 3),
            (V{"2026-12-12T00:00:00Z", "2026-12-19T00:00:00Z", "2026-12-26T00:00:00Z"}));
}

TEST(ScheduleCron, NthDayOfWeekInTheMonth) {
  // 3#2: the second Tuesday. December 2026 starts on one (1st, 8th);
  // January 2027 on a Friday (5th, 12th).
  EXPECT_EQ(dues("cron(0 10 ? * 3#2 *)", "2026-12-06T00:00", 2),
            (V{"2026-12-08T10:00:00Z", "2027-01-12T10:00:00Z"}));
  EXPECT_EQ(dues("cron(0 10 ? * TUE#1 *)", "2026-12-06T00:00", 1), (V{"2027-01-05T10:00:00Z"}));
  // 6#5: a fifth Friday; December 2026 has four, January 2027 five (29th).
  EXPECT_EQ(dues("cron(0 0 ? * 6#5 *)", "2026-12-01T00:00", 2),
            (V{"2027-01-29T00:00:00Z", "2027-04-30T00:00:00Z"}));
  // 1#1 on a month's first day.
  EXPECT_EQ(next("cron(0 0 ? * 1#1 *)", "2026-02-01T00:00"), "2026-03-01T00:00:00Z");
}

TEST(ScheduleCron, DueBetweenCountsRunsInASpan) {
  auto e = ScheduleExpression::parse("cron(0 * * * ? *)");
  auto span = e.dueBetween(at("2026-12-06T12:00"), at("2026-12-06T15:00"), 1000);
  EXPECT_EQ(span.count, 3u);
  EXPECT_EQ(thatchd::isoUtc(span.first), "2026-12-06T13:00:00Z");
  EXPECT_EQ(thatchd::isoUtc(span.last), "2026-12-06T15:00:00Z");
  EXPECT_EQ(e.dueBetween(at("2026-12-06T12:00"), at("2026-12-06T12:59"), 1000).count, 0u);
  EXPECT_EQ(e.dueBetween(at("2026-12-06T12:00"), at("2026-12-07T12:00"), 5).count, 5u);
  auto rate = ScheduleExpression::parse("rate(10 minutes)", at("2026-12-06T12:00"));
  span = rate.dueBetween(at("2026-12-06T12:05"), at("2026-12-07T12:00"), 1000000);
  EXPECT_EQ(span.count, 144u);
  EXPECT_EQ(thatchd::isoUtc(span.first), "2026-12-06T12:10:00Z");
  EXPECT_EQ(thatchd::isoUtc(span.last), "2026-12-07T12:00:00Z");
  EXPECT_EQ(rate.dueBetween(at("2026-12-06T12:05"), at("2026-12-07T12:00"), 7).count, 7u);
}

// ---- cron: errors ------------------------------------------------------

TEST(ScheduleCronErrors, OutOfRangeValuesNameFieldAndColumn) {
  EXPECT_EQ(error("cron(0 25 * * ? *)"), "column 8: hour 25 is out of 0-23");
  EXPECT_EQ(error("cron(60 0 * * ? *)"), "column 6: minute 60 is out of 0-59");
  EXPECT_EQ(error("cron(0 0 32 * ? *)"), "column 10: day-of-month 32 is out of 1-31");
  EXPECT_EQ(error("cron(0 0 0 * ? *)"), "column 10: day-of-month 0 is out of 1-31");
  EXPECT_EQ(error("cron(0 0 1 13 ? *)"), "column 12: month 13 is out of 1-12");
  EXPECT_EQ(error("cron(0 0 ? * 8 *)"), "column 14: day-of-week 8 is out of 1-7");
  EXPECT_EQ(error("cron(0 0 ? * 0 *)"), "column 14: day-of-week 0 is out of 1-7");
  EXPECT_EQ(error("cron(0 0 1 * ? 1969)"), "column 16: year 1969 is out of 1970-2199");
  EXPECT_EQ(error("cron(0 0 1 * ? 2200)"), "column 16: year 2200 is out of 1970-2199");
  EXPECT_EQ(error("cron(0 0,5,99 * * ? *)"), "column 12: hour 99 is out of 0-23");
  EXPECT_EQ(error("cron(0 1-24 * * ? *)"), "column 10: hour 24 is out of 0-23");
}

TEST(ScheduleCronErrors, Names) {
  EXPECT_EQ(error("cron(0 0 1 FOO ? *)"), "column 12: 'FOO' is not a month (JAN-DEC or 1-12)");
  EXPECT_EQ(error("cron(0 0 ? * MON-FUN *)"),
            "column 18: 'FUN' is not a day-of-week (SUN-SAT or 1-7)");
  EXPECT_EQ(error("cron(0 x * * ? *)"), "column 8: 'X' is not a hour (0-23)");
}

TEST(ScheduleCronErrors, QuestionMarks) {
  EXPECT_EQ(error("cron(0 0 * * * *)"),
            "column 14: one of day-of-month and day-of-week must be '?' (here day-of-week: '*' "
            "with day-of-month '*')");
  EXPECT_EQ(error("cron(0 0 1 * MON *)"),
            "column 14: one of day-of-month and day-of-week must be '?' (here day-of-week: 'MON' "
            "with day-of-month '1')");
  EXPECT_EQ(error("cron(0 0 ? * ? *)"),
            "column 14: day-of-month and day-of-week cannot both be '?': one of them says which "
            "days");
  EXPECT_EQ(error("cron(? 0 * * ? *)"), "column 6: '?' is not allowed in the minute field");
  EXPECT_EQ(error("cron(0 0 1,? * ? *)"), "column 12: '?' stands alone in its field");
}

TEST(ScheduleCronErrors, WildcardsOutsideTheirFields) {
  EXPECT_EQ(error("cron(0 L * * ? *)"), "column 8: 'L' is not allowed in the hour field");
  EXPECT_EQ(error("cron(0 0 1 * ? L)"), "column 16: 'L' is not allowed in the year field");
  EXPECT_EQ(error("cron(0 0 1 W ? *)"), "column 12: 'W' is not allowed in the month field");
  EXPECT_EQ(error("cron(0 0 1#2 * ? *)"), "column 11: '#' is only for the day-of-week field");
  EXPECT_EQ(error("cron(0 0 ? * 2W *)"), "column 15: 'W' is only for the day-of-month field");
  EXPECT_EQ(error("cron(0 0 ? * MON/2 *)"),
            "column 17: '/' is not allowed in the day-of-week field");
}

TEST(ScheduleCronErrors, SpecialDaysStandAlone) {
  EXPECT_EQ(error("cron(0 0 15W,20 * ? *)"),
            "column 13: 'NW' (the weekday nearest day N) stands alone in the day-of-month field");
  EXPECT_EQ(error("cron(0 0 1,L * ? *)"),
            "column 12: 'L' is 'L', 'LW' or 'NW' (N 1-31), alone in the day-of-month field");
  EXPECT_EQ(error("cron(0 0 32W * ? *)"), "column 10: day-of-month 32 is out of 1-31");
  EXPECT_EQ(error("cron(0 0 ? * 3#1,6#3 *)"),
            "column 17: 'N#K' (the Kth day N of the month) stands alone in the day-of-week field");
  EXPECT_EQ(error("cron(0 0 ? * 3#6 *)"),
            "column 16: '#6': a month has a 1st to a 5th of each day (1-5)");
  EXPECT_EQ(error("cron(0 0 ? * 3#0 *)"),
            "column 16: '#0': a month has a 1st to a 5th of each day (1-5)");
  EXPECT_EQ(error("cron(0 0 ? * 3# *)"), "column 16: expected which one (1-5) after '#'");
  EXPECT_EQ(error("cron(0 0 ? * 8#1 *)"), "column 14: day-of-week 8 is out of 1-7");
  EXPECT_EQ(error("cron(0 0 ? * 1,5L *)"),
            "column 17: 'L' in day-of-week is 'L' (Saturday) or 'NL' (the last day N of the "
            "month), alone");
}

TEST(ScheduleCronErrors, StepsAndRanges) {
  EXPECT_EQ(error("cron(*/0 * * * ? *)"), "column 8: step 0 is out of 1-59");
  EXPECT_EQ(error("cron(5/ * * * ? *)"), "column 8: expected a step (a number) after '/'");
  EXPECT_EQ(error("cron(30-10 * * * ? *)"), "column 9: minute range 30-10 ends before it begins");
  EXPECT_EQ(error("cron(0 0 ? * FRI-MON *)"),
            "column 18: day-of-week range FRI-MON ends before it begins");
  EXPECT_EQ(error("cron(0,,5 * * * ? *)"),
            "column 8: expected a minute in the minute field, "
            "found ','");
  EXPECT_EQ(error("cron(0- * * * ? *)"),
            "column 8: expected a minute in the minute field, "
            "found nothing");
}

TEST(ScheduleCronErrors, FieldCount) {
  EXPECT_EQ(error("cron(0 12 * * ?)"),
            "column 16: cron takes 6 fields (minutes hours day-of-month month day-of-week year); "
            "this has 5");
  EXPECT_EQ(error("cron(0 12 * * ? * 5)"),
            "column 19: cron takes 6 fields (minutes hours day-of-month month day-of-week year); "
            "a 7th begins here");
  EXPECT_EQ(error("cron()"),
            "column 6: cron takes 6 fields (minutes hours day-of-month month day-of-week year); "
            "this has 0");
  EXPECT_EQ(error("cron(0 12 * * ? *"), "column 18: the expression ends before its ')'");
  EXPECT_EQ(error("cron(0 12 * * ? *) daily"), "column 20: unexpected 'd' after ')'");
  EXPECT_EQ(error("cron(" + std::string(300, '1') + ")"),
            "column 257: an expression is at most 256 characters");
  // Spaces and tabs between fields, any case.
  EXPECT_EQ(error("CRON(0  12\t* * ? *)"), "");
}

TEST(ScheduleExpression, IsoUtcFormatsTheEventsTime) {
  EXPECT_EQ(thatchd::isoUtc(at("2026-12-06T12:00")), "2026-12-06T12:00:00Z");
  EXPECT_EQ(thatchd::isoUtc(at("1970-01-01T00:00")), "1970-01-01T00:00:00Z");
  EXPECT_EQ(thatchd::isoUtc(at("2199-12-31T23:59:59")), "2199-12-31T23:59:59Z");
}

}  // namespace
