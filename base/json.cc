#include "base/json.h"

#include <cstdio>

#include "base/text.h"

namespace base {

using base::utf8Length;

namespace {

bool isJsonSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
bool isDigit(char c) {
  return c >= '0' && c <= '9';
}
bool isHexDigit(char c) {
  return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Open containers are kept on an explicit stack, not the call stack.
class JsonValidator {
 public:
  explicit JsonValidator(std::string_view text) : text_(text) {}

  bool valid() {
    skipSpace();
    if (!startValue()) return false;
    for (;;) {
      skipSpace();
      if (open_.empty()) return pos_ == text_.size();
      if (consume(',')) {
        skipSpace();
        if (open_.back() == '{' && !memberName()) return false;
        if (!startValue()) return false;
      } else if (consume(open_.back() == '{' ? '}' : ']')) {
        open_.pop_back();
      } else {
        return false;
      }
    }
  }

 private:
  // A whole scalar or empty container; or the opening of a container up to
  // its first scalar or empty container, the containers left open.
  bool startValue() {
    for (;;) {
      if (consume('{')) {
        skipSpace();
        if (consume('}')) return true;
        open_.push_back('{');
        if (!memberName()) return false;
      } else if (consume('[')) {
        skipSpace();
        if (consume(']')) return true;
        open_.push_back('[');
      } else {
        return scalar();
      }
    }
  }

  bool memberName() {
    if (!string()) return false;
    skipSpace();
    if (!consume(':')) return false;
    skipSpace();
    return true;
  }

  bool scalar() {
    if (at('"')) return string();
    if (at('-') || (pos_ < text_.size() && isDigit(text_[pos_]))) return number();
    for (std::string_view literal : {"true", "false", "null"}) {
      if (text_.substr(pos_).starts_with(literal)) {
        pos_ += literal.size();
        return true;
      }
    }
    return false;
  }

  bool string() {
    if (!consume('"')) return false;
    while (pos_ < text_.size()) {
      unsigned char c = text_[pos_];
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        if (!escape()) return false;
        continue;
      }
      size_t length = utf8Length(text_, pos_);
      if (length == 0) return false;
      pos_ += length;
    }
    return false;
  }

  bool escape() {
    ++pos_;  // the backslash
    if (pos_ >= text_.size()) return false;
    char kind = text_[pos_++];
    if (std::string_view("\"\\/bfnrt").find(kind) != std::string_view::npos) return true;
    if (kind != 'u' || text_.size() - pos_ < 4) return false;
    for (int i = 0; i < 4; ++i)
      if (!isHexDigit(text_[pos_++])) return false;
    return true;
  }

  bool number() {
    consume('-');
    if (!consume('0') && !digits()) return false;
    if (consume('.') && !digits()) return false;
    if (consume('e') || consume('E')) {
      if (!consume('+')) consume('-');
      if (!digits()) return false;
    }
    return true;
  }

  bool digits() {
    size_t start = pos_;
    while (pos_ < text_.size() && isDigit(text_[pos_])) ++pos_;
    return pos_ > start;
  }

  bool at(char c) const { return pos_ < text_.size() && text_[pos_] == c; }
  bool consume(char c) {
    if (!at(c)) return false;
    ++pos_;
    return true;
  }
  void skipSpace() {
    while (pos_ < text_.size() && isJsonSpace(text_[pos_])) ++pos_;
  }

  std::string_view text_;
  size_t pos_ = 0;
  std::vector<char> open_;  // '{' or '[' per open container
};

}  // namespace

bool isJson(std::string_view text) {
  return JsonValidator(text).valid();
}

void JsonWriter::beforeValue() {
  if (afterKey_) {
    afterKey_ = false;
    return;
  }
  if (containerIsEmpty_.empty()) return;
  if (!containerIsEmpty_.back()) out_ += ',';
  containerIsEmpty_.back() = false;
}

JsonWriter& JsonWriter::beginObject() {
  beforeValue();
  out_ += '{';
  containerIsEmpty_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::endObject() {
  out_ += '}';
  containerIsEmpty_.pop_back();
  return *this;
}

JsonWriter& JsonWriter::beginArray() {
  beforeValue();
  out_ += '[';
  containerIsEmpty_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::endArray() {
  out_ += ']';
  containerIsEmpty_.pop_back();
  return *this;
}

JsonWriter& JsonWriter::key(std::string_view name) {
  beforeValue();
  out_ += jsonString(name);
  out_ += ':';
  afterKey_ = true;
  return *this;
}

JsonWriter& JsonWriter::stringValue(std::string_view text) {
  beforeValue();
  out_ += jsonString(text);
  return *this;
}

JsonWriter& JsonWriter::unsignedValue(uint64_t value) {
  beforeValue();
  out_ += std::to_string(value);
  return *this;
}

JsonWriter& JsonWriter::signedValue(int64_t value) {
  beforeValue();
  out_ += std::to_string(value);
  return *this;
}

JsonWriter& JsonWriter::boolValue(bool value) {
  beforeValue();
  out_ += value ? "true" : "false";
  return *this;
}

JsonWriter& JsonWriter::nullValue() {
  beforeValue();
  out_ += "null";
  return *this;
}

JsonWriter& JsonWriter::rawJson(std::string_view json) {
  while (!json.empty() && isJsonSpace(json.front())) json.remove_prefix(1);
  while (!json.empty() && isJsonSpace(json.back())) json.remove_suffix(1);
  beforeValue();
  out_ += json;
  return *this;
}

}  // namespace base
