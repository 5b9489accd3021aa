#include "daemon/lambda_shapes.h"

#include <capnp/compat/json.h>
#include <capnp/message.h>
#include <kj/encoding.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <span>

#include "base/json.h"
#include "base/text.h"

namespace thatchd::lambda {

using base::JsonWriter;
using supervisor::Status;

namespace {

constexpr std::string_view kApiPrefix = "/2015-03-31/functions";
constexpr std::string_view kUrlApiPrefix = "/2021-10-31/functions";  // function URLs'
constexpr size_t kTailBytes = 4096;  // what Lambda returns of the logs with Log-Type: Tail

// Lambda's bounds on what a function may ask for.
constexpr int64_t kMinTimeoutSeconds = 1, kMaxTimeoutSeconds = 900;
constexpr int64_t kMinMemoryMb = 128, kMaxMemoryMb = 10240;

}  // namespace

std::string percentDecode(std::string_view text, bool plusIsSpace) {
  std::string out;
  out.reserve(text.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() + 0 && hex(text[i + 1]) >= 0 &&
        hex(text[i + 2]) >= 0) {
      out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
      i += 2;
    } else if (text[i] == '+' && plusIsSpace) {
      out += ' ';
    } else {
      out += text[i];
    }
  }
  return out;
}

namespace {

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

// A function as the path names it: NAME, NAME:QUALIFIER, or
// arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER].
void readFunctionName(const std::string& text, Route& route) {
  std::vector<std::string_view> parts = split(text, ':');
  std::string_view name, qualifier;
  if (parts.size() >= 7 && parts[0] == "arn" && parts[2] == "lambda" && parts[5] == "function" &&
      parts.size() <= 8) {
    name = parts[6];
    if (parts.size() == 8) qualifier = parts[7];
  } else if (parts.size() <= 2) {
    name = parts[0];
    if (parts.size() == 2) qualifier = parts[1];
  } else {
    throw badParameter("1 validation error detected: Value " + base::quoted(text, 140) +
                       " at 'functionName' failed to satisfy constraint: a function name, "
                       "NAME:QUALIFIER or a function ARN");
  }
  route.function = std::string(name);
  route.qualifier = std::string(qualifier);
}

void appendUtf8(std::string& out, uint32_t codePoint) {
  if (codePoint < 0x80) {
    out += static_cast<char>(codePoint);
  } else if (codePoint < 0x800) {
    out += static_cast<char>(0xC0 | (codePoint >> 6));
    out += static_cast<char>(0x80 | (codePoint & 0x3F));
  } else if (codePoint < 0x10000) {
    out += static_cast<char>(0xE0 | (codePoint >> 12));
    out += static_cast<char>(0x80 | ((codePoint >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (codePoint & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (codePoint >> 18));
    out += static_cast<char>(0x80 | ((codePoint >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((codePoint >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (codePoint & 0x3F));
  }
}

// The value of the 4 hex digits at `text[pos]` (after a \u); -1 if they are not.
int32_t hexQuad(std::string_view text, size_t pos) {
  if (pos + 4 > text.size()) return -1;
  int32_t value = 0;
  for (char c : text.substr(pos, 4)) {
    int digit = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

}  // namespace

// `body` with every \uXXXX escape (a surrogate pair as one) written as
// UTF-8, but for \" and \\. capnp 0.9's JSON decoder reads the hex digits
// a-f of an escape as 0-5 and refuses non-ASCII escapes, and botocore and
// the AWS CLI escape every non-ASCII character: "d\u00e5" would arrive as
// "dE". The other escapes are left to the decoder.
std::string withUnicodeEscapesDecoded(std::string_view body) {
  std::string out;
  out.reserve(body.size());
  for (size_t pos = 0; pos < body.size(); ++pos) {
    if (body[pos] != '\\' || pos + 1 == body.size()) {
      out += body[pos];
      continue;
    }
    if (body[pos + 1] != 'u') {  // \" \\ \n ...: both characters as they are
      out.append(body, pos, 2);
      ++pos;
      continue;
    }
    int32_t unit = hexQuad(body, pos + 2);
    if (unit < 0) throw badContent("Could not parse request body into json: a bad \\u escape");
    uint32_t codePoint = uint32_t(unit);
    pos += 5;
    if (unit >= 0xD800 && unit <= 0xDFFF) {
      int32_t low = body.substr(pos + 1, 2) == "\\u" ? hexQuad(body, pos + 3) : -1;
      if (unit > 0xDBFF || low < 0xDC00 || low > 0xDFFF)
        throw badContent("Could not parse request body into json: a lone UTF-16 surrogate");
      codePoint = 0x10000 + ((uint32_t(unit) - 0xD800) << 10) + (uint32_t(low) - 0xDC00);
      pos += 6;
    }
    if (codePoint == '"' || codePoint == '\\') {
      out += '\\';
      out += static_cast<char>(codePoint);
    } else {
      appendUtf8(out, codePoint);
    }
  }
  return out;
}

std::optional<capnp::JsonValue::Reader> member(capnp::JsonValue::Reader object,
                                               std::string_view name) {
  if (!object.isObject()) return std::nullopt;
  for (auto field : object.getObject())
    if (std::string_view(field.getName().cStr(), field.getName().size()) == name)
      return field.getValue();
  return std::nullopt;
}

namespace {

// The document a Lambda client sends: one JSON object.
class Document {
 public:
  explicit Document(std::string_view body) {
    if (body.empty()) body = "{}";
    capnp::JsonCodec codec;
    codec.setMaxNestingDepth(32);
    // Only documents with escapes are copied: a zip's base64 has none.
    std::string decoded;
    if (body.find("\\u") != std::string_view::npos)
      body = decoded = withUnicodeEscapesDecoded(body);
    try {
      codec.decodeRaw(kj::ArrayPtr<const char>(body.data(), body.size()),
                      message_.initRoot<capnp::JsonValue>());
    } catch (const kj::Exception& e) {
      throw badContent("Could not parse request body into json: " +
                       std::string(e.getDescription().cStr()));
    }
    capnp::JsonValue::Reader root = message_.getRoot<capnp::JsonValue>().asReader();
    if (!root.isObject()) throw badContent("Could not parse request body into json: not an object");
    root_ = root;
  }

  capnp::JsonValue::Reader root() const { return root_; }

 private:
  capnp::MallocMessageBuilder message_;
  capnp::JsonValue::Reader root_;
};

std::optional<std::string> stringMember(capnp::JsonValue::Reader object, std::string_view name) {
  auto value = member(object, name);
  if (!value || value->isNull()) return std::nullopt;
  if (!value->isString()) throw badParameter(std::string(name) + " must be a string");
  return std::string(value->getString().cStr(), value->getString().size());
}

std::optional<bool> boolMember(capnp::JsonValue::Reader object, std::string_view name) {
  auto value = member(object, name);
  if (!value || value->isNull()) return std::nullopt;
  if (!value->isBoolean()) throw badParameter(std::string(name) + " must be true or false");
  return value->getBoolean();
}

std::optional<int64_t> integerMember(capnp::JsonValue::Reader object, std::string_view name,
                                     int64_t min, int64_t max) {
  auto value = member(object, name);
  if (!value || value->isNull()) return std::nullopt;
  double number = value->isNumber() ? value->getNumber() : NAN;
  if (!(number >= double(min) && number <= double(max)) || std::floor(number) != number)
    throw badParameter("1 validation error detected: Value at '" + std::string(name) +
                       "' failed to satisfy constraint: Member must be an integer from " +
                       std::to_string(min) + " to " + std::to_string(max));
  return static_cast<int64_t>(number);
}

// A layer version as Lambda names it,
// arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION, or as thatch does,
// NAME:VERSION.
thatch::LayerRef layerOf(const std::string& text) {
  std::vector<std::string_view> parts = split(text, ':');
  if (parts.size() == 8 && parts[0] == "arn" && parts[2] == "lambda" && parts[5] == "layer")
    parts.erase(parts.begin(), parts.begin() + 6);
  thatch::LayerRef layer;
  bool ok = parts.size() == 2 && !parts[0].empty() && !parts[1].empty() && parts[1].size() <= 19;
  for (char c : ok ? parts[1] : std::string_view()) ok = ok && c >= '0' && c <= '9';
  if (ok) {
    layer.name = std::string(parts[0]);
    layer.version = std::stoull(std::string(parts[1]));
  }
  if (!ok || layer.version == 0)
    throw badParameter("Layers: " + base::quoted(text, 200) +
                       " is not a layer version ARN (arn:aws:lambda:REGION:ACCOUNT:layer:NAME:"
                       "VERSION) nor NAME:VERSION");
  return layer;
}

// The fields CreateFunction and UpdateFunctionConfiguration share.
void readConfiguration(capnp::JsonValue::Reader body, thatch::FunctionConfig& config) {
  if (auto runtime = stringMember(body, "Runtime")) config.runtime = *runtime;
  if (auto handler = stringMember(body, "Handler")) config.handler = *handler;
  if (auto seconds = integerMember(body, "Timeout", kMinTimeoutSeconds, kMaxTimeoutSeconds))
    config.timeout = std::chrono::seconds(*seconds);
  if (auto mb = integerMember(body, "MemorySize", kMinMemoryMb, kMaxMemoryMb))
    config.memoryBytes = uint64_t(*mb) << 20;
  if (auto environment = member(body, "Environment"); environment && !environment->isNull()) {
    auto variables = member(*environment, "Variables");
    config.env.clear();
    if (variables && !variables->isNull()) {
      if (!variables->isObject())
        throw badParameter("Environment.Variables must be an object of strings");
      for (auto field : variables->getObject()) {
        if (!field.getValue().isString())
          throw badParameter("Environment.Variables must be an object of strings");
        config.env.emplace_back(
            std::string(field.getName().cStr(), field.getName().size()),
            std::string(field.getValue().getString().cStr(), field.getValue().getString().size()));
      }
    }
  }
  if (auto layers = member(body, "Layers"); layers && !layers->isNull()) {
    if (!layers->isArray()) throw badParameter("Layers must be a list of layer version ARNs");
    config.layers.clear();
    for (auto layer : layers->getArray()) {
      if (!layer.isString()) throw badParameter("Layers must be a list of layer version ARNs");
      config.layers.push_back(
          layerOf(std::string(layer.getString().cStr(), layer.getString().size())));
    }
  }
  if (auto type = stringMember(body, "PackageType"); type && *type != "Zip")
    throw badParameter("PackageType " + base::quoted(*type, 32) +
                       " is not supported: thatch runs Zip functions");
  if (auto architectures = member(body, "Architectures"); architectures && architectures->isArray())
    for (auto architecture : architectures->getArray())
      if (!architecture.isString() || architecture.getString() != "x86_64")
        throw badParameter("Architectures: thatch runs x86_64 only");
}

std::string zipFileOf(capnp::JsonValue::Reader code) {
  auto zip = stringMember(code, "ZipFile");
  if (!zip) {
    if (member(code, "S3Bucket") || member(code, "ImageUri"))
      throw badParameter("thatch takes a function's code as Code.ZipFile only (no S3, no image)");
    throw badParameter("Code.ZipFile is required: the function's code, a zip file in base64");
  }
  kj::EncodingResult<kj::Array<kj::byte>> bytes =
      kj::decodeBase64(kj::ArrayPtr<const char>(zip->data(), zip->size()));
  if (bytes.hadErrors) throw badParameter("Code.ZipFile is not valid base64");
  return std::string(bytes.asChars().begin(), bytes.size());
}

std::string isoTime(int64_t unixMs) {
  time_t seconds = static_cast<time_t>(unixMs / 1000);
  struct tm utc {};
  gmtime_r(&seconds, &utc);
  char text[96];
  snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03d+0000", utc.tm_year + 1900,
           utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
           static_cast<int>(unixMs % 1000));
  return text;
}

std::string errorDocument(std::string_view type, std::string_view message,
                          const std::string& requestId,
                          const std::vector<std::string>& stackTrace) {
  JsonWriter json;
  json.beginObject().key("errorMessage").stringValue(message);
  if (!type.empty()) json.key("errorType").stringValue(type);
  json.key("requestId").stringValue(requestId);
  json.key("stackTrace").beginArray();
  for (const std::string& frame : stackTrace) json.stringValue(frame);
  json.endArray().endObject();
  return json.text();
}

// A Lambda function's own error: 200, X-Amz-Function-Error: Unhandled.
Reply functionError(std::string_view type, std::string_view message, const std::string& requestId,
                    const std::vector<std::string>& stackTrace = {}) {
  return {200,
          {{"X-Amz-Function-Error", "Unhandled"}},
          errorDocument(type, message, requestId, stackTrace)};
}

// Python's exception types that Lambda reports as its runtime's own when
// the handler's module cannot load.
std::string startFailureType(const std::string& pythonType) {
  if (pythonType.find("SyntaxError") != std::string::npos ||
      pythonType.find("IndentationError") != std::string::npos)
    return "Runtime.UserCodeSyntaxError";
  if (pythonType.find("AttributeError") != std::string::npos) return "Runtime.HandlerNotFound";
  return "Runtime.ImportModuleError";
}

}  // namespace

const char* reasonPhrase(unsigned status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 401:
      return "Unauthorized";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 413:
      return "Request Entity Too Large";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    default:
      return status >= 500 ? "Server Error" : status >= 400 ? "Error" : "OK";
  }
}

Reply ApiError::reply() const {
  JsonWriter json;
  json.beginObject().key("Type").stringValue(status_ >= 500 ? "Service" : "User");
  json.key("message").stringValue(what());
  if (type_ == "TooManyRequestsException")
    json.key("Reason").stringValue("ReservedFunctionConcurrentInvocationLimitExceeded");
  json.endObject();
  return {status_, {{"x-amzn-ErrorType", type_}}, json.text()};
}

ApiError notFound(const std::string& what) {
  return ApiError(404, "ResourceNotFoundException", what);
}
ApiError badParameter(const std::string& why) {
  return ApiError(400, "InvalidParameterValueException", why);
}
ApiError badContent(const std::string& why) {
  return ApiError(400, "InvalidRequestContentException", why);
}

const char* iamActionName(Action action) {
  switch (action) {
    case Action::kCreateFunction:
      return "lambda:CreateFunction";
    case Action::kListFunctions:
      return "lambda:ListFunctions";
    case Action::kGetFunction:
      return "lambda:GetFunction";
    case Action::kGetFunctionConfiguration:
      return "lambda:GetFunctionConfiguration";
    case Action::kDeleteFunction:
      return "lambda:DeleteFunction";
    case Action::kUpdateFunctionCode:
      return "lambda:UpdateFunctionCode";
    case Action::kUpdateFunctionConfiguration:
      return "lambda:UpdateFunctionConfiguration";
    case Action::kPublishVersion:
      return "lambda:PublishVersion";
    case Action::kListVersionsByFunction:
      return "lambda:ListVersionsByFunction";
    case Action::kInvoke:
      return "lambda:InvokeFunction";
    case Action::kCreateFunctionUrlConfig:
      return "lambda:CreateFunctionUrlConfig";
    case Action::kGetFunctionUrlConfig:
      return "lambda:GetFunctionUrlConfig";
    case Action::kUpdateFunctionUrlConfig:
      return "lambda:UpdateFunctionUrlConfig";
    case Action::kDeleteFunctionUrlConfig:
      return "lambda:DeleteFunctionUrlConfig";
    case Action::kListFunctionUrlConfigs:
      return "lambda:ListFunctionUrlConfigs";
  }
  return "lambda:Unknown";
}

const char* permissionOf(Action action) {
  switch (action) {
    case Action::kInvoke:
      return "invoke:*";
    case Action::kListFunctions:
    case Action::kGetFunction:
    case Action::kGetFunctionConfiguration:
    case Action::kListVersionsByFunction:
    case Action::kGetFunctionUrlConfig:
    case Action::kListFunctionUrlConfigs:
      return "read";
    case Action::kCreateFunction:
    case Action::kDeleteFunction:
    case Action::kUpdateFunctionCode:
    case Action::kUpdateFunctionConfiguration:
    case Action::kPublishVersion:
    case Action::kCreateFunctionUrlConfig:
    case Action::kUpdateFunctionUrlConfig:
    case Action::kDeleteFunctionUrlConfig:
      return "deploy";
  }
  return "deploy";
}

bool permits(const supervisor::Grants& grants, Action action, const std::string& function) {
  switch (action) {
    case Action::kInvoke:
      return grants.mayInvoke(function);
    case Action::kListFunctions:
      return true;
    case Action::kGetFunction:
    case Action::kGetFunctionConfiguration:
    case Action::kListVersionsByFunction:
    case Action::kGetFunctionUrlConfig:
    case Action::kListFunctionUrlConfigs:
      return grants.maySee(function);
    case Action::kCreateFunction:
    case Action::kDeleteFunction:
    case Action::kUpdateFunctionCode:
    case Action::kUpdateFunctionConfiguration:
    case Action::kPublishVersion:
    case Action::kCreateFunctionUrlConfig:
    case Action::kUpdateFunctionUrlConfig:
    case Action::kDeleteFunctionUrlConfig:
      return grants.deploy;
  }
  return false;
}

std::optional<std::string> Route::queryValue(std::string_view name) const {
  for (const auto& [key, value] : query)
    if (key == name) return value;
  return std::nullopt;
}

Route route(std::string_view method, std::string_view target) {
  size_t questionMark = target.find('?');
  std::string_view path = target.substr(0, questionMark);
  Route route{};
  if (questionMark != std::string_view::npos)
    for (std::string_view pair : split(target.substr(questionMark + 1), '&')) {
      if (pair.empty()) continue;
      size_t equals = pair.find('=');
      route.query.emplace_back(percentDecode(pair.substr(0, equals), true),
                               equals == std::string_view::npos
                                   ? std::string()
                                   : percentDecode(pair.substr(equals + 1), true));
    }
  auto unknown = [&]() {
    return ApiError(404, "UnknownOperationException",
                    "no operation is " + std::string(method) + " " + base::quoted(path, 200));
  };
  bool urlApi = path.substr(0, kUrlApiPrefix.size()) == kUrlApiPrefix;
  if (path.substr(0, kApiPrefix.size()) != kApiPrefix && !urlApi) throw unknown();
  static_assert(kApiPrefix.size() == kUrlApiPrefix.size());
  std::string_view rest = path.substr(kApiPrefix.size());
  if (!urlApi && (rest.empty() || rest == "/")) {
    if (method == "POST")
      route.action = Action::kCreateFunction;
    else if (method == "GET")
      route.action = Action::kListFunctions;
    else
      throw unknown();
    return route;
  }
  if (rest.empty() || rest == "/") throw unknown();
  std::vector<std::string_view> parts = split(rest.substr(1), '/');
  if (parts.size() > 2 || parts[0].empty()) throw unknown();
  readFunctionName(percentDecode(parts[0], false), route);
  std::string_view sub = parts.size() == 2 ? parts[1] : "";
  struct Row {
    std::string_view method, sub;
    Action action;
  };
  static constexpr Row kUrlRows[] = {
      {"POST", "url", Action::kCreateFunctionUrlConfig},
      {"GET", "url", Action::kGetFunctionUrlConfig},
      {"PUT", "url", Action::kUpdateFunctionUrlConfig},
      {"DELETE", "url", Action::kDeleteFunctionUrlConfig},
      {"GET", "urls", Action::kListFunctionUrlConfigs},
  };
  static constexpr Row kRows[] = {
      {"GET", "", Action::kGetFunction},
      {"DELETE", "", Action::kDeleteFunction},
      {"GET", "configuration", Action::kGetFunctionConfiguration},
      {"PUT", "configuration", Action::kUpdateFunctionConfiguration},
      {"PUT", "code", Action::kUpdateFunctionCode},
      {"POST", "versions", Action::kPublishVersion},
      {"GET", "versions", Action::kListVersionsByFunction},
      {"POST", "invocations", Action::kInvoke},
  };
  bool found = false;
  for (const Row& row : urlApi ? std::span<const Row>(kUrlRows) : std::span<const Row>(kRows))
    if (row.method == method && row.sub == sub) {
      route.action = row.action;
      found = true;
    }
  if (!found) throw unknown();
  if (auto qualifier = route.queryValue("Qualifier")) {
    if (!route.qualifier.empty() && route.qualifier != *qualifier)
      throw badParameter(
          "The derived qualifier from the function name does not match the "
          "specified qualifier.");
    route.qualifier = *qualifier;
  }
  return route;
}

uint64_t versionOfQualifier(const std::string& qualifier, const std::string& arn) {
  if (qualifier.empty() || qualifier == "$LATEST") return 0;
  uint64_t version = 0;
  for (char c : qualifier) {
    if (c < '0' || c > '9' || version > (UINT64_MAX - 9) / 10)
      throw notFound("Function not found: " + arn +
                     " (thatch has numbered versions and "
                     "$LATEST, no aliases)");
    version = version * 10 + uint64_t(c - '0');
  }
  if (version == 0) throw notFound("Function not found: " + arn);
  return version;
}

std::string Arns::layer(const thatch::LayerRef& layer) const {
  return "arn:aws:lambda:" + region + ":" + accountId + ":layer:" + layer.name + ":" +
         std::to_string(layer.version);
}

std::string Arns::function(const std::string& name, const std::string& qualifier) const {
  std::string arn = "arn:aws:lambda:" + region + ":" + accountId + ":function:" + name;
  return qualifier.empty() ? arn : arn + ":" + qualifier;
}

std::string functionConfiguration(const supervisor::FunctionVersion& version, bool asLatest,
                                  const Arns& arns, const supervisor::LimitsConfig& defaults) {
  const thatch::FunctionConfig& config = version.config;
  std::string label = asLatest ? "$LATEST" : std::to_string(version.version);
  auto timeout = config.timeout.count() ? config.timeout : defaults.timeout;
  uint64_t memory = config.memoryBytes ? config.memoryBytes : defaults.memoryBytes;
  JsonWriter json;
  json.beginObject();
  json.key("FunctionName").stringValue(version.name);
  json.key("FunctionArn").stringValue(arns.function(version.name, asLatest ? "" : label));
  json.key("Runtime").stringValue(config.runtime);
  json.key("Role").stringValue("arn:aws:iam::" + arns.accountId + ":role/thatch-function");
  json.key("Handler").stringValue(config.handler);
  json.key("CodeSize").unsignedValue(version.codeBytes);
  json.key("Description").stringValue("");
  // Lambda's timeout is whole seconds; a thatch function's may be finer.
  json.key("Timeout").unsignedValue(uint64_t((timeout.count() + 999) / 1000));
  json.key("MemorySize").unsignedValue(memory >> 20);
  json.key("LastModified").stringValue(isoTime(version.createdUnixMs));
  json.key("Version").stringValue(label);
  if (!config.env.empty()) {
    json.key("Environment").beginObject().key("Variables").beginObject();
    for (const auto& [key, value] : config.env) json.key(key).stringValue(value);
    json.endObject().endObject();
  }
  if (!config.layers.empty()) {
    json.key("Layers").beginArray();
    for (const thatch::LayerRef& layer : config.layers)
      json.beginObject().key("Arn").stringValue(arns.layer(layer)).endObject();
    json.endArray();
  }
  json.key("State").stringValue("Active");
  json.key("LastUpdateStatus").stringValue("Successful");
  json.key("PackageType").stringValue("Zip");
  json.key("Architectures").beginArray().stringValue("x86_64").endArray();
  json.endObject();
  return json.text();
}

FunctionRequest readCreateFunction(std::string_view body, const thatch::FunctionConfig& defaults) {
  Document document(body);
  FunctionRequest request;
  request.config = defaults;
  std::optional<std::string> name = stringMember(document.root(), "FunctionName");
  if (!name) throw badParameter("FunctionName is required");
  Route named{};
  readFunctionName(*name, named);
  if (!named.qualifier.empty())
    throw badParameter("FunctionName: a new function's name has no qualifier");
  request.name = named.function;
  if (!stringMember(document.root(), "Handler")) throw badParameter("Handler is required");
  if (!stringMember(document.root(), "Runtime")) throw badParameter("Runtime is required");
  readConfiguration(document.root(), request.config);
  auto code = member(document.root(), "Code");
  if (!code || !code->isObject()) throw badParameter("Code is required: {\"ZipFile\": base64}");
  request.zipFile = zipFileOf(*code);
  request.publish = boolMember(document.root(), "Publish").value_or(false);
  return request;
}

FunctionRequest readUpdateConfiguration(std::string_view body, const thatch::FunctionConfig& now) {
  Document document(body);
  FunctionRequest request;
  request.config = now;
  readConfiguration(document.root(), request.config);
  return request;
}

FunctionRequest readUpdateCode(std::string_view body) {
  Document document(body);
  FunctionRequest request;
  request.zipFile = zipFileOf(document.root());
  request.publish = boolMember(document.root(), "Publish").value_or(false);
  request.dryRun = boolMember(document.root(), "DryRun").value_or(false);
  return request;
}

UrlConfigRequest readUrlConfig(std::string_view body, bool create) {
  Document document(body);
  UrlConfigRequest request;
  request.authType = stringMember(document.root(), "AuthType").value_or("");
  if (create && request.authType.empty())
    throw badParameter("AuthType is required: NONE or AWS_IAM");
  if (!request.authType.empty() && request.authType != "NONE" && request.authType != "AWS_IAM")
    throw badParameter("1 validation error detected: Value " + base::quoted(request.authType, 32) +
                       " at 'authType' failed to satisfy constraint: Member must satisfy enum "
                       "value set: [NONE, AWS_IAM]");
  request.payloadFormat = stringMember(document.root(), "PayloadFormatVersion").value_or("");
  if (!request.payloadFormat.empty() && request.payloadFormat != "2.0" &&
      request.payloadFormat != "1.0")
    throw badParameter("PayloadFormatVersion must be \"2.0\" or \"1.0\", not " +
                       base::quoted(request.payloadFormat, 16));
  if (auto cors = member(document.root(), "Cors"); cors && !cors->isNull())
    throw badParameter("Cors: thatch's function URLs do not answer CORS; the function may");
  if (auto mode = stringMember(document.root(), "InvokeMode"); mode && *mode != "BUFFERED")
    throw badParameter("InvokeMode: thatch's function URLs are BUFFERED only");
  return request;
}

std::string functionUrlConfig(const UrlConfig& config, bool withModified) {
  JsonWriter json;
  json.beginObject();
  json.key("FunctionUrl").stringValue(config.functionUrl);
  json.key("FunctionArn").stringValue(config.functionArn);
  json.key("AuthType").stringValue(config.authType);
  json.key("CreationTime").stringValue(isoTime(config.createdUnixMs));
  if (withModified) json.key("LastModifiedTime").stringValue(isoTime(config.modifiedUnixMs));
  json.key("InvokeMode").stringValue("BUFFERED");
  json.key("PayloadFormatVersion").stringValue(config.payloadFormat);
  json.endObject();
  return json.text();
}

std::vector<std::string> stackTraceOf(std::string_view traceback) {
  std::vector<std::string> frames;
  for (std::string_view line : split(traceback, '\n')) {
    if (line.substr(0, 7) == "  File ") {
      frames.emplace_back(line);
      frames.back() += '\n';
    } else if (!frames.empty() && line.substr(0, 4) == "    ") {
      frames.back() += std::string(line) + '\n';
    }
  }
  return frames;
}

Reply invokeReply(const supervisor::InvokeResult& result, const std::string& requestId,
                  const std::string& executedVersion, bool tail, std::chrono::milliseconds timeout,
                  const std::string& arn) {
  Reply reply;
  std::string requestTag = "RequestId: " + requestId + " Error: ";
  switch (result.status) {
    case Status::kOk:
      reply.body = result.payload.empty() ? "null" : result.payload;
      break;
    case Status::kHandlerError:
      reply = functionError(result.errorType, result.errorMessage, requestId,
                            stackTraceOf(result.traceback));
      break;
    case Status::kTimeout: {
      char seconds[32];
      snprintf(seconds, sizeof seconds, "%.2f", double(timeout.count()) / 1000);
      reply = functionError("Sandbox.Timedout",
                            requestTag + "Task timed out after " + seconds + " seconds", requestId);
      break;
    }
    case Status::kOutOfMemory:
      reply = functionError(
          "Runtime.OutOfMemory",
          requestTag + "Runtime exited with error: signal: killed (" + result.errorMessage + ")",
          requestId);
      break;
    case Status::kTooManyProcesses:
    case Status::kCrashed:
      reply = functionError("Runtime.ExitError",
                            requestTag + "Runtime exited with error: " + result.errorMessage,
                            requestId);
      break;
    case Status::kResultTooLarge:
      reply = functionError("Function.ResponseSizeTooLarge", result.errorMessage, requestId);
      break;
    case Status::kStartFailed:
      if (result.errorType.empty())  // thatch could not start a sandbox: not the function's
        return ApiError(500, "ServiceException", result.errorMessage).reply();
      reply = functionError(startFailureType(result.errorType), result.errorMessage, requestId,
                            stackTraceOf(result.traceback));
      break;
    case Status::kBadRequest:
      return badContent(result.errorMessage).reply();
    case Status::kOverloaded:
      return ApiError(429, "TooManyRequestsException",
                      "Rate Exceeded. (" + result.errorMessage + ")")
          .reply();
    case Status::kNotFound:
      return notFound("Function not found: " + arn).reply();
    case Status::kShuttingDown:
      return ApiError(503, "ServiceException", result.errorMessage).reply();
  }
  reply.headers.emplace_back("X-Amz-Executed-Version", executedVersion);
  if (tail) {
    std::string_view logs = result.logs;
    if (logs.size() > kTailBytes) logs = logs.substr(logs.size() - kTailBytes);
    kj::String encoded = kj::encodeBase64(
        kj::ArrayPtr<const kj::byte>(reinterpret_cast<const kj::byte*>(logs.data()), logs.size()));
    reply.headers.emplace_back("X-Amz-Log-Result", std::string(encoded.cStr()));
  }
  return reply;
}

}  // namespace thatchd::lambda
