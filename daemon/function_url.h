// Function URLs (docs/triggers.md#function-urls): an HTTP request to a function's
// URL becomes the event Lambda function URLs and API Gateway send (payload
// format 2.0, or 1.0 for REST-API-style apps), and the handler's answer
// becomes the HTTP response as Lambda maps it. Pure code, no I/O:
// daemon/lambda_api.cc routes the requests and serves the answers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "supervisor/stats.h"

namespace thatchd::function_url {

enum class PayloadFormat { kV2, kV1 };
// "2.0" or "1.0"; throws std::invalid_argument for anything else.
PayloadFormat payloadFormatOf(std::string_view text);

// A request as received on the HTTP listener.
struct HttpRequest {
  std::string method;          // "GET"
  std::string path;            // as sent, percent-encoding kept; at least "/"
  std::string rawQueryString;  // after '?', as sent; "" when none
  std::vector<std::pair<std::string, std::string>> headers;  // as received, in order
  std::string body;
  std::string sourceIp;
  std::string protocol = "HTTP/1.1";
};

// What the event says of where the request went and who sent it.
struct EventContext {
  std::string urlId;
  std::string region;
  std::string accountId;
  std::string requestId;
  int64_t timeUnixMs = 0;
  std::string accessKeyId;  // the signer's, for AWS_IAM; "" for NONE
};

// The event `request` becomes: one JSON document.
std::string event(const HttpRequest& request, const EventContext& context, PayloadFormat format);

// Whether a body of `contentType` reaches the function as text (else base64),
// as Lambda decides: text/*, JSON, XML, JavaScript, form-urlencoded.
bool isTextContentType(std::string_view contentType);

// An answer to send.
struct HttpResponse {
  unsigned status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // in order, names may repeat
  std::string body;
};

// The response a handler's result (its JSON text) becomes. A malformed one
// is a 502: a statusCode not an integer from 200 to 599 (no 1xx: the
// connection could not follow it), headers that are not strings or could
// not be sent as they are, a body that is not valid base64 when
// isBase64Encoded; so is, in format 1.0, a result that is not an object
// with a statusCode.
HttpResponse responseOf(std::string_view result, PayloadFormat format);

// The answer to an invocation that did not succeed, or to the whole
// `result` when it did (responseOf). Nothing of the handler's error, its
// traceback or thatchd's internals reaches the client.
HttpResponse responseOf(const supervisor::InvokeResult& result, PayloadFormat format);

// The answers that are not the function's: {"Message": message}.
HttpResponse messageResponse(unsigned status, std::string_view message);

// A URL id: 32 lowercase letters and digits, as Lambda's.
bool isUrlId(std::string_view text);

// Where a request is addressed: the URL id from a Host of the form
// `<urlId>.lambda-url.<region>.<anything>[:port]`, or from a path
// `/lambda-url/<urlId>[/...]`, with the path the function sees ("/" at
// least). `found` is false when neither names a function URL.
struct Target {
  bool found = false;
  std::string urlId;
  std::string path;  // as sent, with its prefix taken off
};
Target targetOf(std::string_view host, std::string_view path);

}  // namespace thatchd::function_url
