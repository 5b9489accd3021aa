// A small JSON writer and validator: the `thatch` CLI's --json output and
// the Lambda HTTP API's answers.
// The validator decides whether a function's result can be embedded as a
// JSON value; it is iterative because the result comes from an untrusted
// sandbox and may nest deeper than any recursion could follow.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/text.h"

namespace base {

// Whether `text` is one JSON value (RFC 8259), surrounding whitespace
// allowed, every string valid UTF-8.
bool isJson(std::string_view text);

using base::jsonString;  // `text` as a JSON string literal

// Builds one compact JSON document. Commas are placed automatically; keys
// are given with key() before each member's value.
class JsonWriter {
 public:
  JsonWriter& beginObject();
  JsonWriter& endObject();
  JsonWriter& beginArray();
  JsonWriter& endArray();
  JsonWriter& key(std::string_view name);

  JsonWriter& stringValue(std::string_view text);
  JsonWriter& unsignedValue(uint64_t value);
  JsonWriter& signedValue(int64_t value);
  JsonWriter& boolValue(bool value);
  JsonWriter& nullValue();
  JsonWriter& rawJson(std::string_view json);  // already valid JSON (see isJson)

  const std::string& text() const { return out_; }

 private:
  void beforeValue();

  std::string out_;
  std::vector<bool> containerIsEmpty_;  // one per open object or array
  bool afterKey_ = false;
};

}  // namespace base
