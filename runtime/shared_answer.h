// The shared answer page: memory shared by thatchd and one sandbox, through
// which a sandbox answers while thatchd's event loop busy-polls for that
// answer (docs/api.md#performance). It saves what an answer over the channel
// costs: the sandbox's sendmsg, the wake-up of thatchd's epoll (the
// costliest part on a virtualised host), the read and kj's read path.
//
// One word decides where an answer goes, so that none is lost or read twice:
//
//   thatchd, before it sends a request that asks for the page: kWatching;
//   the sandbox writes its answer below the header, then swaps kWatching for
//     kReady; if the word is not kWatching (thatchd stopped watching), it
//     writes the answer to the channel instead;
//   thatchd, polling, sees kReady and copies the answer out;
//   thatchd, before its loop sleeps, swaps kWatching for kAbandoned; if the
//     word was kReady, the answer is in the page after all.
//
// thatchd creates the page (a sealed memfd: the sandbox can neither shrink
// it, which would fault thatchd's reads, nor grow it) and trusts nothing in
// it: the length is bounded by the page and the answer is copied out before
// it is parsed. A sandbox that scribbles on the page spoils only its own
// answer, as garbage written to its channel would.
#pragma once

#include <capnp/message.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "base/fd.h"

namespace runtime {

class SharedAnswer {
 public:
  // The whole page; an answer may use all but its header.
  static constexpr size_t kBytes = 64 << 10;

  // thatchd: a new sealed memfd of kBytes, to map here and pass to the
  // sandbox.
  static base::Fd create();
  // Maps a page created by create(). Throws base::SysError.
  explicit SharedAnswer(int fd);
  ~SharedAnswer();
  SharedAnswer(const SharedAnswer&) = delete;
  SharedAnswer& operator=(const SharedAnswer&) = delete;

  // --- thatchd's side ---
  // The next answer may come here (call before sending its request).
  void watch();
  // An answer is here.
  bool ready() const;
  // Stops watching. False if the answer came first (it is here to take).
  bool abandon();
  // A copy of the answer, parsed within `options`; the page is left idle.
  // Throws kj::Exception if it is not a valid message.
  kj::Own<capnp::MessageReader> take(const capnp::ReaderOptions& options);

  // --- the sandbox's side ---
  // Writes `message` here if thatchd is watching and it fits. False: it
  // goes to the channel.
  bool tryAnswer(capnp::MessageBuilder& message);

 private:
  enum State : uint32_t { kIdle = 0, kWatching = 1, kReady = 2, kAbandoned = 3 };
  struct Header;
  static constexpr size_t kHeaderBytes = 64;
  static constexpr size_t kCapacityWords = (kBytes - kHeaderBytes) / sizeof(capnp::word);
  std::atomic_ref<uint32_t> state() const;
  Header& header() const;
  capnp::word* words() const;

  void* base_;
};

}  // namespace runtime
