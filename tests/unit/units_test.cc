// base/units.h: the one grammar of sizes and durations, and its inverses.
#include "base/units.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace base {
namespace {

using namespace std::chrono_literals;

TEST(ParseSize, AcceptsUnits) {
  EXPECT_EQ(parseSize("0"), 0u);
  EXPECT_EQ(parseSize("4096"), 4096u);
  EXPECT_EQ(parseSize("4096B"), 4096u);
  EXPECT_EQ(parseSize("512K"), 512ull << 10);
  EXPECT_EQ(parseSize("512k"), 512ull << 10);
  EXPECT_EQ(parseSize("64KiB"), 64ull << 10);
  EXPECT_EQ(parseSize("64kb"), 64ull << 10);
  EXPECT_EQ(parseSize("128M"), 128ull << 20);
  EXPECT_EQ(parseSize("128MB"), 128ull << 20);  // binary whatever the spelling
  EXPECT_EQ(parseSize("128 MiB"), 128ull << 20);
  EXPECT_EQ(parseSize("1G"), 1ull << 30);
  EXPECT_EQ(parseSize("1.5G"), 3ull << 29);
  EXPECT_EQ(parseSize("0.5K"), 512u);
  EXPECT_EQ(parseSize("2T"), 2ull << 40);
  EXPECT_EQ(parseSize("007M"), 7ull << 20);
  EXPECT_EQ(parseSize("0.000000001K"), 0u);     // rounds down to a whole byte
  EXPECT_EQ(parseSize("1.999999999K"), 2047u);  // 2047.99999... bytes
}

TEST(ParseSize, EdgesOfTheRange) {
  EXPECT_EQ(parseSize("18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(parseSize("16777215T"), 16777215ull << 40);
  EXPECT_EQ(parseSize("16777215.999999999T"), (16777215ull << 40) + 1099511626676ull);
  for (const char* tooLarge :
       {"18446744073709551616", "99999999999999999999999", "16777216T", "17179869184G"}) {
    try {
      parseSize(tooLarge);
      ADD_FAILURE() << tooLarge;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("too large"), std::string::npos) << e.what();
    }
  }
}

TEST(ParseSize, RejectsGarbage) {
  for (const char* bad :
       {"",     " ",     "M",    "12X",           "-5M",   "-0",    "+5",
        "abc",  "1e3",   "0x10", " 5M",           "5M ",   "5 ",    "1.",
        ".5K",  "1..5K", "1.5",  "1.0000000001G", "5MiBs", "5 M B", "\xef\xbc\x91",
        "1,5G", "5\n"}) {
    EXPECT_THROW(parseSize(bad), std::invalid_argument) << bad;
  }
  EXPECT_THROW(parseSize(std::string_view("5\0M", 3)), std::invalid_argument);
  try {
    parseSize("12X");
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()),
              "invalid size '12X': the unit must be B, K, M, G or T (also "
              "KB, KiB...)");
  }
  try {
    parseSize("");
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "empty size (use e.g. 4096, 512K, 128M, 1.5G)");
  }
}

TEST(ParseDuration, AcceptsUnits) {
  EXPECT_EQ(parseDuration("500ms"), 500ms);
  EXPECT_EQ(parseDuration("3s"), 3s);
  EXPECT_EQ(parseDuration("1.5s"), 1500ms);
  EXPECT_EQ(parseDuration("0.001s"), 1ms);
  EXPECT_EQ(parseDuration("10m"), 10min);
  EXPECT_EQ(parseDuration("1h"), 1h);
  EXPECT_EQ(parseDuration("0.5h"), 30min);
  EXPECT_EQ(parseDuration("2d"), 48h);
  EXPECT_EQ(parseDuration("0s"), 0ms);
  EXPECT_EQ(parseDuration("0ms"), 0ms);
  EXPECT_EQ(parseDuration("3 s"), 3s);
  EXPECT_EQ(parseDuration("36500d"), std::chrono::hours(36500 * 24));
}

TEST(ParseDuration, RejectsGarbageAndOverflow) {
  for (const char* bad : {"",
                          "s",
                          "250",
                          "0",
                          "-1s",
                          "-0s",
                          "+1s",
                          "5x",
                          "3S",
                          "3MS",
                          "1e3s",
                          "1.s",
                          ".5s",
                          "0.5ms",
                          "1.0001s",
                          "1.0000000001s",
                          " 3s",
                          "3s ",
                          "3sec",
                          "36501d",
                          "36500.001d",
                          "99999999999999999999s",
                          "18446744073709551615d",
                          "5h30m"}) {
    EXPECT_THROW(parseDuration(bad), std::invalid_argument) << bad;
  }
  try {
    parseDuration("250");
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "duration '250' has no unit (ms, s, m, h or d)");
  }
}

TEST(FormatSize, UsesTheLargestExactUnit) {
  EXPECT_EQ(formatSize(0), "0B");
  EXPECT_EQ(formatSize(1000), "1000B");
  EXPECT_EQ(formatSize(1024), "1KiB");
  EXPECT_EQ(formatSize(64ull << 10), "64KiB");
  EXPECT_EQ(formatSize(128ull << 20), "128MiB");
  EXPECT_EQ(formatSize(3ull << 29), "1536MiB");
  EXPECT_EQ(formatSize(4ull << 30), "4GiB");
  EXPECT_EQ(formatSize(1ull << 50), "1024TiB");
  EXPECT_EQ(formatSize(UINT64_MAX), "18446744073709551615B");
}

TEST(FormatDuration, UsesTheLargestExactUnit) {
  EXPECT_EQ(formatDuration(0ms), "0s");
  EXPECT_EQ(formatDuration(1ms), "1ms");
  EXPECT_EQ(formatDuration(1500ms), "1500ms");
  EXPECT_EQ(formatDuration(3s), "3s");
  EXPECT_EQ(formatDuration(90s), "90s");
  EXPECT_EQ(formatDuration(10min), "10m");
  EXPECT_EQ(formatDuration(1h), "1h");
  EXPECT_EQ(formatDuration(48h), "2d");
  EXPECT_EQ(formatDuration(-5ms), "-5ms");
  EXPECT_EQ(formatDuration(std::chrono::milliseconds(INT64_MIN)), "-9223372036854775808ms");
}

TEST(FormatAndParse, AreInverses) {
  std::mt19937_64 random(7);
  std::vector<uint64_t> sizes = {0,          1,          1023,           1024,      1025,
                                 8ull << 20, UINT64_MAX, UINT64_MAX - 1, 1ull << 63};
  for (int i = 0; i < 2000; ++i) sizes.push_back(random() >> (random() % 64));
  for (uint64_t size : sizes) EXPECT_EQ(parseSize(formatSize(size)), size) << size;

  std::vector<int64_t> durations = {0, 1, 999, 1000, 60000, 3600000, 86400000, 36500ll * 86400000};
  for (int i = 0; i < 2000; ++i)
    durations.push_back(static_cast<int64_t>(random() % (36500ull * 86400000 + 1)));
  for (int64_t ms : durations)
    EXPECT_EQ(parseDuration(formatDuration(std::chrono::milliseconds(ms))).count(), ms);
}

TEST(ApproximateSize, OneDecimalPastBytes) {
  EXPECT_EQ(approximateSize(0), "0 B");
  EXPECT_EQ(approximateSize(1023), "1023 B");
  EXPECT_EQ(approximateSize(1024), "1.0 KiB");
  EXPECT_EQ(approximateSize(1229), "1.2 KiB");
  EXPECT_EQ(approximateSize(40370176), "38.5 MiB");
  EXPECT_EQ(approximateSize(3ull << 29), "1.5 GiB");
  EXPECT_EQ(approximateSize(1ull << 50), "1024.0 TiB");
}

}  // namespace
}  // namespace base
