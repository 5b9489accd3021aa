// Reading the stores' TOML files (function.toml, layer.toml): a field that
// is missing or of another type is an error naming it, never a default.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace supervisor {

template <typename T>
T required(const toml::table& table, std::string_view key) {
  std::optional<T> value = table[key].value_exact<T>();
  if (!value) throw std::runtime_error("'" + std::string(key) + "' is missing or mistyped");
  return *value;
}

inline uint64_t requiredCount(const toml::table& table, std::string_view key,
                              uint64_t max = INT64_MAX) {
  int64_t value = required<int64_t>(table, key);
  if (value < 0 || static_cast<uint64_t>(value) > max)
    throw std::runtime_error("'" + std::string(key) + "' is out of range");
  return static_cast<uint64_t>(value);
}

}  // namespace supervisor
