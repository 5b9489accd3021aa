// What a sandbox writes on its channel, as thatchd decodes it: any bytes
// give a ready, a result, or the decoder's own errors (LoadError,
// ChannelClosed, kj::Exception for a malformed message); never a crash.

#include <capnp/serialize.h>
#include <kj/io.h>

#include <cstddef>
#include <cstdint>

#include "runtime/channel_messages.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  capnp::ReaderOptions options;
  options.traversalLimitInWords = 1 << 16;  // the channel's limit, for a small answer
  for (int as = 0; as < 2; ++as) {
    try {
      kj::ArrayInputStream input(kj::arrayPtr(data, size));
      capnp::InputStreamMessageReader reader(input, options);
      if (as == 0)
        runtime::parseReady(reader);
      else
        runtime::parseResult(reader);
    } catch (const runtime::LoadError&) {
    } catch (const runtime::ChannelClosed&) {
    } catch (const kj::Exception&) {
    }
  }
  return 0;
}
