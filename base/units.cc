#include "base/units.h"

#include <cctype>
#include <cstdio>
#include <iterator>
#include <optional>
#include <stdexcept>

#include "base/text.h"

namespace base {
namespace {

using std::chrono::milliseconds;

constexpr uint64_t kFractionScale = 1'000'000'000;  // 9 decimal places
// Fits a nanosecond clock with room for deadlines.
constexpr uint64_t kMaxDurationMs = 36500ull * 86'400'000;

std::string inQuotes(std::string_view text) {
  return quoted(text, 40);
}

struct Decimal {
  uint64_t whole = 0;
  uint64_t fraction = 0;  // over kFractionScale
  bool hasFraction = false;
  size_t used = 0;  // characters of the text taken
};

// The leading "123" or "1.25" of `text`; `what` ("size") and `examples` name
// the value in messages.
Decimal parseDecimal(std::string_view text, const char* what, const char* examples) {
  auto invalid = [&] {
    return std::invalid_argument(std::string("invalid ") + what + " " + inQuotes(text) + " (use " +
                                 examples + ")");
  };
  if (text.empty())
    throw std::invalid_argument(std::string("empty ") + what + " (use " + examples + ")");
  if (text[0] == '-')
    throw std::invalid_argument(std::string(what) + " " + inQuotes(text) + " is negative");
  Decimal d;
  auto isDigit = [&](size_t i) { return i < text.size() && text[i] >= '0' && text[i] <= '9'; };
  if (!isDigit(0)) throw invalid();
  for (; isDigit(d.used); ++d.used) {
    uint64_t digit = text[d.used] - '0';
    if (d.whole > (UINT64_MAX - digit) / 10)
      throw std::invalid_argument(std::string(what) + " " + inQuotes(text) + " is too large");
    d.whole = d.whole * 10 + digit;
  }
  if (d.used < text.size() && text[d.used] == '.') {
    ++d.used;
    if (!isDigit(d.used)) throw invalid();
    uint64_t scale = kFractionScale;
    for (; isDigit(d.used); ++d.used) {
      if (scale == 1)
        throw std::invalid_argument(std::string(what) + " " + inQuotes(text) +
                                    " has more than 9 decimal places");
      scale /= 10;
      d.fraction += (text[d.used] - '0') * scale;
    }
    d.hasFraction = true;
  }
  return d;
}

// What follows the number: spaces, then the unit (which must not be empty
// after spaces: "5 " is a typo, not bytes).
std::string_view unitOf(std::string_view text, size_t used, bool* hadSpace) {
  size_t start = used;
  while (start < text.size() && text[start] == ' ') ++start;
  *hadSpace = start != used;
  return text.substr(start);
}

struct Unit {
  std::string_view name;
  uint64_t factor;
};

// The factor of a size's unit, lowercase: "" or "b" for bytes, or k, m, g
// or t alone or followed by "b" or "ib" (binary whatever the spelling).
std::optional<uint64_t> sizeFactor(std::string_view unit) {
  if (unit.empty() || unit == "b") return 1;
  constexpr std::string_view kPrefixes = "kmgt";
  size_t power = kPrefixes.find(unit[0]);
  std::string_view rest = unit.substr(1);
  if (power == std::string_view::npos || !(rest.empty() || rest == "b" || rest == "ib"))
    return std::nullopt;
  return uint64_t(1) << (10 * (power + 1));
}

// Largest first: formatting picks the first that divides exactly.
constexpr Unit kDurationUnits[] = {
    {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1000}, {"ms", 1},
};

}  // namespace

uint64_t parseSize(std::string_view text) {
  constexpr const char* kExamples = "e.g. 4096, 512K, 128M, 1.5G";
  Decimal d = parseDecimal(text, "size", kExamples);
  bool hadSpace = false;
  std::string_view unitText = unitOf(text, d.used, &hadSpace);
  std::string unit;
  for (char c : unitText) unit += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::optional<uint64_t> factor = sizeFactor(unit);
  if (!factor || (hadSpace && unit.empty()))
    throw std::invalid_argument("invalid size " + inQuotes(text) +
                                ": the unit must be B, K, M, G or T (also KB, KiB...)");
  if (*factor == 1 && d.hasFraction)
    throw std::invalid_argument("size " + inQuotes(text) + " is a fraction of a byte");
  unsigned __int128 bytes = static_cast<unsigned __int128>(d.whole) * *factor +
                            static_cast<unsigned __int128>(d.fraction) * *factor / kFractionScale;
  if (bytes > UINT64_MAX) throw std::invalid_argument("size " + inQuotes(text) + " is too large");
  return static_cast<uint64_t>(bytes);
}

milliseconds parseDuration(std::string_view text) {
  constexpr const char* kExamples = "e.g. 500ms, 3s, 10m, 1h";
  Decimal d = parseDecimal(text, "duration", kExamples);
  bool hadSpace = false;
  std::string_view unit = unitOf(text, d.used, &hadSpace);
  if (unit.empty())
    throw std::invalid_argument("duration " + inQuotes(text) + " has no unit (ms, s, m, h or d)");
  const Unit* found = nullptr;
  for (const Unit& u : kDurationUnits)
    if (u.name == unit) found = &u;
  if (!found)
    throw std::invalid_argument("invalid duration " + inQuotes(text) +
                                ": the unit must be ms, s, m, h or d");
  unsigned __int128 fractionMs = static_cast<unsigned __int128>(d.fraction) * found->factor;
  if (fractionMs % kFractionScale != 0)
    throw std::invalid_argument("duration " + inQuotes(text) +
                                " is not a whole number of milliseconds");
  unsigned __int128 ms =
      static_cast<unsigned __int128>(d.whole) * found->factor + fractionMs / kFractionScale;
  if (ms > kMaxDurationMs)
    throw std::invalid_argument("duration " + inQuotes(text) + " is too long (at most 36500d)");
  return milliseconds(static_cast<int64_t>(ms));
}

std::string formatSize(uint64_t bytes) {
  static constexpr Unit kLargestFirst[] = {
      {"TiB", 1ull << 40}, {"GiB", 1ull << 30}, {"MiB", 1ull << 20}, {"KiB", 1ull << 10}};
  if (bytes != 0)
    for (const Unit& unit : kLargestFirst)
      if (bytes % unit.factor == 0)
        return std::to_string(bytes / unit.factor) + std::string(unit.name);
  return std::to_string(bytes) + "B";
}

std::string formatDuration(milliseconds duration) {
  int64_t count = duration.count();
  if (count == 0) return "0s";
  // Negative durations never parse; show them anyway rather than wrap.
  std::string sign = count < 0 ? "-" : "";
  uint64_t magnitude = count < 0 ? 0 - static_cast<uint64_t>(count) : static_cast<uint64_t>(count);
  for (const Unit& unit : kDurationUnits)
    if (magnitude % unit.factor == 0)
      return sign + std::to_string(magnitude / unit.factor) + std::string(unit.name);
  return sign + std::to_string(magnitude) + "ms";  // not reached: ms divides everything
}

std::string approximateSize(uint64_t bytes) {
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

}  // namespace base
