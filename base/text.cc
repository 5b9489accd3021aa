#include "base/text.h"

#include <cstdint>
#include <cstdio>

namespace base {

std::string printable(std::string_view text, size_t limit) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i == limit) return out + "...";
    unsigned char u = static_cast<unsigned char>(text[i]);
    if (u < 0x20 || u == 0x7f) {
      char hex[8];
      snprintf(hex, sizeof hex, "\\x%02x", u);
      out += hex;
    } else {
      out += text[i];
    }
  }
  return out;
}

size_t utf8Length(std::string_view text, size_t pos) {
  unsigned char lead = text[pos];
  if (lead < 0x80) return 1;
  size_t length;
  uint32_t codePoint, smallest;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, codePoint = lead & 0x1F, smallest = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, codePoint = lead & 0x0F, smallest = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, codePoint = lead & 0x07, smallest = 0x10000;
  } else {
    return 0;
  }
  if (text.size() - pos < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    unsigned char next = text[pos + i];
    if ((next & 0xC0) != 0x80) return 0;
    codePoint = (codePoint << 6) | (next & 0x3F);
  }
  bool surrogate = codePoint >= 0xD800 && codePoint <= 0xDFFF;
  if (codePoint < smallest || codePoint > 0x10FFFF || surrogate) return 0;
  return length;
}

bool isUtf8(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    size_t length = utf8Length(text, pos);
    if (length == 0) return false;
    pos += length;
  }
  return true;
}

std::string jsonString(std::string_view text) {
  std::string out = "\"";
  out.reserve(text.size() + 2);
  for (size_t pos = 0; pos < text.size();) {
    // Most text needs no escape: its runs of plain ASCII go in whole.
    size_t plain = pos;
    while (plain < text.size() && static_cast<unsigned char>(text[plain]) >= 0x20 &&
           static_cast<unsigned char>(text[plain]) < 0x80 && text[plain] != '"' &&
           text[plain] != '\\')
      ++plain;
    out.append(text, pos, plain - pos);
    pos = plain;
    if (pos == text.size()) break;
    unsigned char c = text[pos];
    if (c >= 0x80) {
      size_t length = utf8Length(text, pos);
      if (length == 0) {
        out += "\xEF\xBF\xBD";  // U+FFFD
        ++pos;
      } else {
        out.append(text, pos, length);
        pos += length;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char escaped[8];
          snprintf(escaped, sizeof escaped, "\\u%04x", c);
          out += escaped;
        } else {
          out += static_cast<char>(c);
        }
    }
    ++pos;
  }
  out += '"';
  return out;
}

std::string quoted(std::string_view text, size_t limit) {
  return "'" + printable(text, limit) + "'";
}

std::string uuidText(uint64_t high, uint64_t low) {
  using U = unsigned long long;
  char text[40];
  snprintf(text, sizeof text, "%08llx-%04llx-4%03llx-%04llx-%012llx", U(high >> 32),
           U((high >> 16) & 0xffff), U(high & 0xfff), U(0x8000 | ((low >> 48) & 0x3fff)),
           U(low & 0xffffffffffffull));
  return text;
}

std::string hexText(std::span<const unsigned char> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 0xF];
  }
  return out;
}

}  // namespace base
