// GCC 12 warns, wrongly, that kj's ExceptionOr<Maybe<T>> may destroy an
// uninitialised T (kj::Maybe's storage while it holds an exception).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "runtime/blocking_channel.h"

#include <stdexcept>

namespace runtime {

using Ending = Answer::Ending;

BlockingChannel::BlockingChannel(SandboxChannel::SandboxEnds& ends, bool withPage,
                                 uint64_t maxAnswerBytes)
    : loop_(eventPort_) {
  // A loop of this thread while the scope lasts: the channel's promises
  // belong to it.
  kj::WaitScope scope(loop_);
  std::string pageError;
  channel_ = SandboxChannel::open(eventPort_, maxAnswerBytes, withPage, ends, pageError);
  if (!pageError.empty()) throw std::runtime_error("shared answer page: " + pageError);
}

BlockingChannel::~BlockingChannel() {
  kj::WaitScope scope(loop_);
  channel_ = nullptr;
}

template <typename T, typename Make>
T BlockingChannel::run(Make&& make, std::chrono::milliseconds timeout, const char* what) {
  kj::WaitScope scope(loop_);
  kj::Promise<kj::Maybe<T>> done =
      make().then([](T value) -> kj::Maybe<T> { return kj::mv(value); });
  kj::Promise<kj::Maybe<T>> late = eventPort_.getTimer()
                                       .afterDelay(timeout.count() * kj::MILLISECONDS)
                                       .then([]() -> kj::Maybe<T> { return nullptr; });
  kj::Maybe<T> result;
  try {
    result = done.exclusiveJoin(kj::mv(late)).wait(scope);
  } catch (const kj::Exception& e) {
    throw ChannelClosed(e.getDescription().cStr());
  }
  KJ_IF_MAYBE (value, result) return kj::mv(*value);
  throw ChannelClosed(std::string("no ") + what + " from the sandbox in time");
}

namespace {

InvocationOutcome outcomeOf(Answer answer) {
  switch (answer.ending) {
    case Ending::kAnswered:
      return std::move(answer.outcome);
    case Ending::kClosed:
    case Ending::kGarbled:
      throw ChannelClosed(answer.error);
    case Ending::kTooLarge:
      throw ChannelClosed("the answer is over the channel's limit: " + answer.error);
  }
  throw ChannelClosed(answer.error);
}

}  // namespace

ReadyInfo BlockingChannel::waitReady(std::chrono::milliseconds timeout) {
  SandboxChannel::Readiness readiness =
      run<SandboxChannel::Readiness>([this] { return channel_->ready(); }, timeout, "answer");
  if (LoadError* error = std::get_if<LoadError>(&readiness)) throw *error;
  return std::get<ReadyInfo>(std::move(readiness));
}

InvocationOutcome BlockingChannel::invoke(const std::string& requestId, const std::string& payload,
                                          uint64_t deadlineNs, std::chrono::milliseconds timeout) {
  InvocationRequest request;
  request.requestId = requestId;
  request.payload = payload;
  request.deadlineNs = deadlineNs;
  return outcomeOf(run<Answer>(
      [&] { return channel_->send(request).then([this]() { return channel_->nextAnswer(); }); },
      timeout, "answer"));
}

InvocationOutcome BlockingChannel::invokeInPage(const std::string& requestId,
                                                const std::string& payload,
                                                std::chrono::microseconds pollFor,
                                                bool* answeredInPage) {
  SharedAnswer& page = *channel_->page();
  InvocationRequest request;
  request.requestId = requestId;
  request.payload = payload;
  request.answerInPage = true;
  run<bool>([&] { return channel_->send(request).then([]() { return true; }); },
            std::chrono::seconds(60), "room");
  auto until = std::chrono::steady_clock::now() + pollFor;
  bool ready = page.ready();
  while (!ready && std::chrono::steady_clock::now() < until) ready = page.ready();
  *answeredInPage = ready || !page.abandon();
  Answer answer =
      run<Answer>([&] { return channel_->nextAnswer(kj::Promise<bool>(*answeredInPage)); },
                  std::chrono::seconds(60), "answer");
  return outcomeOf(std::move(answer));
}

}  // namespace runtime
