#include "runtime/sandbox_channel.h"

#include <capnp/serialize-async.h>
#include <kj/vector.h>
#include <sys/socket.h>

#include "base/kj_errors.h"
#include "base/sys_error.h"

namespace runtime {

using Ending = Answer::Ending;

namespace {

// Room for the answer's own framing besides its payload and logs.
constexpr uint64_t kFramingWords = 64 << 10;

Answer parsed(capnp::MessageReader& reader, bool fromPage) {
  Answer answer;
  answer.fromPage = fromPage;
  try {
    answer.outcome = parseResult(reader);
    answer.ending = Ending::kAnswered;
  } catch (const ChannelClosed& e) {
    answer.ending = Ending::kGarbled;
    answer.error = e.what();
  }
  return answer;
}

Answer ended(Ending ending, std::string error) {
  Answer answer;
  answer.ending = ending;
  answer.error = std::move(error);
  return answer;
}

}  // namespace

kj::Own<SandboxChannel> SandboxChannel::open(kj::UnixEventPort& eventPort, uint64_t maxAnswerBytes,
                                             bool withPage, SandboxEnds& ends,
                                             std::string& pageError) {
  int pair[2];
  base::check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), "socketpair");
  base::Fd ours(pair[0]);
  ends.channel = base::Fd(pair[1]);
  std::unique_ptr<SharedAnswer> page;
  if (withPage) {
    try {
      ends.page = SharedAnswer::create();
      page = std::make_unique<SharedAnswer>(ends.page.get());
    } catch (const std::exception& e) {
      pageError = e.what();
      ends.page.reset();
    }
  }
  return kj::heap<SandboxChannel>(eventPort, std::move(ours), std::move(page), maxAnswerBytes);
}

SandboxChannel::SandboxChannel(kj::UnixEventPort& eventPort, base::Fd fd,
                               std::unique_ptr<SharedAnswer> page, uint64_t maxAnswerBytes)
    : stream_(kj::heap<base::SocketStream>(eventPort, std::move(fd))), page_(std::move(page)) {
  answerLimits_.traversalLimitInWords = maxAnswerBytes / sizeof(capnp::word) + kFramingWords;
}

kj::Promise<SandboxChannel::Readiness> SandboxChannel::ready() {
  return capnp::tryReadMessage(*stream_).then(
      [](kj::Maybe<kj::Own<capnp::MessageReader>> message) -> Readiness {
        KJ_IF_MAYBE (reader, message) {
          try {
            return parseReady(**reader);
          } catch (const LoadError& e) {
            return e;
          } catch (const ChannelClosed& e) {
            kj::throwFatalException(base::failure(kj::Exception::Type::FAILED, e.what()));
          }
        }
        kj::throwFatalException(base::failure(
            kj::Exception::Type::FAILED, "the sandbox closed its channel before it was ready"));
      });
}

kj::Promise<void> SandboxChannel::send(const InvocationRequest& request) {
  // Small: the payload is referenced, not copied (capnp's default first
  // segment is 8 KiB, allocated and zeroed per message).
  auto message = kj::heap<capnp::MallocMessageBuilder>(64);
  buildInvocation(*message, request);
  auto messages = kj::heapArrayBuilder<kj::Own<capnp::MallocMessageBuilder>>(1);
  messages.add(kj::mv(message));
  return write(messages.finish());
}

kj::Promise<void> SandboxChannel::sendAll(const std::vector<InvocationRequest>& requests) {
  auto messages = kj::heapArrayBuilder<kj::Own<capnp::MallocMessageBuilder>>(requests.size());
  auto payloads = kj::heapArrayBuilder<kj::Own<std::string>>(requests.size());
  for (const InvocationRequest& request : requests) {
    payloads.add(kj::heap<std::string>(request.payload));
    InvocationRequest copy = request;
    copy.payload = *payloads[payloads.size() - 1];
    auto message = kj::heap<capnp::MallocMessageBuilder>(64);
    buildInvocation(*message, copy);
    messages.add(kj::mv(message));
  }
  return write(messages.finish()).attach(payloads.finish());
}

namespace {

// Counts a write in `writes` until it ends, however it ends: done (when the
// caller's continuations must already see it over), failed, or cancelled.
class WriteUnderWay {
 public:
  explicit WriteUnderWay(unsigned& writes) : writes_(writes) { ++writes_; }
  ~WriteUnderWay() { over(); }
  void over() {
    if (!over_) --writes_;
    over_ = true;
  }

 private:
  unsigned& writes_;
  bool over_ = false;
};

}  // namespace

kj::Promise<void> SandboxChannel::write(kj::Array<kj::Own<capnp::MallocMessageBuilder>> messages) {
  auto builders = kj::heapArray<capnp::MessageBuilder*>(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) builders[i] = messages[i].get();
  auto underWay = kj::heap<WriteUnderWay>(writes_);
  WriteUnderWay& write = *underWay;  // attached below: lives as long as the continuations
  return capnp::writeMessages(*stream_, builders.asPtr())
      .then([&write]() { write.over(); },
            [this, &write](kj::Exception&& e) {
              broken_ = true;
              write.over();
              kj::throwFatalException(kj::mv(e));
            })
      .attach(kj::mv(messages), kj::mv(builders), kj::mv(underWay));
}

Answer SandboxChannel::takeFromPage() {
  try {
    return parsed(*page_->take(answerLimits_), /*fromPage=*/true);
  } catch (const kj::Exception& e) {
    Answer garbled = ended(Ending::kGarbled,
                           std::string("the sandbox's answer in its shared page is not valid: ") +
                               e.getDescription().cStr());
    garbled.fromPage = true;
    return garbled;
  }
}

kj::Promise<Answer> SandboxChannel::nextAnswer(kj::Maybe<kj::Promise<bool>> inPage) {
  bool watching = inPage != nullptr;
  kj::Promise<Answer> fromChannel =
      capnp::tryReadMessage(*stream_, answerLimits_)
          .then(
              [this, watching](kj::Maybe<kj::Own<capnp::MessageReader>> reader) {
                if (watching && page_ && page_->ready()) return takeFromPage();
                KJ_IF_MAYBE (r, reader) return parsed(**r, /*fromPage=*/false);
                return ended(Ending::kClosed, "the sandbox closed its channel");
              },
              [](kj::Exception&& e) {
                std::string why = e.getDescription().cStr();
                // capnp refuses a message over the limit at its segment table,
                // before reading the rest.
                if (why.find("too large") != std::string::npos)
                  return ended(Ending::kTooLarge, why);
                return ended(Ending::kClosed, why);
              });
  KJ_IF_MAYBE (page, inPage) {
    return fromChannel.exclusiveJoin(page->then([this](bool there) -> kj::Promise<Answer> {
      if (!there) return kj::NEVER_DONE;  // the channel brings it
      return takeFromPage();
    }));
  }
  return fromChannel;
}

int SandboxChannel::fd() const {
  KJ_IF_MAYBE (fd, stream_->getFd()) return *fd;
  return -1;
}

bool SandboxChannel::answerWaiting() const {
  return stream_->hasInput() || (page_ && page_->ready());
}

}  // namespace runtime
