#include "daemon/function_url.h"

#include <capnp/compat/json.h>
#include <capnp/message.h>
#include <kj/encoding.h>
#include <strings.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <optional>
#include <stdexcept>

#include "base/json.h"
#include "base/text.h"
#include "daemon/lambda_shapes.h"

namespace thatchd::function_url {

using base::JsonWriter;
using supervisor::Status;

namespace {

constexpr std::string_view kHostInfix = ".lambda-url.";
constexpr std::string_view kPathPrefix = "/lambda-url/";
constexpr size_t kUrlIdLength = 32;
// How deep a handler's result may nest to be read as a response; a deeper
// bare value is still answered as JSON, unread.
constexpr int kMaxResultDepth = 64;

std::string lowerCase(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return out;
}

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

std::string headerValue(const HttpRequest& request, std::string_view name) {
  for (const auto& [key, value] : request.headers)
    if (key.size() == name.size() && strncasecmp(key.data(), name.data(), name.size()) == 0)
      return value;
  return "";
}

std::string base64(std::string_view bytes) {
  return kj::encodeBase64(kj::ArrayPtr<const kj::byte>(
                              reinterpret_cast<const kj::byte*>(bytes.data()), bytes.size()))
      .cStr();
}

// Lambda's request time, "06/Dec/2026:05:42:05 +0000".
std::string requestTime(int64_t unixMs) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t seconds = time_t(unixMs / 1000);
  struct tm utc {};
  gmtime_r(&seconds, &utc);
  char text[64];
  snprintf(text, sizeof text, "%02d/%s/%04d:%02d:%02d:%02d +0000", utc.tm_mday, kMonths[utc.tm_mon],
           utc.tm_year + 1900, utc.tm_hour, utc.tm_min, utc.tm_sec);
  return text;
}

// The query's parameters, decoded, in order of first appearance, each with
// its values in order.
using Parameters = std::vector<std::pair<std::string, std::vector<std::string>>>;

// The values of `name` in `parameters`, added at the end if it is not
// there; header names compare `caseless`, a query's exactly. A request has
// a few: a linear search costs less than an index.
std::vector<std::string>& valuesOf(Parameters& parameters, const std::string& name, bool caseless) {
  for (auto& [key, values] : parameters)
    if (caseless ? key.size() == name.size() && strcasecmp(key.c_str(), name.c_str()) == 0
                 : key == name)
      return values;
  parameters.emplace_back(name, std::vector<std::string>());
  return parameters.back().second;
}

Parameters parametersOf(std::string_view query) {
  Parameters parameters;
  while (!query.empty()) {
    size_t end = query.find('&');
    std::string_view pair = query.substr(0, end);
    query = end == std::string_view::npos ? std::string_view() : query.substr(end + 1);
    if (pair.empty()) continue;
    size_t equals = pair.find('=');
    std::string name = lambda::percentDecode(pair.substr(0, equals), true);
    std::string value = equals == std::string_view::npos
                            ? std::string()
                            : lambda::percentDecode(pair.substr(equals + 1), true);
    valuesOf(parameters, name, false).push_back(std::move(value));
  }
  return parameters;
}

// Headers about the connection, not the request: the function gets the
// body whole, however it was framed.
bool isHopByHop(const std::string& lowerName) {
  for (const char* name : {"connection", "keep-alive", "transfer-encoding", "te", "trailer",
                           "upgrade", "proxy-connection"})
    if (lowerName == name) return true;
  return false;
}

// The request's headers by name (lower-cased when `lower`), each with its
// values in order; Cookie left out when `withoutCookies`, and the
// connection's own always.
Parameters headersOf(const HttpRequest& request, bool lower, bool withoutCookies) {
  Parameters headers;
  for (const auto& [name, value] : request.headers) {
    std::string key = lowerCase(name);
    if ((withoutCookies && key == "cookie") || isHopByHop(key)) continue;
    valuesOf(headers, lower ? key : name, true).push_back(value);
  }
  return headers;
}

std::string joined(const std::vector<std::string>& values) {
  std::string out;
  for (const std::string& value : values) out += (out.empty() ? "" : ",") + value;
  return out;
}

// The body as the event carries it: text, or base64 for binary content
// and for text that is not UTF-8 (a JSON string cannot hold it).
struct EventBody {
  std::string text;
  bool base64 = false;
};

EventBody eventBodyOf(const HttpRequest& request) {
  if (request.body.empty()) return {};
  if (isTextContentType(headerValue(request, "Content-Type")) && base::isUtf8(request.body))
    return {request.body, false};
  return {base64(request.body), true};
}

std::string domainNameOf(const HttpRequest& request, const EventContext& context) {
  std::string host = headerValue(request, "Host");
  if (host.empty()) return context.urlId + ".lambda-url." + context.region + ".on.aws";
  return host.substr(0, host.rfind(':') == std::string::npos || host.back() == ']'
                            ? host.size()
                            : host.rfind(':'));
}

void writeV2(JsonWriter& json, const HttpRequest& request, const EventContext& context) {
  json.key("version").stringValue("2.0");
  json.key("routeKey").stringValue("$default");
  json.key("rawPath").stringValue(request.path);
  json.key("rawQueryString").stringValue(request.rawQueryString);
  std::vector<std::string> cookies;
  for (const auto& [name, value] : request.headers) {
    if (strcasecmp(name.c_str(), "Cookie") != 0) continue;
    std::string_view rest = value;
    while (!rest.empty()) {
      size_t end = rest.find(';');
      std::string_view cookie = trimmed(rest.substr(0, end));
      if (!cookie.empty()) cookies.emplace_back(cookie);
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    }
  }
  if (!cookies.empty()) {
    json.key("cookies").beginArray();
    for (const std::string& cookie : cookies) json.stringValue(cookie);
    json.endArray();
  }
  json.key("headers").beginObject();
  for (const auto& [name, values] : headersOf(request, true, true))
    json.key(name).stringValue(joined(values));
  json.endObject();
  Parameters query = parametersOf(request.rawQueryString);
  if (!query.empty()) {
    json.key("queryStringParameters").beginObject();
    for (const auto& [name, values] : query) json.key(name).stringValue(joined(values));
    json.endObject();
  }
  json.key("requestContext").beginObject();
  json.key("accountId").stringValue(context.accessKeyId.empty() ? "anonymous" : context.accountId);
  json.key("apiId").stringValue(context.urlId);
  if (!context.accessKeyId.empty()) {
    json.key("authorizer").beginObject().key("iam").beginObject();
    json.key("accessKey").stringValue(context.accessKeyId);
    json.key("accountId").stringValue(context.accountId);
    json.key("callerId").stringValue(context.accessKeyId);
    json.key("userArn").stringValue("arn:aws:iam::" + context.accountId + ":user/" +
                                    context.accessKeyId);
    json.endObject().endObject();
  }
  json.key("domainName").stringValue(domainNameOf(request, context));
  json.key("domainPrefix").stringValue(context.urlId);
  json.key("http").beginObject();
  json.key("method").stringValue(request.method);
  json.key("path").stringValue(request.path);
  json.key("protocol").stringValue(request.protocol);
  json.key("sourceIp").stringValue(request.sourceIp);
  json.key("userAgent").stringValue(headerValue(request, "User-Agent"));
  json.endObject();
  json.key("requestId").stringValue(context.requestId);
  json.key("routeKey").stringValue("$default");
  json.key("stage").stringValue("$default");
  json.key("time").stringValue(requestTime(context.timeUnixMs));
  json.key("timeEpoch").signedValue(context.timeUnixMs);
  json.endObject();
  EventBody body = eventBodyOf(request);
  if (!request.body.empty()) json.key("body").stringValue(body.text);
  json.key("isBase64Encoded").boolValue(body.base64);
}

void writeV1(JsonWriter& json, const HttpRequest& request, const EventContext& context) {
  std::string path = lambda::percentDecode(request.path, false);
  json.key("version").stringValue("1.0");
  json.key("resource").stringValue(path);
  json.key("path").stringValue(path);
  json.key("httpMethod").stringValue(request.method);
  Parameters headers = headersOf(request, false, false);
  json.key("headers").beginObject();
  for (const auto& [name, values] : headers) json.key(name).stringValue(values.back());
  json.endObject();
  json.key("multiValueHeaders").beginObject();
  for (const auto& [name, values] : headers) {
    json.key(name).beginArray();
    for (const std::string& value : values) json.stringValue(value);
    json.endArray();
  }
  json.endObject();
  Parameters query = parametersOf(request.rawQueryString);
  json.key("queryStringParameters");
  if (query.empty()) {
    json.nullValue();
  } else {
    json.beginObject();
    for (const auto& [name, values] : query) json.key(name).stringValue(values.back());
    json.endObject();
  }
  json.key("multiValueQueryStringParameters");
  if (query.empty()) {
    json.nullValue();
  } else {
    json.beginObject();
    for (const auto& [name, values] : query) {
      json.key(name).beginArray();
      for (const std::string& value : values) json.stringValue(value);
      json.endArray();
    }
    json.endObject();
  }
  json.key("requestContext").beginObject();
  json.key("accountId").stringValue(context.accountId);
  json.key("apiId").stringValue(context.urlId);
  json.key("domainName").stringValue(domainNameOf(request, context));
  json.key("domainPrefix").stringValue(context.urlId);
  json.key("extendedRequestId").stringValue(context.requestId);
  json.key("httpMethod").stringValue(request.method);
  json.key("identity").beginObject();
  json.key("accessKey");
  if (context.accessKeyId.empty())
    json.nullValue();
  else
    json.stringValue(context.accessKeyId);
  json.key("sourceIp").stringValue(request.sourceIp);
  json.key("userAgent").stringValue(headerValue(request, "User-Agent"));
  json.endObject();
  json.key("path").stringValue(path);
  json.key("protocol").stringValue(request.protocol);
  json.key("requestId").stringValue(context.requestId);
  json.key("requestTime").stringValue(requestTime(context.timeUnixMs));
  json.key("requestTimeEpoch").signedValue(context.timeUnixMs);
  json.key("resourceId").stringValue("$default");
  json.key("resourcePath").stringValue(path);
  json.key("stage").stringValue("$default");
  json.endObject();
  json.key("pathParameters").nullValue();
  json.key("stageVariables").nullValue();
  EventBody body = eventBodyOf(request);
  json.key("body");
  if (request.body.empty())
    json.nullValue();
  else
    json.stringValue(body.text);
  json.key("isBase64Encoded").boolValue(body.base64);
}

// --- responses ---------------------------------------------------------------

// Why a result cannot be a response: answered 502.
struct Malformed {};

std::string textOf(capnp::JsonValue::Reader value) {
  if (!value.isString()) throw Malformed{};
  return std::string(value.getString().cStr(), value.getString().size());
}

// A header's value: a string, or a number or boolean as JSON writes it
// (what a handler returning {"Content-Length": 5} means).
std::string headerTextOf(capnp::JsonValue::Reader value) {
  if (value.isString()) return textOf(value);
  if (value.isBoolean()) return value.getBoolean() ? "true" : "false";
  if (value.isNumber()) {
    double number = value.getNumber();
    char text[32];
    if (std::floor(number) == number && std::fabs(number) < 1e15)
      snprintf(text, sizeof text, "%.0f", number);
    else
      snprintf(text, sizeof text, "%.17g", number);
    return text;
  }
  throw Malformed{};
}

// A header that could not be sent as it is (a name that is not a token, a
// value that would end the header) is the handler's mistake: 502.
bool isToken(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos))
      return false;
  return true;
}

void addHeader(HttpResponse& response, std::string name, std::string value) {
  if (!isToken(name) || value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
    throw Malformed{};
  response.headers.emplace_back(std::move(name), std::move(value));
}

// A member of a handler's answer; null counts as absent, as for Lambda.
std::optional<capnp::JsonValue::Reader> member(capnp::JsonValue::Reader object,
                                               std::string_view name) {
  std::optional<capnp::JsonValue::Reader> value = lambda::member(object, name);
  if (value && value->isNull()) return std::nullopt;
  return value;
}

HttpResponse jsonAnswer(std::string_view result) {
  return {200, {{"content-type", "application/json"}}, std::string(result)};
}

HttpResponse badGateway() {
  return messageResponse(502, "Internal Server Error");
}

HttpResponse responseFromObject(capnp::JsonValue::Reader root, PayloadFormat format) {
  HttpResponse response;
  capnp::JsonValue::Reader statusCode = *member(root, "statusCode");
  double status = statusCode.isNumber() ? statusCode.getNumber() : NAN;
  if (!(status >= 200 && status <= 599) || std::floor(status) != status) throw Malformed{};
  response.status = unsigned(status);
  if (auto headers = member(root, "headers")) {
    if (!headers->isObject()) throw Malformed{};
    for (auto field : headers->getObject()) {
      if (field.getValue().isNull()) continue;
      addHeader(response, field.getName().cStr(), headerTextOf(field.getValue()));
    }
  }
  if (auto headers = member(root, "multiValueHeaders")) {
    if (!headers->isObject()) throw Malformed{};
    for (auto field : headers->getObject()) {
      if (field.getValue().isNull()) continue;
      if (!field.getValue().isArray()) throw Malformed{};
      // As API Gateway: a name in both lists takes the multi-value list's values.
      std::string name = field.getName().cStr();
      std::erase_if(response.headers, [&name](const auto& header) {
        return strcasecmp(header.first.c_str(), name.c_str()) == 0;
      });
      for (auto value : field.getValue().getArray()) addHeader(response, name, headerTextOf(value));
    }
  }
  if (auto cookies = member(root, "cookies"); cookies && format == PayloadFormat::kV2) {
    if (!cookies->isArray()) throw Malformed{};
    for (auto cookie : cookies->getArray()) addHeader(response, "set-cookie", textOf(cookie));
  }
  bool encoded = false;
  if (auto flag = member(root, "isBase64Encoded")) {
    if (!flag->isBoolean()) throw Malformed{};
    encoded = flag->getBoolean();
  }
  if (auto body = member(root, "body")) {
    std::string text = textOf(*body);
    if (encoded) {
      kj::EncodingResult<kj::Array<kj::byte>> bytes =
          kj::decodeBase64(kj::ArrayPtr<const char>(text.data(), text.size()));
      if (bytes.hadErrors) throw Malformed{};
      response.body.assign(bytes.asChars().begin(), bytes.size());
    } else {
      response.body = std::move(text);
    }
  }
  return response;
}

}  // namespace

PayloadFormat payloadFormatOf(std::string_view text) {
  if (text == "2.0" || text.empty()) return PayloadFormat::kV2;
  if (text == "1.0") return PayloadFormat::kV1;
  throw std::invalid_argument("the payload format is \"2.0\" or \"1.0\", not " +
                              base::quoted(text, 16));
}

std::string event(const HttpRequest& request, const EventContext& context, PayloadFormat format) {
  JsonWriter json;
  json.beginObject();
  if (format == PayloadFormat::kV2)
    writeV2(json, request, context);
  else
    writeV1(json, request, context);
  json.endObject();
  return json.text();
}

bool isTextContentType(std::string_view contentType) {
  std::string type = lowerCase(trimmed(contentType.substr(0, contentType.find(';'))));
  if (type.empty()) return false;
  if (type.starts_with("text/")) return true;
  for (std::string_view text :
       {"application/json", "application/javascript", "application/xml",
        "application/x-www-form-urlencoded", "application/ecmascript", "application/graphql"})
    if (type == text) return true;
  return type.ends_with("+json") || type.ends_with("+xml");
}

HttpResponse responseOf(std::string_view result, PayloadFormat format) {
  size_t start = result.find_first_not_of(" \t\r\n");
  bool isObject = start != std::string_view::npos && result[start] == '{';
  if (!isObject) {
    if (format == PayloadFormat::kV2 && base::isJson(result)) return jsonAnswer(result);
    return badGateway();
  }
  std::string decoded;
  try {
    if (result.find("\\u") != std::string_view::npos)
      result = decoded = lambda::withUnicodeEscapesDecoded(result);
  } catch (const lambda::ApiError&) {
    return badGateway();
  }
  capnp::MallocMessageBuilder message;
  capnp::JsonCodec codec;
  codec.setMaxNestingDepth(kMaxResultDepth);
  try {
    codec.decodeRaw(kj::ArrayPtr<const char>(result.data(), result.size()),
                    message.initRoot<capnp::JsonValue>());
  } catch (const kj::Exception&) {
    // Too deep to read, or not JSON: no statusCode we could see.
    if (format == PayloadFormat::kV2 && base::isJson(result)) return jsonAnswer(result);
    return badGateway();
  }
  capnp::JsonValue::Reader root = message.getRoot<capnp::JsonValue>().asReader();
  if (!member(root, "statusCode")) {
    if (format == PayloadFormat::kV2) return jsonAnswer(result);
    return badGateway();
  }
  try {
    return responseFromObject(root, format);
  } catch (const Malformed&) {
    return badGateway();
  }
}

HttpResponse responseOf(const supervisor::InvokeResult& result, PayloadFormat format) {
  switch (result.status) {
    case Status::kOk:
      return responseOf(std::string_view(result.payload.empty() ? "null" : result.payload), format);
    case Status::kHandlerError:
    case Status::kTimeout:
    case Status::kOutOfMemory:
    case Status::kTooManyProcesses:
    case Status::kCrashed:
    case Status::kResultTooLarge:
    case Status::kStartFailed:
      return badGateway();
    case Status::kBadRequest:
      return messageResponse(400, "Bad Request");
    case Status::kOverloaded:
      return messageResponse(429, "Rate Exceeded.");
    case Status::kNotFound:
      return messageResponse(404, "Not Found");
    case Status::kShuttingDown:
      return messageResponse(503, "Service Unavailable");
  }
  return badGateway();
}

HttpResponse messageResponse(unsigned status, std::string_view message) {
  JsonWriter json;
  json.beginObject().key("Message").stringValue(message).endObject();
  return {status, {{"content-type", "application/json"}}, json.text()};
}

bool isUrlId(std::string_view text) {
  if (text.size() != kUrlIdLength) return false;
  for (char c : text)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  return true;
}

Target targetOf(std::string_view host, std::string_view path) {
  Target target;
  size_t infix = host.find(kHostInfix);
  if (infix != std::string_view::npos && infix > 0) {
    target.found = true;
    target.urlId = std::string(host.substr(0, infix));
    target.path = path.empty() ? "/" : std::string(path);
    return target;
  }
  if (!path.starts_with(kPathPrefix)) return target;
  std::string_view rest = path.substr(kPathPrefix.size());
  size_t slash = rest.find('/');
  target.found = true;
  target.urlId = std::string(rest.substr(0, slash));
  target.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  return target;
}

}  // namespace thatchd::function_url
