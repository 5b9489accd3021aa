// EventBridge's schedule expressions, in UTC: `rate(N unit)` and the six
// fields of `cron(...)` (docs/triggers.md, "Schedules"). Pure code: parsing
// and the calendar, no clock of its own.
//
// cron(Minutes Hours Day-of-month Month Day-of-week Year):
//   minutes 0-59, hours 0-23 (`, - * /`); day-of-month 1-31 (`, - * ? / L W`);
//   month 1-12 or JAN-DEC (`, - * /`); day-of-week 1-7 or SUN-SAT, 1 = SUN
//   (`, - * ? L #`); year 1970-2199 (`, - * /`). Exactly one of day-of-month
//   and day-of-week is `?`. `L`, `LW`, `NW`, `NL` and `N#K` stand alone in
//   their field.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace thatchd {

// An expression thatchd cannot read: what() is "column C: why", C counting
// from 1 in the expression as given.
class ScheduleError : public std::runtime_error {
 public:
  ScheduleError(size_t column, const std::string& why)
      : std::runtime_error("column " + std::to_string(column) + ": " + why), column_(column) {}
  size_t column() const { return column_; }

 private:
  size_t column_;
};

class ScheduleExpression {
 public:
  using TimePoint = std::chrono::system_clock::time_point;
  static constexpr size_t kMaxLength = 256;
  static constexpr int kFirstYear = 1970;
  static constexpr int kLastYear = 2199;

  // Throws ScheduleError. A rate counts from `anchor` (truncated to its
  // minute): due at anchor + k·N units, k ≥ 1. A cron ignores it.
  static ScheduleExpression parse(std::string_view text, TimePoint anchor = TimePoint{});

  // The first due time strictly after `after`, on a whole minute; none when
  // the expression is never due again (cron(0 0 30 FEB ? *), or past 2199).
  std::optional<TimePoint> next(TimePoint after) const;

  // Due times in (after, until]: their number, at most `limit`, and the
  // first and last of those counted.
  struct Span {
    uint64_t count = 0;
    TimePoint first{}, last{};
  };
  Span dueBetween(TimePoint after, TimePoint until, uint64_t limit) const;

  bool isRate() const { return kind_ == Kind::kRate; }
  std::chrono::minutes period() const { return period_; }  // a rate's

 private:
  friend class CronParser;
  enum class Kind { kRate, kCron };
  enum class DayOfMonth { kAny, kDays, kLast, kLastWeekday, kNearestWeekday };
  enum class DayOfWeek { kAny, kDays, kLastOfMonth, kNth };

  bool dayMatches(int year, unsigned month, unsigned day) const;
  std::optional<TimePoint> nextCron(TimePoint after) const;

  Kind kind_ = Kind::kRate;
  // rate
  std::chrono::minutes period_{0};
  TimePoint anchor_{};
  // cron: bit i set = value i is in the field
  uint64_t minutes_ = 0;
  uint32_t hours_ = 0;
  uint32_t days_ = 0;       // 1-31
  uint16_t months_ = 0;     // 1-12
  uint8_t weekdays_ = 0;    // 1-7, 1 = Sunday
  uint64_t years_[4] = {};  // year - kFirstYear
  DayOfMonth dayOfMonth_ = DayOfMonth::kAny;
  unsigned nearestDay_ = 0;  // kNearestWeekday: NW's N
  DayOfWeek dayOfWeek_ = DayOfWeek::kAny;
  unsigned weekday_ = 0;  // kLastOfMonth, kNth: 1-7
  unsigned nth_ = 0;      // kNth: 1-5
};

// "2026-12-06T12:00:00Z": the scheduled event's `time`, and the log's.
std::string isoUtc(ScheduleExpression::TimePoint time);

}  // namespace thatchd
