// Function URLs' shapes (daemon/function_url.h): the event a request
// becomes in each payload format, the response a handler's result becomes,
// and where a request is addressed.
#include "daemon/function_url.h"

#include <capnp/compat/json.h>
#include <capnp/message.h>
#include <gtest/gtest.h>
#include <kj/encoding.h>

#include <string>
#include <vector>

#include "daemon/lambda_shapes.h"

namespace thatchd::function_url {
namespace {

using supervisor::InvokeResult;
using supervisor::Status;

constexpr char kUrlId[] = "abcdefghij0123456789abcdefghij01";

// A JSON document, read, to look into.
class Json {
 public:
  explicit Json(const std::string& text) {
    capnp::JsonCodec codec;
    codec.decodeRaw(kj::ArrayPtr<const char>(text.data(), text.size()),
                    message_.initRoot<capnp::JsonValue>());
  }
  capnp::JsonValue::Reader root() { return message_.getRoot<capnp::JsonValue>().asReader(); }

 private:
  capnp::MallocMessageBuilder message_;
};

// The member at `path` ("a.b.c"); fails the test if there is none.
capnp::JsonValue::Reader at(capnp::JsonValue::Reader value, const std::string& path) {
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string name = path.substr(start, dot == std::string::npos ? dot : dot - start);
    bool found = false;
    if (value.isObject())
      for (auto field : value.getObject())
        if (field.getName() == name.c_str()) {
          value = field.getValue();
          found = true;
          break;
        }
    if (!found) ADD_FAILURE() << "no member " << path;
    if (!found || dot == std::string::npos) break;
    start = dot + 1;
  }
  return value;
}

bool has(capnp::JsonValue::Reader value, const std::string& name) {
  for (auto field : value.getObject())
    if (field.getName() == name.c_str()) return true;
  return false;
}

std::string text(capnp::JsonValue::Reader value, const std::string& path) {
  capnp::JsonValue::Reader member = at(value, path);
  if (!member.isString()) return "(not a string)";
  return member.getString().cStr();
}

std::vector<std::string> strings(capnp::JsonValue::Reader value, const std::string& path) {
  std::vector<std::string> out;
  capnp::JsonValue::Reader member = at(value, path);
  if (member.isArray())
    for (auto item : member.getArray())
      out.push_back(item.isString() ? item.getString().cStr() : "?");
  return out;
}

std::string base64(const std::string& bytes) {
  return kj::encodeBase64(kj::ArrayPtr<const kj::byte>(
                              reinterpret_cast<const kj::byte*>(bytes.data()), bytes.size()))
      .cStr();
}

HttpRequest sample() {
  HttpRequest request;
  request.method = "POST";
  request.path = "/shop/items%2F7";
  request.rawQueryString = "tag=a&tag=b%20c&q=x+y&empty&Q=upper";
  request.headers = {{"Host", std::string(kUrlId) + ".lambda-url.eu-west-1.localhost:9001"},
                     {"User-Agent", "curl/8"},
                     {"X-Twice", "one"},
                     {"Cookie", "a=1; b=2"},
                     {"x-twice", "two"},
                     {"Cookie", "c=3"},
                     {"Content-Type", "application/json; charset=utf-8"},
                     {"Transfer-Encoding", "chunked"},
                     {"Connection", "keep-alive"}};
  request.body = R"({"item": 7})";
  request.sourceIp = "127.0.0.1";
  return request;
}

EventContext context() {
  return {kUrlId, "eu-west-1", "000000000000", "req-1", 1796535725123, ""};
}

TEST(FunctionUrlEvent, Format2HasLambdasFields) {
  Json event(function_url::event(sample(), context(), PayloadFormat::kV2));
  auto root = event.root();
  EXPECT_EQ(text(root, "version"), "2.0");
  EXPECT_EQ(text(root, "routeKey"), "$default");
  EXPECT_EQ(text(root, "rawPath"), "/shop/items%2F7");
  EXPECT_EQ(text(root, "rawQueryString"), "tag=a&tag=b%20c&q=x+y&empty&Q=upper");
  EXPECT_EQ(strings(root, "cookies"), (std::vector<std::string>{"a=1", "b=2", "c=3"}));
  EXPECT_EQ(text(root, "headers.x-twice"), "one,two");
  EXPECT_EQ(text(root, "headers.user-agent"), "curl/8");
  EXPECT_EQ(text(root, "headers.content-type"), "application/json; charset=utf-8");
  EXPECT_FALSE(has(at(root, "headers"), "cookie"));  // they are in `cookies`
  for (const char* name : {"transfer-encoding", "connection"})
    EXPECT_FALSE(has(at(root, "headers"), name)) << name;  // the connection's, not the request's
  EXPECT_EQ(text(root, "queryStringParameters.tag"), "a,b c");
  EXPECT_EQ(text(root, "queryStringParameters.q"), "x y");
  EXPECT_EQ(text(root, "queryStringParameters.Q"), "upper");  // names are case-sensitive
  EXPECT_EQ(text(root, "queryStringParameters.empty"), "");
  EXPECT_EQ(text(root, "requestContext.apiId"), kUrlId);
  EXPECT_EQ(text(root, "requestContext.domainPrefix"), kUrlId);
  EXPECT_EQ(text(root, "requestContext.domainName"),
            std::string(kUrlId) + ".lambda-url.eu-west-1.localhost");
  EXPECT_EQ(text(root, "requestContext.accountId"), "anonymous");
  EXPECT_EQ(text(root, "requestContext.http.method"), "POST");
  EXPECT_EQ(text(root, "requestContext.http.path"), "/shop/items%2F7");
  EXPECT_EQ(text(root, "requestContext.http.protocol"), "HTTP/1.1");
  EXPECT_EQ(text(root, "requestContext.http.sourceIp"), "127.0.0.1");
  EXPECT_EQ(text(root, "requestContext.http.userAgent"), "curl/8");
  EXPECT_EQ(text(root, "requestContext.requestId"), "req-1");
  EXPECT_EQ(text(root, "requestContext.stage"), "$default");
  EXPECT_EQ(text(root, "requestContext.time"), "06/Dec/2026:05:42:05 +0000");
  EXPECT_EQ(at(root, "requestContext.timeEpoch").getNumber(), 1796535725123.0);
  EXPECT_EQ(text(root, "body"), R"({"item": 7})");
  EXPECT_FALSE(at(root, "isBase64Encoded").getBoolean());
}

TEST(FunctionUrlEvent, Format2LeavesOutWhatTheRequestHasNot) {
  HttpRequest request;
  request.method = "GET";
  request.path = "/";
  Json event(function_url::event(request, context(), PayloadFormat::kV2));
  auto root = event.root();
  EXPECT_FALSE(has(root, "cookies"));
  EXPECT_FALSE(has(root, "queryStringParameters"));
  EXPECT_FALSE(has(root, "body"));
  EXPECT_EQ(text(root, "rawQueryString"), "");
  EXPECT_FALSE(at(root, "isBase64Encoded").getBoolean());
}

TEST(FunctionUrlEvent, SignedRequestsCarryTheSigner) {
  EventContext signedBy = context();
  signedBy.accessKeyId = "AKIDEXAMPLE";
  Json event(function_url::event(sample(), signedBy, PayloadFormat::kV2));
  EXPECT_EQ(text(event.root(), "requestContext.accountId"), "000000000000");
  EXPECT_EQ(text(event.root(), "requestContext.authorizer.iam.accessKey"), "AKIDEXAMPLE");
}

TEST(FunctionUrlEvent, BinaryBodiesAreBase64) {
  struct Case {
    const char* contentType;
    std::string body;
    bool base64;
  };
  const std::string bytes("\x89PNG\r\n\x1a\n\0\xff", 10);
  const Case cases[] = {
      {"image/png", bytes, true},         {"application/octet-stream", "plain ascii", true},
      {"", "no content type", true},      {"text/plain", "héllo", false},
      {"text/plain", bytes, true},  // not UTF-8: a JSON string cannot hold it
      {"Application/JSON", "{}", false},  {"application/x-www-form-urlencoded", "a=1&b=2", false},
      {"application/xml", "<a/>", false}, {"application/vnd.api+json", "{}", false},
      {"image/svg+xml", "<svg/>", false}, {"multipart/form-data; boundary=x", "--x--", true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.contentType);
    HttpRequest request = sample();
    request.headers = {{"Content-Type", c.contentType}};
    if (std::string(c.contentType).empty()) request.headers.clear();
    request.body = c.body;
    for (PayloadFormat format : {PayloadFormat::kV2, PayloadFormat::kV1}) {
      Json event(function_url::event(request, context(), format));
      EXPECT_EQ(at(event.root(), "isBase64Encoded").getBoolean(), c.base64);
      EXPECT_EQ(text(event.root(), "body"), c.base64 ? base64(c.body) : c.body);
    }
  }
}

TEST(FunctionUrlEvent, Format1HasRestApisFields) {
  Json event(function_url::event(sample(), context(), PayloadFormat::kV1));
  auto root = event.root();
  EXPECT_EQ(text(root, "version"), "1.0");
  EXPECT_EQ(text(root, "path"), "/shop/items/7");
  EXPECT_EQ(text(root, "resource"), "/shop/items/7");
  EXPECT_EQ(text(root, "httpMethod"), "POST");
  EXPECT_EQ(text(root, "headers.Cookie"), "c=3");  // the last one
  EXPECT_EQ(strings(root, "multiValueHeaders.Cookie"),
            (std::vector<std::string>{"a=1; b=2", "c=3"}));
  EXPECT_EQ(strings(root, "multiValueHeaders.X-Twice"), (std::vector<std::string>{"one", "two"}));
  EXPECT_FALSE(has(at(root, "headers"), "Transfer-Encoding"));
  EXPECT_EQ(text(root, "queryStringParameters.tag"), "b c");
  EXPECT_EQ(strings(root, "multiValueQueryStringParameters.tag"),
            (std::vector<std::string>{"a", "b c"}));
  EXPECT_EQ(text(root, "requestContext.httpMethod"), "POST");
  EXPECT_EQ(text(root, "requestContext.identity.sourceIp"), "127.0.0.1");
  EXPECT_EQ(text(root, "requestContext.identity.userAgent"), "curl/8");
  EXPECT_EQ(text(root, "requestContext.requestId"), "req-1");
  EXPECT_EQ(text(root, "requestContext.stage"), "$default");
  EXPECT_TRUE(at(root, "pathParameters").isNull());
  EXPECT_TRUE(at(root, "stageVariables").isNull());
  EXPECT_EQ(text(root, "body"), R"({"item": 7})");
  EXPECT_FALSE(at(root, "isBase64Encoded").getBoolean());

  HttpRequest bare;
  bare.method = "GET";
  bare.path = "/";
  Json empty(function_url::event(bare, context(), PayloadFormat::kV1));
  EXPECT_TRUE(at(empty.root(), "queryStringParameters").isNull());
  EXPECT_TRUE(at(empty.root(), "multiValueQueryStringParameters").isNull());
  EXPECT_TRUE(at(empty.root(), "body").isNull());
}

std::vector<std::string> headerValues(const HttpResponse& response, const std::string& name) {
  std::vector<std::string> values;
  for (const auto& [key, value] : response.headers)
    if (strcasecmp(key.c_str(), name.c_str()) == 0) values.push_back(value);
  return values;
}

TEST(FunctionUrlResponse, ABareValueIsJsonIn2) {
  for (std::string result : {R"("hello")", "42", "[1,2]", "null", R"({"answer": 42})", "true"}) {
    SCOPED_TRACE(result);
    HttpResponse response = responseOf(result, PayloadFormat::kV2);
    EXPECT_EQ(response.status, 200u);
    EXPECT_EQ(headerValues(response, "content-type"), std::vector<std::string>{"application/json"});
    EXPECT_EQ(response.body, result);
    // In format 1.0 (API Gateway's REST APIs) only a statusCode object answers.
    EXPECT_EQ(responseOf(result, PayloadFormat::kV1).status, 502u);
  }
}

TEST(FunctionUrlResponse, AnObjectWithStatusCodeIsMapped) {
  HttpResponse response = responseOf(
      R"({"statusCode": 201, "headers": {"Content-Type": "text/html", "X-N": 5},
          "multiValueHeaders": {"X-Many": ["a", "b"]},
          "cookies": ["s=1; Path=/", "t=2"], "body": "<p>d\u00e5</p>"})",
      PayloadFormat::kV2);
  EXPECT_EQ(response.status, 201u);
  EXPECT_EQ(headerValues(response, "content-type"), std::vector<std::string>{"text/html"});
  EXPECT_EQ(headerValues(response, "x-n"), std::vector<std::string>{"5"});
  EXPECT_EQ(headerValues(response, "x-many"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(headerValues(response, "set-cookie"), (std::vector<std::string>{"s=1; Path=/", "t=2"}));
  EXPECT_EQ(response.body, "<p>d\xc3\xa5</p>");
}

TEST(FunctionUrlResponse, Format1TakesMultiValueHeadersNotCookies) {
  HttpResponse response = responseOf(
      R"({"statusCode": 302, "headers": {"Location": "/x"},
          "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]}, "cookies": ["ignored=1"]})",
      PayloadFormat::kV1);
  EXPECT_EQ(response.status, 302u);
  EXPECT_EQ(headerValues(response, "location"), std::vector<std::string>{"/x"});
  EXPECT_EQ(headerValues(response, "set-cookie"), (std::vector<std::string>{"a=1", "b=2"}));
  EXPECT_EQ(response.body, "");
}

TEST(FunctionUrlResponse, Base64BodiesAreDecoded) {
  const std::string bytes("\x00\x01\xfe\xff binary", 11);
  HttpResponse response = responseOf(
      R"({"statusCode": 200, "isBase64Encoded": true, "body": ")" + base64(bytes) + "\"}",
      PayloadFormat::kV2);
  EXPECT_EQ(response.status, 200u);
  EXPECT_EQ(response.body, bytes);
}

TEST(FunctionUrlResponse, MalformedResultsAre502) {
  for (std::string result : {
           R"({"statusCode": "200"})",
           R"({"statusCode": 200.5})",
           R"({"statusCode": 99})",
           R"({"statusCode": 101})",
           R"({"statusCode": 600})",
           R"({"statusCode": 200, "isBase64Encoded": true, "body": "not base64!"})",
           R"({"statusCode": 200, "body": {"an": "object"}})",
           R"({"statusCode": 200, "headers": ["a"]})",
           R"({"statusCode": 200, "headers": {"a": {"b": 1}}})",
           R"({"statusCode": 200, "cookies": "a=1"})",
           R"({"statusCode": 200, "headers": {"X-Split": "a\r\nSet-Cookie: evil=1"}})",
           R"({"statusCode": 200, "headers": {"Bad Name": "a"}})",
           R"({"statusCode": 200, "cookies": ["a=1\nb"]})",
           R"({"statusCode": 200, "isBase64Encoded": "yes"})",
           "not json",
       }) {
    SCOPED_TRACE(result);
    HttpResponse response = responseOf(result, PayloadFormat::kV2);
    EXPECT_EQ(response.status, 502u);
    EXPECT_EQ(response.body, R"({"Message":"Internal Server Error"})");
  }
}

TEST(FunctionUrlResponse, ADeepBareValueIsStillJson) {
  std::string deep = "{\"a\":" + std::string(200, '[') + std::string(200, ']') + "}";
  HttpResponse response = responseOf(deep, PayloadFormat::kV2);
  EXPECT_EQ(response.status, 200u);
  EXPECT_EQ(response.body, deep);
}

TEST(FunctionUrlResponse, FailuresLeakNothing) {
  InvokeResult failed;
  failed.status = Status::kHandlerError;
  failed.errorType = "ValueError";
  failed.errorMessage = "the secret is 1234";
  failed.traceback = "Traceback (most recent call last):\n  File \"/var/task/app.py\"";
  for (Status status :
       {Status::kHandlerError, Status::kTimeout, Status::kOutOfMemory, Status::kCrashed,
        Status::kTooManyProcesses, Status::kResultTooLarge, Status::kStartFailed}) {
    failed.status = status;
    HttpResponse response = responseOf(failed, PayloadFormat::kV2);
    EXPECT_EQ(response.status, 502u);
    EXPECT_EQ(response.body, R"({"Message":"Internal Server Error"})");
  }
  InvokeResult overloaded;
  overloaded.status = Status::kOverloaded;
  overloaded.errorMessage = "queue of fn full (internal detail)";
  HttpResponse throttled = responseOf(overloaded, PayloadFormat::kV2);
  EXPECT_EQ(throttled.status, 429u);
  EXPECT_EQ(throttled.body.find("internal"), std::string::npos);
  overloaded.status = Status::kShuttingDown;
  EXPECT_EQ(responseOf(overloaded, PayloadFormat::kV2).status, 503u);
  InvokeResult ok;
  ok.payload = R"({"statusCode": 204})";
  EXPECT_EQ(responseOf(ok, PayloadFormat::kV2).status, 204u);
}

TEST(FunctionUrlTarget, HostOrPathPrefixNamesTheUrl) {
  Target byHost = targetOf(std::string(kUrlId) + ".lambda-url.us-east-1.localhost:9001", "/a/b");
  EXPECT_TRUE(byHost.found);
  EXPECT_EQ(byHost.urlId, kUrlId);
  EXPECT_EQ(byHost.path, "/a/b");
  Target byPath = targetOf("127.0.0.1:9001", "/lambda-url/" + std::string(kUrlId) + "/a/b");
  EXPECT_TRUE(byPath.found);
  EXPECT_EQ(byPath.urlId, kUrlId);
  EXPECT_EQ(byPath.path, "/a/b");
  Target bare = targetOf("127.0.0.1:9001", "/lambda-url/" + std::string(kUrlId));
  EXPECT_TRUE(bare.found);
  EXPECT_EQ(bare.path, "/");
  EXPECT_FALSE(targetOf("127.0.0.1:9001", "/2015-03-31/functions").found);
  EXPECT_FALSE(targetOf("", "/metrics").found);
  EXPECT_TRUE(isUrlId(kUrlId));
  EXPECT_FALSE(isUrlId("ABCDEFGHIJ0123456789abcdefghij01"));
  EXPECT_FALSE(isUrlId("short"));
}

TEST(FunctionUrlFormat, OnlyTheTwoFormats) {
  EXPECT_EQ(payloadFormatOf("2.0"), PayloadFormat::kV2);
  EXPECT_EQ(payloadFormatOf("1.0"), PayloadFormat::kV1);
  EXPECT_THROW(payloadFormatOf("3.0"), std::invalid_argument);
}

TEST(FunctionUrlConfigApi, RoutesAreLambdas2021Paths) {
  struct Case {
    const char *method, *target;
    lambda::Action action;
  };
  const Case cases[] = {
      {"POST", "/2021-10-31/functions/f/url", lambda::Action::kCreateFunctionUrlConfig},
      {"GET", "/2021-10-31/functions/f/url", lambda::Action::kGetFunctionUrlConfig},
      {"PUT", "/2021-10-31/functions/f/url", lambda::Action::kUpdateFunctionUrlConfig},
      {"DELETE", "/2021-10-31/functions/f/url", lambda::Action::kDeleteFunctionUrlConfig},
      {"GET", "/2021-10-31/functions/f/urls?MaxItems=5", lambda::Action::kListFunctionUrlConfigs},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.method) + " " + c.target);
    lambda::Route route = lambda::route(c.method, c.target);
    EXPECT_EQ(route.action, c.action);
    EXPECT_EQ(route.function, "f");
  }
  // The 2021 paths have only these; the 2015 ones none of them.
  for (const char* target : {"/2021-10-31/functions/f/invocations", "/2021-10-31/functions",
                             "/2021-10-31/functions/", "/2015-03-31/functions/f/url"}) {
    SCOPED_TRACE(target);
    try {
      lambda::route(std::string(target).find("invocations") != std::string::npos ? "POST" : "GET",
                    target);
      ADD_FAILURE() << "routed";
    } catch (const lambda::ApiError& e) {
      EXPECT_EQ(e.status(), 404u);
    }
  }
  EXPECT_STREQ(lambda::permissionOf(lambda::Action::kGetFunctionUrlConfig), "read");
  EXPECT_STREQ(lambda::permissionOf(lambda::Action::kCreateFunctionUrlConfig), "deploy");
}

TEST(FunctionUrlConfigApi, BodiesAreChecked) {
  lambda::UrlConfigRequest create =
      lambda::readUrlConfig(R"({"AuthType": "AWS_IAM", "PayloadFormatVersion": "1.0"})", true);
  EXPECT_EQ(create.authType, "AWS_IAM");
  EXPECT_EQ(create.payloadFormat, "1.0");
  EXPECT_EQ(lambda::readUrlConfig("{}", false).authType, "");
  for (const char* body :
       {"{}", R"({"AuthType": "OPEN"})", R"({"AuthType": "NONE", "PayloadFormatVersion": "3.0"})",
        R"({"AuthType": "NONE", "Cors": {"AllowOrigins": ["*"]}})",
        R"({"AuthType": "NONE", "InvokeMode": "RESPONSE_STREAM"})", "[1]"}) {
    SCOPED_TRACE(body);
    EXPECT_THROW(lambda::readUrlConfig(body, true), lambda::ApiError);
  }
  std::string document = lambda::functionUrlConfig(
      {"http://x.lambda-url.r.localhost:1/", "arn:aws:lambda:r:0:function:f", "NONE", "2.0",
       1796535725123, 1796535725123},
      true);
  Json json(document);
  EXPECT_EQ(text(json.root(), "FunctionUrl"), "http://x.lambda-url.r.localhost:1/");
  EXPECT_EQ(text(json.root(), "FunctionArn"), "arn:aws:lambda:r:0:function:f");
  EXPECT_EQ(text(json.root(), "AuthType"), "NONE");
  EXPECT_EQ(text(json.root(), "CreationTime"), "2026-12-06T05:42:05.123+0000");
  EXPECT_EQ(text(json.root(), "LastModifiedTime"), "2026-12-06T05:42:05.123+0000");
}

}  // namespace
}  // namespace thatchd::function_url
