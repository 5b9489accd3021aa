#include "daemon/schedule_expression.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstdio>
#include <vector>

namespace thatchd {

namespace {

using std::chrono::days;
using std::chrono::minutes;
using std::chrono::sys_days;
using TimePoint = ScheduleExpression::TimePoint;

constexpr const char* kMonthNames[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                       "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr const char* kDayNames[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

// One of cron's six fields: its values, and the wildcards it takes beyond
// `, - *` (table of docs/triggers.md).
struct FieldSpec {
  const char* name;  // in messages: "hour 25 is out of 0-23"
  unsigned min, max;
  const char* const* names;  // names for min..max, or none
  bool steps;                // `/`
};

constexpr FieldSpec kMinute{"minute", 0, 59, nullptr, true};
constexpr FieldSpec kHour{"hour", 0, 23, nullptr, true};
constexpr FieldSpec kDayOfMonth{"day-of-month", 1, 31, nullptr, true};
constexpr FieldSpec kMonth{"month", 1, 12, kMonthNames, true};
constexpr FieldSpec kDayOfWeek{"day-of-week", 1, 7, kDayNames, false};
constexpr FieldSpec kYear{"year", ScheduleExpression::kFirstYear, ScheduleExpression::kLastYear,
                          nullptr, true};

std::string quoted(std::string_view text) {
  return "'" + std::string(text) + "'";
}

// A set of values min..max of one field.
using Values = std::vector<bool>;

// Reads one field, `text`, which starts at 1-based column `column` of the
// expression; upper-cased already.
class FieldParser {
 public:
  FieldParser(const FieldSpec& spec, std::string_view text, size_t column)
      : spec_(spec), text_(text), column_(column) {}

  // `, - * /` and values: the set it names.
  Values list() {
    Values values(spec_.max + 1, false);
    for (;;) {
      item(values);
      if (at_ == text_.size()) return values;
      if (text_[at_] != ',')
        fail(at_,
             "unexpected " + quoted(text_.substr(at_, 1)) + " in the " + spec_.name + " field");
      ++at_;
    }
  }

  // A number or a name at the cursor, in min..max.
  unsigned value() {
    size_t start = at_;
    if (at_ < text_.size() && isdigit(uint8_t(text_[at_]))) {
      while (at_ < text_.size() && isdigit(uint8_t(text_[at_]))) ++at_;
      if (at_ - start > 4)
        fail(start, std::string(spec_.name) + " " + std::string(text_.substr(start, at_ - start)) +
                        " is out of " + range());
      unsigned n = unsigned(std::stoul(std::string(text_.substr(start, at_ - start))));
      if (n < spec_.min || n > spec_.max)
        fail(start, std::string(spec_.name) + " " + std::to_string(n) + " is out of " + range());
      return n;
    }
    while (at_ < text_.size() && isalpha(uint8_t(text_[at_]))) ++at_;
    std::string_view word = text_.substr(start, at_ - start);
    if (word.empty()) {
      std::string found = start < text_.size() ? quoted(text_.substr(start, 1)) : "nothing";
      fail(start, "expected a " + std::string(spec_.name) + " in the " + spec_.name +
                      " field, found " + found);
    }
    if (spec_.names)
      for (unsigned i = spec_.min; i <= spec_.max; ++i)
        if (word == spec_.names[i - spec_.min]) return i;
    if (spec_.names)
      fail(start, quoted(word) + " is not a " + spec_.name + " (" + spec_.names[0] + "-" +
                      spec_.names[spec_.max - spec_.min] + " or " + range() + ")");
    fail(start, quoted(word) + " is not a " + std::string(spec_.name) + " (" + range() + ")");
  }

  bool atEnd() const { return at_ == text_.size(); }
  size_t at() const { return at_; }
  char peek() const { return at_ < text_.size() ? text_[at_] : '\0'; }
  void skip() { ++at_; }

  [[noreturn]] void fail(size_t at, const std::string& why) const {
    throw ScheduleError(column_ + at, why);
  }

 private:
  std::string range() const { return std::to_string(spec_.min) + "-" + std::to_string(spec_.max); }

  // `*`, `*/S`, `A`, `A-B`, `A/S`, `A-B/S`
  void item(Values& values) {
    unsigned first = spec_.min, last = spec_.max, step = 1;
    size_t start = at_;
    bool ranged = peek() == '*';
    if (ranged) {
      ++at_;
    } else {
      first = last = value();
      if (peek() == '-') {
        ranged = true;
        ++at_;
        size_t to = at_;
        last = value();
        if (last < first)
          fail(to, std::string(spec_.name) + " range " +
                       std::string(text_.substr(start, at_ - start)) + " ends before it begins");
      }
    }
    if (peek() == '/') {
      if (!spec_.steps)
        fail(at_, std::string("'/' is not allowed in the ") + spec_.name + " field");
      ++at_;
      size_t from = at_;
      while (at_ < text_.size() && isdigit(uint8_t(text_[at_]))) ++at_;
      std::string digits(text_.substr(from, at_ - from));
      if (digits.empty()) fail(from, "expected a step (a number) after '/'");
      if (digits.size() > 4 || std::stoul(digits) == 0)
        fail(from, "step " + digits + " is out of 1-" + std::to_string(spec_.max));
      step = unsigned(std::stoul(digits));
      if (!ranged) last = spec_.max;  // 10/15: from 10 on
    }
    for (unsigned v = first; v <= last; v += step) values[v] = true;
  }

  const FieldSpec& spec_;
  std::string_view text_;
  size_t column_;
  size_t at_ = 0;
};

template <typename Bits>
Bits bitsOf(const Values& values, unsigned offset = 0) {
  Bits bits = 0;
  for (size_t v = offset; v < values.size(); ++v)
    if (values[v]) bits |= Bits(1) << (v - offset);
  return bits;
}

// The position of the first of `chars` in `text`, or npos.
size_t findAny(std::string_view text, std::string_view chars) {
  return text.find_first_of(chars);
}

unsigned daysIn(int year, unsigned month) {
  using namespace std::chrono;
  return unsigned(
      year_month_day_last(std::chrono::year(year), month_day_last(std::chrono::month(month)))
          .day());
}

// 1 = Sunday .. 7 = Saturday, as cron's day-of-week.
unsigned weekdayOf(int year, unsigned month, unsigned day) {
  using namespace std::chrono;
  return weekday(sys_days(std::chrono::year(year) / std::chrono::month(month) / day)).c_encoding() +
         1;
}

struct Civil {
  int year;
  unsigned month, day, hour, minute;
};

Civil civilOf(TimePoint time) {
  auto minute = std::chrono::floor<minutes>(time);
  auto day = std::chrono::floor<days>(minute);
  std::chrono::year_month_day ymd(day);
  auto inDay = std::chrono::duration_cast<minutes>(minute - day).count();
  return {int(ymd.year()), unsigned(ymd.month()), unsigned(ymd.day()), unsigned(inDay / 60),
          unsigned(inDay % 60)};
}

TimePoint timeOf(const Civil& c) {
  sys_days day(std::chrono::year(c.year) / std::chrono::month(c.month) / c.day);
  return TimePoint(day) + std::chrono::hours(c.hour) + minutes(c.minute);
}

// The lowest bit set at or above `from`, or -1.
template <typename Bits>
int nextBit(Bits bits, unsigned from) {
  if (from >= sizeof(Bits) * 8) return -1;
  Bits above = bits & ~((Bits(1) << from) - 1);
  return above == 0 ? -1 : std::countr_zero(above);
}

}  // namespace

// Reads cron(...)'s six fields into an expression.
class CronParser {
 public:
  CronParser(ScheduleExpression& out) : out_(out) {}

  // `body`: what is between the parentheses, starting at column `column`.
  void parse(std::string_view body, size_t column) {
    struct Field {
      std::string_view text;
      size_t column;
    };
    std::vector<Field> fields;
    size_t at = 0;
    while (at < body.size()) {
      if (body[at] == ' ' || body[at] == '\t') {
        ++at;
        continue;
      }
      size_t end = body.find_first_of(" \t", at);
      if (end == std::string_view::npos) end = body.size();
      if (fields.size() == 6)
        throw ScheduleError(column + at,
                            "cron takes 6 fields (minutes hours day-of-month month "
                            "day-of-week year); a 7th begins here");
      fields.push_back({body.substr(at, end - at), column + at});
      at = end;
    }
    if (fields.size() < 6)
      throw ScheduleError(column + body.size(),
                          "cron takes 6 fields (minutes hours day-of-month month day-of-week "
                          "year); this has " +
                              std::to_string(fields.size()));
    for (size_t i : {0, 1, 3, 5}) {
      size_t q = findAny(fields[i].text, "?LW#");
      if (q != std::string_view::npos) {
        const FieldSpec& spec = i == 0 ? kMinute : i == 1 ? kHour : i == 3 ? kMonth : kYear;
        // Month names hold no such letters but "JUL": let the list read it.
        if (i == 3 && fields[i].text[q] == 'L' && q > 0 && isalpha(uint8_t(fields[i].text[q - 1])))
          continue;
        throw ScheduleError(
            fields[i].column + q,
            quoted(fields[i].text.substr(q, 1)) + " is not allowed in the " + spec.name + " field");
      }
    }
    out_.minutes_ = bitsOf<uint64_t>(FieldParser(kMinute, fields[0].text, fields[0].column).list());
    out_.hours_ = bitsOf<uint32_t>(FieldParser(kHour, fields[1].text, fields[1].column).list());
    out_.months_ = bitsOf<uint16_t>(FieldParser(kMonth, fields[3].text, fields[3].column).list());
    Values years = FieldParser(kYear, fields[5].text, fields[5].column).list();
    for (unsigned y = ScheduleExpression::kFirstYear; y <= ScheduleExpression::kLastYear; ++y)
      if (years[y])
        out_.years_[(y - ScheduleExpression::kFirstYear) / 64] |=
            uint64_t(1) << ((y - ScheduleExpression::kFirstYear) % 64);
    dayOfMonth(fields[2].text, fields[2].column);
    dayOfWeek(fields[4].text, fields[4].column);
    bool anyMonthDay = out_.dayOfMonth_ == ScheduleExpression::DayOfMonth::kAny;
    bool anyWeekDay = out_.dayOfWeek_ == ScheduleExpression::DayOfWeek::kAny;
    if (anyMonthDay && anyWeekDay)
      throw ScheduleError(fields[4].column,
                          "day-of-month and day-of-week cannot both be '?': one of them says "
                          "which days");
    if (!anyMonthDay && !anyWeekDay)
      throw ScheduleError(fields[4].column,
                          "one of day-of-month and day-of-week must be '?' (here day-of-week: " +
                              quoted(fields[4].text) + " with day-of-month " +
                              quoted(fields[2].text) + ")");
  }

 private:
  using DayOfMonth = ScheduleExpression::DayOfMonth;
  using DayOfWeek = ScheduleExpression::DayOfWeek;

  void dayOfMonth(std::string_view text, size_t column) {
    FieldParser parser(kDayOfMonth, text, column);
    if (text == "?") {
      out_.dayOfMonth_ = DayOfMonth::kAny;
      return;
    }
    size_t bad = findAny(text, "#");
    if (bad != std::string_view::npos) parser.fail(bad, "'#' is only for the day-of-week field");
    size_t special = findAny(text, "LW?");
    if (special == std::string_view::npos) {
      out_.dayOfMonth_ = DayOfMonth::kDays;
      out_.days_ = bitsOf<uint32_t>(parser.list());
      return;
    }
    if (text[special] == '?') parser.fail(special, "'?' stands alone in its field");
    if (text == "L") {
      out_.dayOfMonth_ = DayOfMonth::kLast;
    } else if (text == "LW") {
      out_.dayOfMonth_ = DayOfMonth::kLastWeekday;
    } else {
      // NW: the weekday nearest the Nth.
      if (text[special] == 'L' || !isdigit(uint8_t(text[0])))
        parser.fail(special, quoted(text.substr(special, 1)) +
                                 " is 'L', 'LW' or 'NW' (N 1-31), alone in the day-of-month "
                                 "field");
      unsigned day = parser.value();
      if (parser.peek() != 'W' || parser.at() + 1 != text.size())
        parser.fail(parser.at() + (parser.peek() == 'W'),
                    "'NW' (the weekday nearest day N) stands alone in the "
                    "day-of-month field");
      out_.dayOfMonth_ = DayOfMonth::kNearestWeekday;
      out_.nearestDay_ = day;
    }
  }

  void dayOfWeek(std::string_view text, size_t column) {
    FieldParser parser(kDayOfWeek, text, column);
    if (text == "?") {
      out_.dayOfWeek_ = DayOfWeek::kAny;
      return;
    }
    size_t bad = findAny(text, "W");
    // "WED": a name, read by value(); a W of its own is day-of-month's.
    if (bad != std::string_view::npos && text.find("WED") != bad)
      parser.fail(bad, "'W' is only for the day-of-month field");
    if (text == "L") {  // alone: the last day of the week, Saturday
      out_.dayOfWeek_ = DayOfWeek::kDays;
      out_.weekdays_ = uint8_t(1) << 7;
      return;
    }
    size_t hash = text.find('#');
    size_t question = text.find('?');
    if (question != std::string_view::npos) parser.fail(question, "'?' stands alone in its field");
    // NL or N#K: one day, alone.
    bool lastOf = text.size() >= 2 && text.back() == 'L' && text.find(',') == std::string::npos &&
                  text.find('-') == std::string::npos;
    if (hash == std::string_view::npos && !lastOf) {
      size_t l = text.find('L');
      if (l != std::string_view::npos && !(l > 0 && isalpha(uint8_t(text[l - 1]))))
        parser.fail(l,
                    "'L' in day-of-week is 'L' (Saturday) or 'NL' (the last day N of the "
                    "month), alone");
      out_.dayOfWeek_ = DayOfWeek::kDays;
      out_.weekdays_ = bitsOf<uint8_t>(parser.list());
      return;
    }
    unsigned day = parser.value();
    if (lastOf && hash == std::string_view::npos) {
      if (parser.at() + 1 != text.size())
        parser.fail(parser.at(),
                    "'NL' (the last day N of the month) stands alone in the "
                    "day-of-week field");
      out_.dayOfWeek_ = DayOfWeek::kLastOfMonth;
      out_.weekday_ = day;
      return;
    }
    if (parser.peek() != '#')
      parser.fail(parser.at(),
                  "'N#K' (the Kth day N of the month) stands alone in the "
                  "day-of-week field");
    parser.skip();
    size_t from = parser.at();
    if (!isdigit(uint8_t(parser.peek()))) parser.fail(from, "expected which one (1-5) after '#'");
    unsigned nth = unsigned(parser.peek() - '0');
    parser.skip();
    if (nth < 1 || nth > 5 || !parser.atEnd()) {
      if (!parser.atEnd() && !isdigit(uint8_t(parser.peek())))
        parser.fail(parser.at(),
                    "'N#K' (the Kth day N of the month) stands alone in the "
                    "day-of-week field");
      parser.fail(from, "'#" + std::string(text.substr(from)) +
                            "': a month has a 1st to a 5th of each day (1-5)");
    }
    out_.dayOfWeek_ = DayOfWeek::kNth;
    out_.weekday_ = day;
    out_.nth_ = nth;
  }

  ScheduleExpression& out_;
};

namespace {

// "rate(" or "cron(" at `text`'s start, any case.
bool startsWithWord(std::string_view text, std::string_view word) {
  if (text.size() < word.size()) return false;
  for (size_t i = 0; i < word.size(); ++i)
    if (toupper(uint8_t(text[i])) != toupper(uint8_t(word[i]))) return false;
  return true;
}

minutes parseRate(std::string_view body, size_t column) {
  size_t at = 0;
  while (at < body.size() && body[at] == ' ') ++at;
  size_t start = at;
  while (at < body.size() && isdigit(uint8_t(body[at]))) ++at;
  if (at == start)
    throw ScheduleError(column + start, "expected the rate's value (a whole number) here");
  std::string digits(body.substr(start, at - start));
  if (digits.size() > 9)
    throw ScheduleError(column + start, "rate value " + digits + " is too large");
  uint64_t value = std::stoull(digits);
  if (value == 0) throw ScheduleError(column + start, "rate value 0: it must be at least 1");
  if (at == body.size() || body[at] != ' ')
    throw ScheduleError(column + at,
                        "expected a space and a unit (minutes, hours, days) after " + digits);
  while (at < body.size() && body[at] == ' ') ++at;
  size_t unitAt = at;
  while (at < body.size() && isalpha(uint8_t(body[at]))) ++at;
  std::string unit(body.substr(unitAt, at - unitAt));
  for (char& c : unit) c = char(tolower(uint8_t(c)));
  while (at < body.size() && body[at] == ' ') ++at;
  if (at != body.size())
    throw ScheduleError(column + at,
                        "unexpected " + quoted(body.substr(at, 1)) + " after the unit");
  struct Unit {
    const char* singular;
    const char* plural;
    minutes length;
  };
  static const Unit kUnits[] = {{"minute", "minutes", minutes(1)},
                                {"hour", "hours", std::chrono::hours(1)},
                                {"day", "days", days(1)}};
  for (const Unit& u : kUnits) {
    if (unit != u.singular && unit != u.plural) continue;
    if (value == 1 && unit == u.plural)
      throw ScheduleError(column + unitAt,
                          "rate(1 " + unit + ") is written rate(1 " + u.singular + ")");
    if (value != 1 && unit == u.singular)
      throw ScheduleError(column + unitAt, "rate(" + digits + " " + unit + ") is written rate(" +
                                               digits + " " + u.plural + ")");
    return u.length * int64_t(value);
  }
  throw ScheduleError(column + unitAt,
                      (unit.empty() ? std::string("no unit") : "unit " + quoted(unit)) +
                          ": a rate's unit is minute(s), hour(s) or day(s)");
}

}  // namespace

ScheduleExpression ScheduleExpression::parse(std::string_view text, TimePoint anchor) {
  if (text.size() > kMaxLength)
    throw ScheduleError(kMaxLength + 1,
                        "an expression is at most " + std::to_string(kMaxLength) + " characters");
  size_t at = 0;
  while (at < text.size() && text[at] == ' ') ++at;
  std::string_view rest = text.substr(at);
  bool rate = startsWithWord(rest, "rate(");
  if (!rate && !startsWithWord(rest, "cron("))
    throw ScheduleError(at + 1, "a schedule is rate(N unit) or cron(6 fields)");
  size_t open = at + 5;  // the body's first character, 0-based
  size_t close = text.find(')', open);
  if (close == std::string_view::npos)
    throw ScheduleError(text.size() + 1, "the expression ends before its ')'");
  size_t after = close + 1;
  while (after < text.size() && text[after] == ' ') ++after;
  if (after != text.size())
    throw ScheduleError(after + 1, "unexpected " + quoted(text.substr(after, 1)) + " after ')'");
  std::string_view body = text.substr(open, close - open);
  ScheduleExpression expression;
  if (rate) {
    expression.kind_ = Kind::kRate;
    expression.period_ = parseRate(body, open + 1);
    expression.anchor_ = std::chrono::floor<minutes>(anchor);
    return expression;
  }
  std::string upper(body);
  for (char& c : upper) c = char(toupper(uint8_t(c)));
  expression.kind_ = Kind::kCron;
  CronParser(expression).parse(upper, open + 1);
  return expression;
}

bool ScheduleExpression::dayMatches(int year, unsigned month, unsigned day) const {
  unsigned last = daysIn(year, month);
  switch (dayOfMonth_) {
    case DayOfMonth::kAny:
      break;
    case DayOfMonth::kDays:
      return (days_ >> day) & 1;
    case DayOfMonth::kLast:
      return day == last;
    case DayOfMonth::kLastWeekday: {
      unsigned weekday = weekdayOf(year, month, last);
      unsigned target = weekday == 7 ? last - 1 : weekday == 1 ? last - 2 : last;
      return day == target;
    }
    case DayOfMonth::kNearestWeekday: {
      // Never across the month's ends: 1W on a Saturday is Monday the 3rd.
      unsigned n = nearestDay_;
      if (n > last) return false;  // 31W in a month of 30 days: none
      unsigned weekday = weekdayOf(year, month, n);
      unsigned target = n;
      if (weekday == 7) target = n == 1 ? n + 2 : n - 1;
      if (weekday == 1) target = n == last ? n - 2 : n + 1;
      return day == target;
    }
  }
  unsigned weekday = weekdayOf(year, month, day);
  switch (dayOfWeek_) {
    case DayOfWeek::kAny:
      return true;
    case DayOfWeek::kDays:
      return (weekdays_ >> weekday) & 1;
    case DayOfWeek::kLastOfMonth:
      return weekday == weekday_ && day + 7 > last;
    case DayOfWeek::kNth:
      return weekday == weekday_ && (day - 1) / 7 + 1 == nth_;
  }
  return false;
}

std::optional<TimePoint> ScheduleExpression::next(TimePoint after) const {
  if (kind_ == Kind::kCron) return nextCron(after);
  TimePoint limit = timeOf({kLastYear, 12, 31, 23, 59});
  if (after < anchor_) after = anchor_;
  auto since = std::chrono::floor<minutes>(after - anchor_);
  int64_t k = since.count() / period_.count() + 1;
  TimePoint due = anchor_ + period_ * k;
  if (due > limit) return std::nullopt;
  return due;
}

std::optional<TimePoint> ScheduleExpression::nextCron(TimePoint after) const {
  TimePoint first = std::chrono::floor<minutes>(after) + minutes(1);
  if (first < timeOf({kFirstYear, 1, 1, 0, 0})) first = timeOf({kFirstYear, 1, 1, 0, 0});
  Civil c = civilOf(first);
  // Each step moves forward to the next candidate of one field and resets
  // the finer ones; a year at most 12 months of at most 31 days: bounded.
  while (c.year <= kLastYear) {
    unsigned y = unsigned(c.year - kFirstYear);
    if (!((years_[y / 64] >> (y % 64)) & 1)) {
      c = {c.year + 1, 1, 1, 0, 0};
      continue;
    }
    int month = nextBit(months_, c.month);
    if (month < 0) {
      c = {c.year + 1, 1, 1, 0, 0};
      continue;
    }
    if (unsigned(month) != c.month) c = {c.year, unsigned(month), 1, 0, 0};
    unsigned last = daysIn(c.year, c.month);
    unsigned day = c.day;
    while (day <= last && !dayMatches(c.year, c.month, day)) ++day;
    if (day > last) {
      c = c.month == 12 ? Civil{c.year + 1, 1, 1, 0, 0} : Civil{c.year, c.month + 1, 1, 0, 0};
      continue;
    }
    if (day != c.day) c = {c.year, c.month, day, 0, 0};
    int hour = nextBit(hours_, c.hour);
    if (hour < 0) {
      c = Civil{c.year, c.month, c.day, 0, 0};
      c = civilOf(timeOf(c) + days(1));
      continue;
    }
    if (unsigned(hour) != c.hour) c = {c.year, c.month, c.day, unsigned(hour), 0};
    int minute = nextBit(minutes_, c.minute);
    if (minute < 0) {
      c = civilOf(timeOf({c.year, c.month, c.day, c.hour, 0}) + std::chrono::hours(1));
      continue;
    }
    c.minute = unsigned(minute);
    return timeOf(c);
  }
  return std::nullopt;
}

ScheduleExpression::Span ScheduleExpression::dueBetween(TimePoint after, TimePoint until,
                                                        uint64_t limit) const {
  Span span;
  std::optional<TimePoint> first = next(after);
  if (!first || *first > until || limit == 0) return span;
  span.first = *first;
  if (kind_ == Kind::kRate) {
    auto count = uint64_t((until - *first) / period_) + 1;
    span.count = std::min(count, limit);
    span.last = *first + period_ * int64_t(span.count - 1);
    return span;
  }
  std::optional<TimePoint> due = first;
  while (due && *due <= until && span.count < limit) {
    ++span.count;
    span.last = *due;
    due = next(*due);
  }
  return span;
}

std::string isoUtc(ScheduleExpression::TimePoint time) {
  auto second = std::chrono::floor<std::chrono::seconds>(time);
  auto day = std::chrono::floor<days>(second);
  std::chrono::year_month_day ymd(day);
  std::chrono::hh_mm_ss hms(second - day);
  char text[32];
  snprintf(text, sizeof text, "%04d-%02u-%02uT%02d:%02d:%02dZ", int(ymd.year()),
           unsigned(ymd.month()), unsigned(ymd.day()), int(hms.hours().count()),
           int(hms.minutes().count()), int(hms.seconds().count()));
  return text;
}

}  // namespace thatchd
