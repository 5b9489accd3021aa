// The supervisor's side of one sandbox's invocation channel, on a kj event
// loop: the one implementation of that channel above the sandbox (thatchd,
// and through BlockingChannel the tests and benchmarks). It owns the
// socket, the framing, the requests' encoding, the answers' parsing and
// limits, and the sandbox's shared answer page (runtime/shared_answer.h).
//
// The conversation (runtime/runtime.capnp): the sandbox speaks first, once,
// `ready` or `loadFailed`; then each request gets one answer, in order.
// Several requests may be in the channel at once (sending ahead,
// docs/thatching.md); answers still come one per request.
#pragma once

#include <capnp/message.h>
#include <kj/async-unix.h>

#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "base/fd.h"
#include "base/socket_stream.h"
#include "runtime/channel_messages.h"
#include "runtime/shared_answer.h"

namespace runtime {

// How reading one answer ended.
struct Answer {
  enum class Ending {
    kAnswered,  // `outcome` holds it
    kClosed,    // end of stream or a broken socket, before a whole answer
    kTooLarge,  // over the channel's limit: the rest of it is still in the channel
    kGarbled,   // not an answer this runtime writes (in the channel or the page)
  };
  Ending ending = Ending::kClosed;
  InvocationOutcome outcome;
  std::string error;      // why, unless kAnswered
  bool fromPage = false;  // it came through the shared answer page
};

class SandboxChannel {
 public:
  // What a new sandbox gets: its end of the socket pair, and the shared
  // answer page when there is one. The spawn request carries both
  // (Zygote::requestSpawn), after which these copies are closed.
  struct SandboxEnds {
    base::Fd channel;
    base::Fd page;  // none: the sandbox answers through the channel only
  };

  // A socket pair and, with `withPage`, a shared answer page; the
  // supervisor's end is returned, the sandbox's go to `ends`. A page that
  // cannot be made leaves the channel without one (only the shortcut is
  // lost) and says why in `pageError`. Answers over `maxAnswerBytes` are
  // kTooLarge.
  static kj::Own<SandboxChannel> open(kj::UnixEventPort& eventPort, uint64_t maxAnswerBytes,
                                      bool withPage, SandboxEnds& ends, std::string& pageError);

  SandboxChannel(kj::UnixEventPort& eventPort, base::Fd fd, std::unique_ptr<SharedAnswer> page,
                 uint64_t maxAnswerBytes);
  SandboxChannel(const SandboxChannel&) = delete;
  SandboxChannel& operator=(const SandboxChannel&) = delete;

  // The sandbox's first message: ready, or the handler's load error.
  // Rejects (kj FAILED, a description for the user) on garbage or the end
  // of stream.
  using Readiness = std::variant<ReadyInfo, LoadError>;
  kj::Promise<Readiness> ready();

  // Writes one request; its payload must outlive the promise.
  kj::Promise<void> send(const InvocationRequest& request);
  // Writes several in one write, with copies of their payloads (the write
  // may outlive the invocations it carries).
  kj::Promise<void> sendAll(const std::vector<InvocationRequest>& requests);
  // Nothing may go into the channel yet: a write is under way, or one
  // failed (what it left in the channel is not a whole message).
  bool writing() const { return writes_ > 0 || broken_; }

  // The next answer, from the channel, or from the page if `inPage`
  // resolves true first (false: it comes through the channel after all).
  // While the page is watched, an answer in the channel with the page
  // marked ready too (only code in the sandbox does both) is the page's:
  // what the page says wins, whichever thatchd would have seen first.
  kj::Promise<Answer> nextAnswer(kj::Maybe<kj::Promise<bool>> inPage = nullptr);
  // An answer (or the end of stream) waits to be read, in the channel or
  // the page.
  bool answerWaiting() const;
  // Bytes of answers read so far: more than at a request's start means some
  // of its answer has come.
  uint64_t bytesRead() const { return stream_->bytesRead(); }

  SharedAnswer* page() const { return page_.get(); }
  // The supervisor's end, for tests that play a broken peer.
  int fd() const;

 private:
  kj::Promise<void> write(kj::Array<kj::Own<capnp::MallocMessageBuilder>> messages);
  // The answer in the page (which says it is ready), or why it is not one.
  Answer takeFromPage();

  kj::Own<base::SocketStream> stream_;
  std::unique_ptr<SharedAnswer> page_;
  capnp::ReaderOptions answerLimits_;
  unsigned writes_ = 0;
  bool broken_ = false;
};

}  // namespace runtime
