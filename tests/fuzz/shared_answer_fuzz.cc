// The shared answer page, scribbled on by a sandbox: any bytes in the page
// (its header included) give an answer thatchd takes and decodes, or the
// decoder's errors; never a read past the page or a crash.

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "runtime/channel_messages.h"
#include "runtime/shared_answer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static base::Fd fd = runtime::SharedAnswer::create();
  static runtime::SharedAnswer page(fd.get());
  static auto* sandboxView = static_cast<uint8_t*>(mmap(
      nullptr, runtime::SharedAnswer::kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0));
  if (sandboxView == MAP_FAILED) abort();
  page.watch();
  memset(sandboxView, 0, runtime::SharedAnswer::kBytes);
  memcpy(sandboxView, data, std::min(size, runtime::SharedAnswer::kBytes));
  if (page.ready() || !page.abandon()) {
    capnp::ReaderOptions options;
    options.traversalLimitInWords = 1 << 16;
    try {
      kj::Own<capnp::MessageReader> answer = page.take(options);
      runtime::parseResult(*answer);
    } catch (const runtime::ChannelClosed&) {
    } catch (const kj::Exception&) {
    }
  }
  return 0;
}
