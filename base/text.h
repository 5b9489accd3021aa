// Text that came from someone else (a client, a sandbox, a file on disk),
// made safe to show: in a message, a log line or a JSON document.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace base {

// `text` with control bytes escaped (\xNN) and cut after `limit` bytes
// (then "..."), so that it cannot garble a message or a log line.
std::string printable(std::string_view text, size_t limit);

// printable(text, limit) in single quotes.
std::string quoted(std::string_view text, size_t limit);

// The length of the UTF-8 sequence starting at text[pos], or 0 when it is
// not one: overlong forms, surrogates and code points past U+10FFFF are not.
size_t utf8Length(std::string_view text, size_t pos);
bool isUtf8(std::string_view text);

// `bytes` as lower-case hex, two digits a byte.
std::string hexText(std::span<const unsigned char> bytes);

// The text of a version 4 (random) UUID made of 128 random bits, `high`
// then `low`: lower-case hex, its version and variant bits set.
std::string uuidText(uint64_t high, uint64_t low);

// `text` as a JSON string literal. Bytes that are not UTF-8 become U+FFFD:
// JSON text must be UTF-8.
std::string jsonString(std::string_view text);

}  // namespace base
