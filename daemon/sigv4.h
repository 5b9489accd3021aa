// AWS Signature Version 4 verification, the way AWS services other than S3
// check it: what thatchd's Lambda-compatible HTTP API authenticates requests
// with. Pure: no I/O and no clock; the caller passes the time and the lookup of
// secrets, and answers a Refusal with HTTP 403.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace thatchd::sigv4 {

// A request as received.
struct Request {
  std::string method;  // "POST"
  std::string target;  // raw request-target: path and ?query, percent-encoding as sent
  std::vector<std::pair<std::string, std::string>> headers;  // any case, in order, names may repeat
  std::string_view body;
};

// Who signed the request, and for what scope.
struct Verified {
  std::string accessKeyId;
  std::string region;  // from the credential scope: not checked here
  std::string service;
  // False when the client sent X-Amz-Content-SHA256: UNSIGNED-PAYLOAD: the
  // signature then covers everything but the body.
  bool bodySigned = true;
};

// Why a request is not authenticated, as AWS words it.
struct Refusal {
  std::string errorType;  // "InvalidSignatureException", ...
  std::string message;
};

// The secret of an access key id, or nullptr for an unknown key. The string
// must outlive the call to verify().
using SecretLookup = std::function<const std::string*(std::string_view accessKeyId)>;

// How far the request's time may be from now, either way.
inline constexpr int64_t kMaxClockSkewSeconds = 5 * 60;

// Checks the Authorization header of `request` (AWS4-HMAC-SHA256) against
// the secret of its access key, for `expectedService`, at `nowUnixSeconds`.
// Never throws on bad input; the work is linear in the request's size (plus
// sorting its headers and query parameters).
std::variant<Verified, Refusal> verify(const Request& request, const SecretLookup& secretOf,
                                       std::string_view expectedService, int64_t nowUnixSeconds);

// The canonical forms that verify() signs, for their tests.
// `path` without empty and dot segments, then percent-encoded once more:
// "/a/../arn%3Ab" -> "/arn%253Ab".
std::string canonicalUri(std::string_view path);
// Parameters decoded, re-encoded and sorted: "b=%7e&a" -> "a=&b=~".
std::string canonicalQuery(std::string_view query);

}  // namespace thatchd::sigv4
