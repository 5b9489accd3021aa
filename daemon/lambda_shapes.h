// The shapes of AWS Lambda's HTTP API (2015-03-31) in thatch's terms: the
// routes, the JSON documents a client sends and gets, the service errors
// and how an invocation's outcome reads to a Lambda client. Pure code, no
// I/O: daemon/lambda_api.h serves it. What maps to what: docs/lambda.md.
#pragma once

#include <capnp/compat/json.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "supervisor/config.h"
#include "supervisor/grants.h"
#include "supervisor/registry.h"
#include "supervisor/stats.h"

namespace thatchd::lambda {

// An answer: status, headers beyond Content-Type and x-amzn-RequestId, body.
struct Reply {
  unsigned status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// The reason phrase of an HTTP status ("Not Found").
const char* reasonPhrase(unsigned status);

// A service error as AWS shapes it: x-amzn-ErrorType, and a JSON body with
// its message. Thrown for bad requests; lambda_api.cc answers it.
class ApiError : public std::runtime_error {
 public:
  ApiError(unsigned status, std::string type, const std::string& message)
      : std::runtime_error(message), status_(status), type_(std::move(type)) {}
  unsigned status() const { return status_; }
  const std::string& type() const { return type_; }
  Reply reply() const;

 private:
  unsigned status_;
  std::string type_;
};

ApiError notFound(const std::string& what);     // ResourceNotFoundException, 404
ApiError badParameter(const std::string& why);  // InvalidParameterValueException, 400
ApiError badContent(const std::string& why);    // InvalidRequestContentException, 400

// What a request asks for, from its method and path.
enum class Action {
  kCreateFunction,
  kListFunctions,
  kGetFunction,
  kGetFunctionConfiguration,
  kDeleteFunction,
  kUpdateFunctionCode,
  kUpdateFunctionConfiguration,
  kPublishVersion,
  kListVersionsByFunction,
  kInvoke,
  // Function URLs (2021-10-31): docs/triggers.md#function-urls.
  kCreateFunctionUrlConfig,
  kGetFunctionUrlConfig,
  kUpdateFunctionUrlConfig,
  kDeleteFunctionUrlConfig,
  kListFunctionUrlConfigs,
};

// "lambda:InvokeFunction", ... as AWS names the action in AccessDenied.
const char* iamActionName(Action action);
// Which [[access_key]] allow word covers it: "invoke:*" (or
// "invoke:NAME"), "read" or "deploy" (supervisor/grants.h).
const char* permissionOf(Action action);
// Whether `grants` allow `action` on `function` ("" for none). Reading a
// function is allowed to whoever may see it; ListFunctions to anyone, since
// it lists only what the key may see.
bool permits(const supervisor::Grants& grants, Action action, const std::string& function);

struct Route {
  Action action;
  std::string function;   // the name (from a name, NAME:QUALIFIER or an ARN); "" when none
  std::string qualifier;  // from the path or ?Qualifier=; "" when none
  std::vector<std::pair<std::string, std::string>> query;  // decoded
  std::optional<std::string> queryValue(std::string_view name) const;
};

// The route of a request; throws ApiError (404 UnknownOperationException,
// or 400 for a bad name or a qualifier given twice).
Route route(std::string_view method, std::string_view target);

// "$LATEST" or "" is 0 (the latest version); "N" is N. Throws notFound()
// for anything else (an alias: thatch has none).
uint64_t versionOfQualifier(const std::string& qualifier, const std::string& arn);

// ARNs in the configured region and account.
struct Arns {
  std::string region, accountId;
  std::string function(const std::string& name, const std::string& qualifier = "") const;
  std::string layer(const thatch::LayerRef& layer) const;
};

// A Lambda FunctionConfiguration document of `version`, as "$LATEST" or as
// its number; limits the function leaves unset read `defaults`.
std::string functionConfiguration(const supervisor::FunctionVersion& version, bool asLatest,
                                  const Arns& arns, const supervisor::LimitsConfig& defaults);

// A CreateFunction or UpdateFunctionConfiguration body read into `config`
// (fields left out keep its values), and a CreateFunction's name and code.
struct FunctionRequest {
  std::string name;      // FunctionName (CreateFunction)
  std::string zipFile;   // Code.ZipFile, decoded (CreateFunction, UpdateFunctionCode)
  bool publish = false;  // Publish
  bool dryRun = false;   // DryRun (UpdateFunctionCode)
  thatch::FunctionConfig config;
};
FunctionRequest readCreateFunction(std::string_view body, const thatch::FunctionConfig& defaults);
FunctionRequest readUpdateConfiguration(std::string_view body, const thatch::FunctionConfig& now);
FunctionRequest readUpdateCode(std::string_view body);

// A CreateFunctionUrlConfig or UpdateFunctionUrlConfig body: AuthType
// (required to create), and thatch's extension PayloadFormatVersion
// ("2.0" or "1.0"); unset fields are "". Cors is refused (thatch does not
// answer preflights for a URL), InvokeMode may only be BUFFERED.
struct UrlConfigRequest {
  std::string authType;
  std::string payloadFormat;
};
UrlConfigRequest readUrlConfig(std::string_view body, bool create);

// A FunctionUrlConfig document; LastModifiedTime when `withModified`
// (Get, Update and List answer it, Create does not).
struct UrlConfig {
  std::string functionUrl, functionArn, authType, payloadFormat;
  int64_t createdUnixMs = 0, modifiedUnixMs = 0;
};
std::string functionUrlConfig(const UrlConfig& config, bool withModified);

// How an invocation's result reads to a Lambda client: 200 with the
// function's answer, or with X-Amz-Function-Error and Lambda's error
// document; 429, 400 or 5xx when it never ran. `executedVersion` goes in
// X-Amz-Executed-Version; `tail`: X-Amz-Log-Result with the last 4 KB of
// the logs.
Reply invokeReply(const supervisor::InvokeResult& result, const std::string& requestId,
                  const std::string& executedVersion, bool tail, std::chrono::milliseconds timeout,
                  const std::string& arn);

// `text` with %XX escapes decoded (and '+' as a space when `plusIsSpace`,
// as in a query); a malformed escape is kept as it is.
std::string percentDecode(std::string_view text, bool plusIsSpace);

// `body`, a JSON text, with every \uXXXX escape written as UTF-8 (but \"
// and \\): capnp 0.9's JSON decoder misreads them. Throws badContent() for
// a bad escape or a lone surrogate.
std::string withUnicodeEscapesDecoded(std::string_view body);

// The member `name` of a JSON object (capnp::JsonCodec::decodeRaw's), as
// it is (null included); none when there is none or `object` is not an
// object.
std::optional<capnp::JsonValue::Reader> member(capnp::JsonValue::Reader object,
                                               std::string_view name);

// The traceback Python prints, as Lambda's stackTrace: one entry per frame.
std::vector<std::string> stackTraceOf(std::string_view traceback);

}  // namespace thatchd::lambda
