#include "api/cli_text.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <span>

namespace cli {

namespace {

struct Unit {
  std::string_view suffix;
  uint64_t factor;
};

// Digits, then exactly one of `units`' suffixes.
std::optional<uint64_t> parseWithUnit(std::string_view text, std::span<const Unit> units) {
  if (text.empty() || text[0] < '0' || text[0] > '9') return std::nullopt;
  uint64_t number = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (error != std::errc()) return std::nullopt;
  std::string_view suffix(end, text.data() + text.size() - end);
  for (const Unit& unit : units) {
    if (suffix != unit.suffix) continue;
    if (number > UINT64_MAX / unit.factor) return std::nullopt;
    return number * unit.factor;
  }
  return std::nullopt;
}

constexpr Unit kSizeUnits[] = {
    {"", 1},
    {"K", 1ull << 10},
    {"KiB", 1ull << 10},
    {"M", 1ull << 20},
    {"MiB", 1ull << 20},
    {"G", 1ull << 30},
    {"GiB", 1ull << 30},
};

// Largest first: exactDuration picks the first that divides.
constexpr Unit kDurationUnits[] = {{"h", 3'600'000}, {"m", 60'000}, {"s", 1000}, {"ms", 1}};

std::string inLargestExactUnit(uint64_t count, std::span<const Unit> largestFirst,
                               std::string_view fallbackSuffix) {
  for (const Unit& unit : largestFirst)
    if (count != 0 && count % unit.factor == 0)
      return std::to_string(count / unit.factor) + std::string(unit.suffix);
  return std::to_string(count) + std::string(fallbackSuffix);
}

}  // namespace

std::optional<uint64_t> parseSize(std::string_view text) {
  return parseWithUnit(text, kSizeUnits);
}

std::optional<std::chrono::milliseconds> parseDuration(std::string_view text) {
  std::optional<uint64_t> ms = parseWithUnit(text, kDurationUnits);
  if (!ms || *ms > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return std::chrono::milliseconds(static_cast<int64_t>(*ms));
}

std::optional<uint64_t> parseWholeNumber(std::string_view text) {
  static constexpr Unit kNoUnit[] = {{"", 1}};
  return parseWithUnit(text, kNoUnit);
}

std::string exactBytes(uint64_t bytes) {
  static constexpr Unit kLargestFirst[] = {
      {"GiB", 1ull << 30}, {"MiB", 1ull << 20}, {"KiB", 1ull << 10}};
  return inLargestExactUnit(bytes, kLargestFirst, "B");
}

std::string exactDuration(std::chrono::milliseconds duration) {
  return inLargestExactUnit(static_cast<uint64_t>(duration.count()), kDurationUnits, "ms");
}

std::string approximateBytes(uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " B";
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  snprintf(text, sizeof text, "%.1f %s", value, kUnits[unit]);
  return text;
}

std::string milliseconds(std::chrono::nanoseconds duration) {
  double ms = static_cast<double>(duration.count()) / 1e6;
  int decimals = ms >= 100 ? 0 : ms >= 10 ? 1 : ms >= 1 ? 2 : 3;
  char text[48];
  snprintf(text, sizeof text, "%.*f ms", decimals, ms);
  return text;
}

std::string localTime(int64_t unixMs) {
  time_t seconds = static_cast<time_t>(unixMs / 1000);
  struct tm parts;
  char text[32];
  if (!localtime_r(&seconds, &parts) || !strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &parts))
    return std::to_string(unixMs) + "ms";
  return text;
}

std::string plural(uint64_t count, std::string_view noun) {
  return std::to_string(count) + " " + std::string(noun) + (count == 1 ? "" : "s");
}

std::string formatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string text;
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      text += row[i];
      if (i + 1 < row.size()) text += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    text += '\n';
  }
  return text;
}

std::string oneLine(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  std::string line;
  for (char c : text) {
    unsigned char byte = static_cast<unsigned char>(c);
    if (c == '\n') {
      line += "\\n";
    } else if (c == '\r') {
      line += "\\r";
    } else if ((byte < 0x20 && c != '\t') || byte == 0x7f) {
      char escaped[8];
      snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      line += escaped;
    } else {
      line += c;
    }
  }
  return line;
}

}  // namespace cli
