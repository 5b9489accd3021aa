// thatchd's config parser on any bytes: a ConfigError or a Config that
// validates, never a crash, a hang or another exception.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "supervisor/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    supervisor::Config config = supervisor::parseConfig(text, "fuzz.toml");
    // What parses is valid: parseConfig runs the same checks.
    if (!supervisor::validateConfig(config).empty()) abort();
    // And renders to text that parses back to the same config.
    if (!(supervisor::parseConfig(supervisor::renderConfig(config), "rendered") == config)) abort();
  } catch (const supervisor::ConfigError&) {
  }
  return 0;
}
