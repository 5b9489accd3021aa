// Requests to function URLs on the Lambda API's listener
// (docs/triggers.md#function-urls): looked up in the trigger store, authenticated
// for AWS_IAM URLs, made into the event of daemon/function_url.h and
// invoked like a RequestResponse Invoke; the handler's answer goes back as
// the HTTP response.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // as lambda_api.cc

#include <strings.h>

#include <cstdlib>
#include <ctime>

#include "daemon/lambda_api.h"
#include "daemon/sigv4.h"
#include "supervisor/store_files.h"

namespace thatchd {

using function_url::HttpResponse;
using function_url::messageResponse;

struct LambdaApi::UrlRequest {
  std::string requestId;
  std::string triggerId, urlId, function, authType;
  function_url::PayloadFormat format = function_url::PayloadFormat::kV2;
  std::string target;  // as sent: an AWS_IAM URL's signature covers it
  function_url::HttpRequest http;
  bool head = false;
};

namespace {

HttpResponse tooLarge(uint64_t limit) {
  return messageResponse(413, "Request must be smaller than " + std::to_string(limit + 1) +
                                  " bytes for the InvokeFunction operation");
}

}  // namespace

kj::Promise<void> LambdaApi::serveUrl(function_url::Target target, kj::HttpMethod method,
                                      kj::StringPtr url, const kj::HttpHeaders& headers,
                                      kj::AsyncInputStream& body, Response& response,
                                      const std::string& peer) {
  auto request = kj::heap<UrlRequest>();
  request->requestId = newRequestId();
  request->head = method == kj::HttpMethod::HEAD;
  const Trigger* trigger =
      function_url::isUrlId(target.urlId) ? daemon_.triggers().byUrlId(target.urlId) : nullptr;
  // As Lambda: an unknown URL is not found; a disabled one is forbidden, as
  // a URL whose function may not be invoked through it.
  if (!trigger)
    return sendUrl(response, messageResponse(404, "Not Found"), request->head, request->requestId);
  if (!trigger->enabled)
    return sendUrl(response, messageResponse(403, "Forbidden"), request->head, request->requestId);
  request->triggerId = trigger->id;
  request->urlId = trigger->url.urlId;
  request->function = trigger->function;
  request->authType = trigger->url.authType;
  request->format = trigger->url.payloadFormat == "1.0" ? function_url::PayloadFormat::kV1
                                                        : function_url::PayloadFormat::kV2;
  request->target = url.cStr();
  function_url::HttpRequest& http = request->http;
  http.method = kj::str(method).cStr();
  http.path = std::move(target.path);
  KJ_IF_MAYBE (question, url.findFirst('?')) http.rawQueryString = url.slice(*question + 1).cStr();
  http.sourceIp = peer;
  headers.forEach([&](kj::StringPtr name, kj::StringPtr value) {
    http.headers.emplace_back(name.cStr(), value.cStr());
  });
  // Everything in `headers` and `url` is copied: they go on the first read.
  if (request->authType == "AWS_IAM") {
    // The signature covers the body, checked once it is read; an unsigned
    // request, or one of a key that is not ours, costs its headers only.
    bool known = false;
    for (const auto& [name, value] : http.headers) {
      if (strcasecmp(name.c_str(), "Authorization") != 0) continue;
      size_t credential = value.find("Credential=");
      size_t start = credential + 11, slash = value.find('/', start);
      known = credential != std::string::npos && slash != std::string::npos &&
              secretOf(std::string_view(value).substr(start, slash - start));
    }
    if (!known)
      return sendUrl(response, messageResponse(403, "Forbidden"), request->head,
                     request->requestId);
  }
  uint64_t limit = daemon_.config().limits.payloadBytes;
  KJ_IF_MAYBE (length, body.tryGetLength()) {
    if (*length > limit)
      return sendUrl(response, tooLarge(limit), request->head, request->requestId);
  }
  UrlRequest& r = *request;
  bool lengthKnown = body.tryGetLength() != nullptr;
  return body.readAllText(limit + 1)
      .then(
          [this, &r, limit](kj::String text) -> kj::Promise<HttpResponse> {
            if (text.size() > limit) return tooLarge(limit);
            r.http.body.assign(text.begin(), text.size());
            return invokeUrl(r);
          },
          // kj's reader stops a chunked body past the limit with an
          // exception; a body of a said length can only be cut short.
          [limit, lengthKnown](kj::Exception&&) -> kj::Promise<HttpResponse> {
            if (!lengthKnown) return tooLarge(limit);
            return messageResponse(400, "Bad Request");
          })
      .catch_([](kj::Exception&&) -> HttpResponse {
        return messageResponse(500, "Internal Server Error");
      })
      .then([this, &response, &r](HttpResponse answer) {
        return sendUrl(response, std::move(answer), r.head, r.requestId);
      })
      .attach(kj::mv(request));
}

kj::Promise<HttpResponse> LambdaApi::invokeUrl(UrlRequest& request) {
  function_url::EventContext context{request.urlId,     arns().region,           arns().accountId,
                                     request.requestId, supervisor::nowUnixMs(), ""};
  if (request.authType == "AWS_IAM") {
    context.accessKeyId = urlSigner(request);
    if (context.accessKeyId.empty()) return messageResponse(403, "Forbidden");
  }
  std::string event = function_url::event(request.http, context, request.format);
  uint64_t limit = daemon_.config().limits.payloadBytes;
  // The event is the invocation's payload: a binary body's base64 counts.
  if (event.size() > limit) return tooLarge(limit);
  if (TriggerStats* stats = daemon_.triggers().stats(request.triggerId)) {
    ++stats->deliveries;
    stats->lastRunUnixMs = context.timeUnixMs;
  }
  return daemon_.supervisor()
      .invoke(request.function, std::move(event), 0)
      .then([this, &request](supervisor::InvokeResult result) {
        HttpResponse answer = function_url::responseOf(result, request.format);
        if (result.status != supervisor::Status::kOk || answer.status == 502) {
          if (TriggerStats* stats = daemon_.triggers().stats(request.triggerId)) {
            ++stats->failures;
            stats->lastError = result.status == supervisor::Status::kOk
                                   ? "the handler's answer is not an HTTP response"
                                   : supervisor::statusName(result.status);
          }
        }
        return answer;
      });
}

std::string LambdaApi::urlSigner(const UrlRequest& request) const {
  sigv4::Request signedRequest{request.http.method, request.target, request.http.headers,
                               request.http.body};
  auto verdict = sigv4::verify(
      signedRequest, [this](std::string_view id) { return secretOf(id); }, "lambda",
      int64_t(time(nullptr)));
  const auto* verified = std::get_if<sigv4::Verified>(&verdict);
  if (!verified || !verified->bodySigned) return "";
  for (const supervisor::AccessKey& key : daemon_.config().accessKeys)
    if (key.id == verified->accessKeyId &&
        supervisor::grantsOf(key.allow).mayInvoke(request.function))
      return key.id;
  return "";
}

kj::Promise<void> LambdaApi::sendUrl(Response& response, HttpResponse answer, bool head,
                                     const std::string& requestId) {
  auto owned = kj::heap<HttpResponse>(std::move(answer));
  kj::HttpHeaders headers(*headerTable_);
  uint64_t length = owned->body.size();
  try {
    for (const auto& [name, value] : owned->headers) {
      const char* text = name.c_str();
      // The length is the body's and the connection kj-http's.
      if (strcasecmp(text, "Content-Length") == 0) {
        // A HEAD's handler answers the GET's length and no body.
        if (head && owned->body.empty()) length = strtoull(value.c_str(), nullptr, 10);
        continue;
      }
      if (strcasecmp(text, "Transfer-Encoding") == 0 || strcasecmp(text, "Connection") == 0 ||
          strcasecmp(text, "Keep-Alive") == 0 || strcasecmp(text, "Upgrade") == 0)
        continue;
      headers.add(kj::StringPtr(name.c_str(), name.size()),
                  kj::StringPtr(value.c_str(), value.size()));
    }
  } catch (const kj::Exception&) {
    // A header kj-http refuses: the handler's answer cannot be sent.
    return sendUrl(response, messageResponse(502, "Internal Server Error"), head, requestId);
  }
  headers.add("x-amzn-RequestId", requestId.c_str());
  if (owned->status == 204 || owned->status == 304) {
    response.send(owned->status, lambda::reasonPhrase(owned->status), headers, uint64_t(0));
    return kj::READY_NOW;
  }
  auto stream = response.send(owned->status, lambda::reasonPhrase(owned->status), headers, length);
  if (head || owned->body.empty()) return kj::READY_NOW;
  auto written = stream->write(owned->body.data(), owned->body.size());
  return written.attach(kj::mv(stream), kj::mv(owned));
}

}  // namespace thatchd
