// The `thatch` CLI's values as text: what its options accept (sizes,
// durations, counts) and how it shows sizes, times and tables. Parsing is
// strict: whole numbers and a few units, nothing else.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cli {

// Whole bytes, or a whole number with K, M or G (binary; KiB, MiB, GiB
// too): "4096", "512K", "128MiB". nullopt for anything else or past 2^64-1.
std::optional<uint64_t> parseSize(std::string_view text);

// A whole number with ms, s, m or h: "500ms", "3s", "2m". nullopt for
// anything else, a bare number included ("250" could be either unit).
std::optional<std::chrono::milliseconds> parseDuration(std::string_view text);

// Digits only; nullopt past 2^64-1.
std::optional<uint64_t> parseWholeNumber(std::string_view text);

// Exact, in the largest unit that divides: "128MiB", "1000B"; "3s", "1500ms".
std::string exactBytes(uint64_t bytes);
std::string exactDuration(std::chrono::milliseconds duration);

// For reading measured amounts: "812 B", "1.2 KiB", "38.5 MiB".
std::string approximateBytes(uint64_t bytes);

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
