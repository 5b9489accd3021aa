// SandboxChannel (runtime/sandbox_channel.h) for code that has no event
// loop of its own — tests and benchmarks driving a zygote directly — so
// that they exercise the channel thatchd runs. Each call runs a private kj
// loop until its answer, the channel's end, or its timeout.
#pragma once

#include <kj/async-unix.h>

#include <chrono>
#include <memory>
#include <string>

#include "runtime/sandbox_channel.h"

namespace runtime {

class BlockingChannel {
 public:
  // A new channel, as SandboxChannel::open(); the sandbox's ends go to
  // `ends`, for Zygote::spawn(). A page that cannot be made throws.
  explicit BlockingChannel(SandboxChannel::SandboxEnds& ends, bool withPage = false,
                           uint64_t maxAnswerBytes = 8 << 20);
  ~BlockingChannel();
  BlockingChannel(const BlockingChannel&) = delete;
  BlockingChannel& operator=(const BlockingChannel&) = delete;

  // Waits for the sandbox's first message. Throws LoadError or ChannelClosed.
  ReadyInfo waitReady(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // One invocation. Throws ChannelClosed if the sandbox dies or misbehaves,
  // or no answer comes within `timeout`.
  InvocationOutcome invoke(const std::string& requestId, const std::string& payload,
                           uint64_t deadlineNs = 0,
                           std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // One invocation that asks for its answer in the shared page, as thatchd
  // does while it polls: the caller has watch()ed the page (or not); this
  // polls it for `pollFor`, then abandons it and reads the answer from
  // wherever it went. `answeredInPage` says which.
  InvocationOutcome invokeInPage(const std::string& requestId, const std::string& payload,
                                 std::chrono::microseconds pollFor, bool* answeredInPage);

  SharedAnswer* page() const { return channel_->page(); }
  int fd() const { return channel_->fd(); }

 private:
  // Runs this channel's loop until the promise that `make` returns (made
  // inside the loop's scope) resolves, or `timeout` passes: ChannelClosed
  // "no WHAT from the sandbox in time". A rejection is ChannelClosed too.
  template <typename T, typename Make>
  T run(Make&& make, std::chrono::milliseconds timeout, const char* what);

  kj::UnixEventPort eventPort_;
  kj::EventLoop loop_;
  kj::Own<SandboxChannel> channel_;
};

}  // namespace runtime
