// The `thatch` CLI's values as text: the counts its options accept, and how
// it shows times and tables. Sizes and durations are base/units.h's, as
// everywhere else.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cli {

// Digits only; nullopt past 2^64-1. (Sizes and durations: base/units.h.)
std::optional<uint64_t> parseWholeNumber(std::string_view text);

// Three significant digits, at most three decimals: "0.021 ms", "4.18 ms",
// "48.2 ms", "1532 ms".
std::string milliseconds(std::chrono::nanoseconds duration);

// "2024-05-01 14:03:27" in the local time zone.
std::string localTime(int64_t unixMs);

// "1 file", "2 files".
std::string plural(uint64_t count, std::string_view noun);

// Left-aligned columns two spaces apart, one line per row.
std::string formatTable(const std::vector<std::vector<std::string>>& rows);

// `text` on one line: trailing newlines dropped, others written as \n and
// other control characters as \xNN, so that an error is one line of stderr
// whatever a handler put in it (terminal escapes included).
std::string oneLine(std::string_view text);

}  // namespace cli
