// Sizes and durations as people write them: one grammar for every place
// that reads one (thatch-run's options, thatchd.toml, the `thatch` CLI,
// the API's messages). docs/configuration.md#sizes-and-durations describes
// it for users.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace base {

// A whole or decimal number (up to 9 decimal places) and an optional unit,
// binary whatever its spelling: B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB,
// case-insensitive, spaces allowed before the unit. "4096", "512K",
// "64KiB", "128M", "1.5G". No unit means bytes and must be whole; fractions
// round down to a byte. Throws std::invalid_argument (empty, negative,
// garbage, unknown unit, over 2^64-1 bytes) with a message for the user.
uint64_t parseSize(std::string_view text);

// A whole or decimal number (up to 9 decimal places) and a required unit:
// ms, s, m, h, d (lowercase). "500ms", "3s", "1.5s", "10m", "1h". A bare
// number is refused: "250" could mean seconds or milliseconds. Must be a
// whole number of milliseconds and at most 36500d. Throws
// std::invalid_argument with a message for the user.
std::chrono::milliseconds parseDuration(std::string_view text);

// The inverses, in the largest unit that is exact: "128MiB", "1536MiB",
// "1000B"; "3s", "10m", "1500ms", "0s". parseSize(formatSize(n)) == n.
std::string formatSize(uint64_t bytes);
std::string formatDuration(std::chrono::milliseconds duration);

// For reading a measured amount, one decimal past bytes: "812 B",
// "1.2 KiB", "38.5 MiB", "1.5 GiB".
std::string approximateSize(uint64_t bytes);

}  // namespace base
