#include "runtime/shared_answer.h"

#include <capnp/serialize.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cstring>

#include "base/sys_error.h"

namespace runtime {

using base::check;

struct SharedAnswer::Header {
  uint32_t state;
  uint32_t words;  // the answer's length, written before kReady
};

base::Fd SharedAnswer::create() {
  base::Fd fd(memfd_create("thatch-answer", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) base::throwSysError("memfd_create");
  check(ftruncate(fd.get(), kBytes), "ftruncate");
  check(fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), "F_ADD_SEALS");
  return fd;
}

SharedAnswer::SharedAnswer(int fd) {
  struct stat st;
  check(fstat(fd, &st), "fstat");
  if (st.st_size < static_cast<off_t>(kBytes)) base::throwSysError("shared answer page", EINVAL);
  base_ = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base_ == MAP_FAILED) base::throwSysError("mmap");
}

SharedAnswer::~SharedAnswer() {
  munmap(base_, kBytes);
}

SharedAnswer::Header& SharedAnswer::header() const {
  return *static_cast<Header*>(base_);
}

std::atomic_ref<uint32_t> SharedAnswer::state() const {
  return std::atomic_ref<uint32_t>(header().state);
}

capnp::word* SharedAnswer::words() const {
  return reinterpret_cast<capnp::word*>(static_cast<char*>(base_) + kHeaderBytes);
}

void SharedAnswer::watch() {
  state().store(kWatching, std::memory_order_seq_cst);
}

bool SharedAnswer::ready() const {
  return state().load(std::memory_order_acquire) == kReady;
}

bool SharedAnswer::abandon() {
  uint32_t expected = kWatching;
  if (state().compare_exchange_strong(expected, kAbandoned, std::memory_order_acq_rel)) return true;
  // kReady: the answer is here. Anything else the sandbox wrote itself: it
  // answers through the channel or not at all.
  return expected != kReady;
}

kj::Own<capnp::MessageReader> SharedAnswer::take(const capnp::ReaderOptions& options) {
  size_t count = std::atomic_ref<uint32_t>(header().words).load(std::memory_order_relaxed);
  KJ_REQUIRE(count > 0 && count <= kCapacityWords, "the shared answer's length is out of bounds",
             count);
  // Copied before parsing: the sandbox may still write to the page.
  auto copy = kj::heapArray<capnp::word>(count);
  std::memcpy(copy.begin(), words(), count * sizeof(capnp::word));
  state().store(kIdle, std::memory_order_relaxed);
  auto reader = kj::heap<capnp::FlatArrayMessageReader>(copy.asPtr(), options);
  return reader.attach(kj::mv(copy));
}

bool SharedAnswer::tryAnswer(capnp::MessageBuilder& message) {
  if (state().load(std::memory_order_acquire) != kWatching) return false;
  size_t count = capnp::computeSerializedSizeInWords(message);
  if (count > kCapacityWords) return false;
  kj::ArrayOutputStream out(kj::arrayPtr(reinterpret_cast<kj::byte*>(words()), count * 8));
  capnp::writeMessage(out, message);
  std::atomic_ref<uint32_t>(header().words).store(count, std::memory_order_relaxed);
  uint32_t expected = kWatching;
  return state().compare_exchange_strong(expected, kReady, std::memory_order_acq_rel);
}

}  // namespace runtime
