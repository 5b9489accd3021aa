// GCC 12 reports kj::ExceptionOr<Reply>'s strings as maybe-uninitialized in
// immediate promises: a false positive (see supervisor/supervisor.cc).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "daemon/lambda_api.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ctime>

#include "base/json.h"
#include "base/text.h"
#include "base/units.h"
#include "daemon/http_connection.h"
#include "daemon/metrics.h"
#include "daemon/process_metrics.h"
#include "daemon/sigv4.h"
#include "supervisor/messages.h"

namespace thatchd {

using lambda::Action;
using lambda::ApiError;
using lambda::Reply;

namespace {

supervisor::StderrTaskErrors httpErrors("lambda_api");

constexpr uint64_t kSmallBodyBytes = 64 << 10;           // a configuration, a publish
constexpr uint64_t kEventPayloadBytes = 256 << 10;       // Lambda's limit for Event invokes
constexpr unsigned kDefaultPage = 50, kMaxPage = 10000;  // ListFunctions' MaxItems, as Lambda's

ApiError conflict(const std::string& why) {
  return ApiError(409, "ResourceConflictException", why);
}

ApiError tooLarge(uint64_t limit, const char* operation) {
  return ApiError(413, "RequestTooLargeException",
                  "Request must be smaller than " + std::to_string(limit + 1) + " bytes for the " +
                      operation + " operation (at most " + std::to_string(limit) + ")");
}

// A staging or deploy failure as the Lambda client sees it.
ApiError deployFailure(const kj::Exception& e) {
  std::string message = e.getDescription().cStr();
  if (e.getType() == kj::Exception::Type::OVERLOADED)
    return ApiError(429, "TooManyRequestsException", message);
  return lambda::badParameter(message);
}

unsigned pageSize(const lambda::Route& route) {
  std::optional<std::string> text = route.queryValue("MaxItems");
  if (!text) return kDefaultPage;
  unsigned value = 0;
  bool ok = !text->empty() && text->size() <= 5;
  for (char c : *text) ok = ok && c >= '0' && c <= '9';
  if (ok) value = unsigned(std::stoul(*text));
  if (!ok || value < 1 || value > kMaxPage)
    throw lambda::badParameter("MaxItems must be from 1 to " + std::to_string(kMaxPage));
  return value;
}

// The client's address, as the event's sourceIp; "" when the stream has none.
std::string peerOf(kj::AsyncIoStream& stream) {
  struct sockaddr_storage address {};
  kj::uint length = sizeof address;
  try {
    stream.getpeername(reinterpret_cast<struct sockaddr*>(&address), &length);
  } catch (const kj::Exception&) {
    return "";
  }
  char text[INET6_ADDRSTRLEN] = "";
  if (address.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<struct sockaddr_in*>(&address)->sin_addr, text,
              sizeof text);
  else if (address.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<struct sockaddr_in6*>(&address)->sin6_addr, text,
              sizeof text);
  return text;
}

}  // namespace

class LambdaApi::Connection final : public kj::HttpService {
 public:
  Connection(LambdaApi& api, std::string peer) : api_(api), peer_(std::move(peer)) {}
  kj::Promise<void> request(kj::HttpMethod method, kj::StringPtr url,
                            const kj::HttpHeaders& headers, kj::AsyncInputStream& body,
                            Response& response) override {
    return api_.request(method, url, headers, body, response, peer_);
  }

 private:
  LambdaApi& api_;
  std::string peer_;
};

struct LambdaApi::HeaderIds {
  explicit HeaderIds(kj::HttpHeaderTable::Builder& builder)
      : authorization(builder.add("Authorization")),
        invocationType(builder.add("X-Amz-Invocation-Type")),
        logType(builder.add("X-Amz-Log-Type")) {}
  kj::HttpHeaderId authorization, invocationType, logType;
};

struct LambdaApi::Request {
  std::string method;
  std::string target;  // as sent: the signature covers it
  lambda::Route route;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string requestId;
  std::string invocationType, logType;
  bool signedRequest = false;
  supervisor::Grants grants;  // the key's, once authorize() has checked it
};

LambdaApi::LambdaApi(Listeners::Listener& listener, Daemon& daemon, kj::AsyncIoContext& io,
                     supervisor::EventLog::Sink logSink)
    : listener_(listener),
      daemon_(daemon),
      io_(io),
      log_(daemon.config().logFormat == "json" ? supervisor::EventLog::Format::kJson
                                               : supervisor::EventLog::Format::kText,
           std::move(logSink)),
      tasks_(kj::heap<kj::TaskSet>(httpErrors)) {
  kj::HttpHeaderTable::Builder builder;
  ids_ = kj::heap<HeaderIds>(builder);
  headerTable_ = builder.build();
  server_ = kj::heap<kj::HttpServer>(io.provider->getTimer(), *headerTable_,
                                     [this](kj::AsyncIoStream& stream) -> kj::Own<kj::HttpService> {
                                       return kj::heap<Connection>(*this, peerOf(stream));
                                     });
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, 0) != sizeof seed) seed = uint64_t(time(nullptr));
  random_.seed(seed);
  daemon.triggers().setHttpAddress(listener.address);
  accepting_ = acceptLoop().eagerlyEvaluate(nullptr);
}

LambdaApi::~LambdaApi() {
  accepting_ = nullptr;
  tasks_ = nullptr;  // the connections, and their requests
  server_ = nullptr;
}

void LambdaApi::stopListening() {
  accepting_ = nullptr;
}

kj::Promise<void> LambdaApi::acceptLoop() {
  return listener_.receiver->accept().then(
      [this](kj::Own<kj::AsyncIoStream> stream) {
        if (connections_ >= daemon_.config().lambda.maxConnections) {
          log_.write("http_connection_refused",
                     {{"open", connections_}, {"limit", "lambda.max_connections"}});
          return acceptLoop();  // `stream` closes here
        }
        ++connections_;
        tasks_->add(server_->listenHttp(httpConnection(io_.unixEventPort, kj::mv(stream)))
                        .catch_([](kj::Exception&&) {})  // a client that went away
                        .attach(kj::defer([this]() { --connections_; })));
        return acceptLoop();
      },
      [this](kj::Exception&& e) {
        // Out of file descriptors, usually: refuse for a moment, then go on.
        log_.write("accept_failed",
                   {{"address", listener_.address}, {"error", e.getDescription().cStr()}});
        return io_.provider->getTimer().afterDelay(100 * kj::MILLISECONDS).then([this]() {
          return acceptLoop();
        });
      });
}

lambda::Arns LambdaApi::arns() const {
  const supervisor::LambdaConfig& lambda = daemon_.config().lambda;
  return {lambda.region, lambda.accountId};
}

std::string LambdaApi::newRequestId() {
  uint64_t high = random_();
  return base::uuidText(high, random_());
}

kj::Promise<void> LambdaApi::request(kj::HttpMethod method, kj::StringPtr url,
                                     const kj::HttpHeaders& headers, kj::AsyncInputStream& body,
                                     Response& response, const std::string& peer) {
  std::string_view path(url.begin(), url.findFirst('?').orDefault(url.size()));
  kj::StringPtr host = headers.get(kj::HttpHeaderId::HOST).orDefault("");
  function_url::Target target = function_url::targetOf({host.begin(), host.size()}, path);
  if (target.found) return serveUrl(std::move(target), method, url, headers, body, response, peer);
  if (path == "/metrics" || path == "/healthz")
    return serveOperator(method, path, headers, response);
  auto request = kj::heap<Request>();
  request->requestId = newRequestId();
  request->method = kj::str(method).cStr();
  request->target = url.cStr();
  headers.forEach([&](kj::StringPtr name, kj::StringPtr value) {
    request->headers.emplace_back(name.cStr(), value.cStr());
  });
  KJ_IF_MAYBE (type, headers.get(ids_->invocationType)) request->invocationType = type->cStr();
  KJ_IF_MAYBE (type, headers.get(ids_->logType)) request->logType = type->cStr();
  request->signedRequest = headers.get(ids_->authorization) != nullptr;
  // Everything in `headers` and `url` is copied: they go on the first read.
  uint64_t limit = 0;
  try {
    request->route = lambda::route(request->method, request->target);
    authorize(*request, true);
    limit = bodyLimit(request->route.action);
    KJ_IF_MAYBE (length, body.tryGetLength()) {
      if (*length > limit) throw tooLarge(limit, lambda::iamActionName(request->route.action) + 7);
    }
  } catch (const ApiError& e) {
    return send(response, e.reply(), request->requestId);
  }
  Request& r = *request;
  return body.readAllText(limit + 1)
      .then([this, &r, limit](kj::String text) -> kj::Promise<Reply> {
        if (text.size() > limit)
          return tooLarge(limit, lambda::iamActionName(r.route.action) + 7).reply();
        r.body.assign(text.begin(), text.size());
        try {
          authorize(r, false);
        } catch (const ApiError& e) {
          return e.reply();
        }
        return serve(r);
      })
      .catch_([](kj::Exception&& e) -> Reply {
        return ApiError(500, "ServiceException", e.getDescription().cStr()).reply();
      })
      .then(
          [this, &response, &r](Reply reply) { return send(response, kj::mv(reply), r.requestId); })
      .attach(kj::mv(request));
}

kj::Promise<void> LambdaApi::send(Response& response, Reply reply, const std::string& requestId) {
  kj::HttpHeaders headers(*headerTable_);
  if (reply.status != 204) headers.set(kj::HttpHeaderId::CONTENT_TYPE, "application/json");
  headers.add("x-amzn-RequestId", requestId.c_str());
  for (const auto& [name, value] : reply.headers) headers.add(name.c_str(), value.c_str());
  if (reply.status == 204) {
    response.send(204, lambda::reasonPhrase(204), headers, uint64_t(0));
    return kj::READY_NOW;
  }
  auto stream =
      response.send(reply.status, lambda::reasonPhrase(reply.status), headers, reply.body.size());
  auto body = kj::heap<std::string>(std::move(reply.body));
  auto written = stream->write(body->data(), body->size());
  return written.attach(kj::mv(stream), kj::mv(body));
}

// --- /metrics and /healthz ---------------------------------------------------

kj::Promise<void> LambdaApi::serveOperator(kj::HttpMethod method, std::string_view path,
                                           const kj::HttpHeaders& headers, Response& response) {
  constexpr char kText[] = "text/plain; charset=utf-8";
  if (method != kj::HttpMethod::GET) return sendText(response, 405, kText, "only GET\n");
  if (!mayReadOperatorEndpoint(path, headers)) return sendText(response, 403, kText, "forbidden\n");
  if (path == "/healthz") {
    std::string problem = healthProblem();
    if (problem.empty()) return sendText(response, 200, kText, "ok\n");
    return sendText(response, 503, kText, problem + "\n");
  }
  std::string text;
  try {
    text = renderMetricsNow();
  } catch (const std::exception& e) {
    return sendText(response, 500, kText, std::string(e.what()) + "\n");
  }
  return sendText(response, 200, kMetricsContentType, std::move(text));
}

bool LambdaApi::mayReadOperatorEndpoint(std::string_view path,
                                        const kj::HttpHeaders& headers) const {
  // /healthz names nothing, and a load balancer's probe carries no token.
  // /metrics names every function: a bearer token (Prometheus cannot sign
  // with SigV4) of a [[client]] allowed "metrics" or "admin".
  if (path == "/healthz" || daemon_.config().lambda.anonymous) return true;
  KJ_IF_MAYBE (authorization, headers.get(ids_->authorization))
    return mayScrapeMetrics(daemon_.clients(),
                            std::string_view(authorization->begin(), authorization->size()));
  return false;
}

std::string LambdaApi::renderMetricsNow() const {
  DaemonMetrics extra;
  extra.version = THATCH_VERSION;
  extra.eventQueueDepth = daemon_.events().pending();
  extra.process = readProcessMetrics();
  for (const Trigger* trigger : daemon_.triggers().list()) {
    TriggerMetrics t{trigger->id, kindName(trigger->kind), trigger->function, trigger->enabled};
    if (const TriggerStats* s = daemon_.triggers().stats(trigger->id)) {
      t.deliveries = s->deliveries;
      t.messages = s->messages;
      t.failures = s->failures;
      t.skipped = s->skipped;
      t.missed = s->missed;
      t.lag = s->lag;
      t.deadLettered = s->deadLettered;
    }
    extra.triggers.push_back(std::move(t));
  }
  return renderMetrics(daemon_.supervisor().stats(), extra);
}

std::string LambdaApi::healthProblem() const {
  supervisor::Supervisor& supervisor = daemon_.supervisor();
  if (supervisor.draining()) return "draining: thatchd is shutting down";
  for (const supervisor::RuntimeConfig& runtime : daemon_.config().runtimes)
    for (unsigned i = 0; i < runtime.zygotes; ++i)
      if (supervisor.zygotePid(runtime.name, i) < 0)
        return "zygote " + std::to_string(i) + " of runtime " + runtime.name +
               " is not running (restarting)";
  return "";
}

kj::Promise<void> LambdaApi::sendText(Response& response, unsigned status, const char* contentType,
                                      std::string body) {
  kj::HttpHeaders headers(*headerTable_);
  headers.set(kj::HttpHeaderId::CONTENT_TYPE, contentType);
  if (status == 405) headers.add("Allow", "GET");
  auto stream = response.send(status, lambda::reasonPhrase(status), headers, body.size());
  auto owned = kj::heap<std::string>(std::move(body));
  auto written = stream->write(owned->data(), owned->size());
  return written.attach(kj::mv(stream), kj::mv(owned));
}

void LambdaApi::authorize(Request& request, bool early) const {
  const supervisor::Config& config = daemon_.config();
  Action action = request.route.action;
  if (!request.signedRequest) {
    if (config.lambda.anonymous) {
      request.grants = supervisor::allGrants();
      return;
    }
    throw ApiError(403, "MissingAuthenticationTokenException", "Missing Authentication Token");
  }
  auto secretOf = [this](std::string_view id) { return this->secretOf(id); };
  if (early) {
    // The signature covers the body, checked once it is read; a key that
    // cannot be one of ours is refused before that.
    std::string authorization;
    for (const auto& [name, value] : request.headers)
      if (strcasecmp(name.c_str(), "Authorization") == 0) authorization = value;
    size_t credential = authorization.find("Credential=");
    if (credential == std::string::npos) return;  // malformed: verify() says how
    size_t start = credential + 11, slash = authorization.find('/', start);
    if (slash != std::string::npos && !secretOf(authorization.substr(start, slash - start)))
      throw ApiError(403, "UnrecognizedClientException",
                     "The security token included in the request is invalid.");
    return;
  }
  sigv4::Request signedRequest{request.method, request.target, request.headers, request.body};
  auto verdict = sigv4::verify(signedRequest, secretOf, "lambda", int64_t(time(nullptr)));
  if (auto* refusal = std::get_if<sigv4::Refusal>(&verdict))
    throw ApiError(403, refusal->errorType, refusal->message);
  const sigv4::Verified& verified = std::get<sigv4::Verified>(verdict);
  if (!verified.bodySigned)
    throw ApiError(403, "InvalidSignatureException",
                   "thatch takes only signed payloads: X-Amz-Content-SHA256 UNSIGNED-PAYLOAD is "
                   "refused");
  for (const supervisor::AccessKey& key : config.accessKeys)
    if (key.id == verified.accessKeyId) request.grants = supervisor::grantsOf(key.allow);
  const std::string& function = request.route.function;
  if (!function.empty() && !request.grants.maySee(function)) notFoundFor(request.route);
  if (lambda::permits(request.grants, action, function)) return;
  std::string resource = request.route.function.empty() ? "arn:aws:lambda:" + arns().region + ":" +
                                                              arns().accountId + ":function:*"
                                                        : arns().function(request.route.function);
  throw ApiError(403, "AccessDeniedException",
                 "User: arn:aws:iam::" + arns().accountId + ":user/" + verified.accessKeyId +
                     " is not authorized to perform: " + lambda::iamActionName(action) +
                     " on resource: " + resource + " (its [[access_key]] does not allow \"" +
                     lambda::permissionOf(action) + "\")");
}

const std::string* LambdaApi::secretOf(std::string_view accessKeyId) const {
  for (const supervisor::AccessKey& key : daemon_.config().accessKeys)
    if (key.id == accessKeyId) return &key.secret;
  return nullptr;
}

void LambdaApi::notFoundFor(const lambda::Route& route) const {
  std::string arn = arns().function(route.function, route.qualifier);
  lambda::versionOfQualifier(route.qualifier, arn);  // a bad one is refused as it would be
  throw lambda::notFound("Function not found: " + arn);
}

uint64_t LambdaApi::bodyLimit(Action action) const {
  const supervisor::LimitsConfig& limits = daemon_.config().limits;
  switch (action) {
    case Action::kInvoke:
      return limits.payloadBytes;
    case Action::kCreateFunction:
    case Action::kUpdateFunctionCode:
      // The archive in base64, and the rest of the document.
      return (limits.archiveBytes + 2) / 3 * 4 + kSmallBodyBytes;
    default:
      return kSmallBodyBytes;
  }
}

kj::Promise<Reply> LambdaApi::serve(Request& request) {
  try {
    const lambda::Route& route = request.route;
    if (!route.function.empty()) {
      try {
        supervisor::validateFunctionName(route.function);
      } catch (const supervisor::DeployError& e) {
        throw lambda::badParameter(e.what());
      }
    }
    switch (route.action) {
      case Action::kInvoke:
        return invoke(request);
      case Action::kCreateFunction:
        return createFunction(request);
      case Action::kUpdateFunctionCode:
        return updateCode(request);
      case Action::kUpdateFunctionConfiguration:
        return updateConfiguration(request);
      case Action::kGetFunction:
        return getFunction(request, false);
      case Action::kGetFunctionConfiguration:
        return getFunction(request, true);
      case Action::kListFunctions:
        return listFunctions(request);
      case Action::kListVersionsByFunction:
        return listVersions(request);
      case Action::kPublishVersion:
        return publishVersion(request);
      case Action::kDeleteFunction:
        return deleteFunction(request);
      case Action::kCreateFunctionUrlConfig:
        return createUrlConfig(request);
      case Action::kGetFunctionUrlConfig:
        return getUrlConfig(request);
      case Action::kUpdateFunctionUrlConfig:
        return updateUrlConfig(request);
      case Action::kDeleteFunctionUrlConfig:
        return deleteUrlConfig(request);
      case Action::kListFunctionUrlConfigs:
        return listUrlConfigs(request);
    }
    throw ApiError(404, "UnknownOperationException", "no such operation");
  } catch (const ApiError& e) {
    return e.reply();
  }
}

supervisor::FunctionVersion LambdaApi::versionOrNotFound(const std::string& name,
                                                         const std::string& qualifier) const {
  std::string arn = arns().function(name, qualifier);
  uint64_t number = lambda::versionOfQualifier(qualifier, arn);
  supervisor::Registry& registry = daemon_.registry();
  std::optional<supervisor::FunctionVersion> version =
      number ? registry.get(name, number) : registry.latest(name);
  if (!version) throw lambda::notFound("Function not found: " + arn);
  return std::move(*version);
}

kj::Promise<Reply> LambdaApi::invoke(Request& request) {
  const lambda::Route& route = request.route;
  supervisor::FunctionVersion version = versionOrNotFound(route.function, route.qualifier);
  std::string type = request.invocationType.empty() ? "RequestResponse" : request.invocationType;
  if (type != "RequestResponse" && type != "Event" && type != "DryRun")
    throw lambda::badParameter("X-Amz-Invocation-Type must be RequestResponse, Event or DryRun");
  if (request.logType != "" && request.logType != "None" && request.logType != "Tail")
    throw lambda::badParameter("X-Amz-Log-Type must be None or Tail");
  if (type == "DryRun") return Reply{204, {}, {}};
  std::string payload = std::move(request.body);
  if (!version.config.raw) {
    if (payload.empty()) payload = "{}";  // as Lambda: no payload is an empty event
    if (!base::isJson(payload))
      throw lambda::badContent(
          "Could not parse request body into json: the payload is not "
          "one JSON value (RFC 8259) in UTF-8");
  }
  uint64_t number = route.qualifier.empty() || route.qualifier == "$LATEST" ? 0 : version.version;
  if (type == "Event") {
    if (payload.size() > kEventPayloadBytes) throw tooLarge(kEventPayloadBytes, "InvokeAsync");
    return daemon_.events()
        .enqueue({route.function, number, std::move(payload), request.requestId})
        .then(
            []() {
              return Reply{202, {}, {}};
            },
            [](kj::Exception&& e) -> Reply {
              if (e.getType() == kj::Exception::Type::OVERLOADED)
                return ApiError(429, "TooManyRequestsException", e.getDescription().cStr()).reply();
              return ApiError(500, "ServiceException", e.getDescription().cStr()).reply();
            });
  }
  auto timeout =
      version.config.timeout.count() ? version.config.timeout : daemon_.config().limits.timeout;
  std::string executed = number ? std::to_string(number) : "$LATEST";
  return daemon_.supervisor()
      .invoke(route.function, std::move(payload), number)
      .then([requestId = request.requestId, executed, tail = request.logType == "Tail", timeout,
             arn = arns().function(route.function, route.qualifier)](
                supervisor::InvokeResult result) {
        return lambda::invokeReply(result, requestId, executed, tail, timeout, arn);
      });
}

kj::Promise<Reply> LambdaApi::deploy(
    std::string name, Stager::Work work,
    std::function<thatch::FunctionConfig(const std::optional<supervisor::FunctionVersion>&)>
        configOf,
    bool mustBeNew, std::function<Reply(const supervisor::FunctionVersion&)> answer) {
  return daemon_.stager()
      .run(std::move(work))
      .then(
          [this, name, configOf = std::move(configOf), mustBeNew,
           answer = std::move(answer)](std::unique_ptr<supervisor::StagedCode> staged) -> Reply {
            supervisor::Registry& registry = daemon_.registry();
            std::optional<supervisor::FunctionVersion> latest = registry.latest(name);
            std::optional<ApiError> refusal;
            if (mustBeNew && latest) refusal = conflict("Function already exist: " + name);
            if (!mustBeNew && !latest)
              refusal = lambda::notFound("Function not found: " + arns().function(name));
            if (refusal) {
              registry.discard(*staged);
              daemon_.stager().removeTrees(registry.takeRemoved());
              return refusal->reply();
            }
            try {
              return answer(commitDeploy(daemon_.supervisor(), registry, daemon_.stager(), name,
                                         configOf(latest), *staged));
            } catch (const DeployRefused& e) {
              return lambda::badParameter(e.what()).reply();
            } catch (const ApiError& e) {
              return e.reply();
            }
          },
          // Staging failed: bad code, or the stager is full.
          [](kj::Exception&& e) { return deployFailure(e).reply(); });
}

namespace {

void validate(const thatch::FunctionConfig& config, const std::vector<std::string>& runtimes) {
  try {
    supervisor::validateFunctionConfig(config);
  } catch (const supervisor::DeployError& e) {
    throw lambda::badParameter(e.what());
  }
  if (std::find(runtimes.begin(), runtimes.end(), config.runtime) == runtimes.end()) {
    std::string list;
    for (const std::string& name : runtimes) list += (list.empty() ? "" : ", ") + name;
    throw lambda::badParameter("Runtime " + base::quoted(config.runtime, 64) +
                               " is not one of this thatchd's: " + list);
  }
}

}  // namespace

kj::Promise<Reply> LambdaApi::createFunction(Request& request) {
  lambda::FunctionRequest create = lambda::readCreateFunction(request.body, {});
  try {
    supervisor::validateFunctionName(create.name);
  } catch (const supervisor::DeployError& e) {
    throw lambda::badParameter(e.what());
  }
  validate(create.config, daemon_.supervisor().runtimeNames());
  if (daemon_.registry().latest(create.name))
    throw conflict("Function already exist: " + create.name);
  supervisor::StagingArea area = daemon_.registry().stagingArea();
  bool publish = create.publish;
  auto work = [area, zip = std::move(create.zipFile)]() { return area.archiveBytes(zip); };
  auto config = create.config;
  return deploy(
      create.name, std::move(work), [config](const auto&) { return config; }, true,
      [this, publish](const supervisor::FunctionVersion& version) {
        return Reply{
            201,
            {},
            lambda::functionConfiguration(version, !publish, arns(), daemon_.config().limits)};
      });
}

kj::Promise<Reply> LambdaApi::updateCode(Request& request) {
  lambda::FunctionRequest update = lambda::readUpdateCode(request.body);
  supervisor::FunctionVersion latest = versionOrNotFound(request.route.function, "");
  if (update.dryRun)
    return Reply{
        200, {}, lambda::functionConfiguration(latest, true, arns(), daemon_.config().limits)};
  supervisor::StagingArea area = daemon_.registry().stagingArea();
  auto work = [area, zip = std::move(update.zipFile)]() { return area.archiveBytes(zip); };
  bool publish = update.publish;
  return deploy(
      request.route.function, std::move(work),
      [](const std::optional<supervisor::FunctionVersion>& now) { return now->config; }, false,
      [this, publish](const supervisor::FunctionVersion& version) {
        return Reply{
            200,
            {},
            lambda::functionConfiguration(version, !publish, arns(), daemon_.config().limits)};
      });
}

kj::Promise<Reply> LambdaApi::updateConfiguration(Request& request) {
  supervisor::FunctionVersion latest = versionOrNotFound(request.route.function, "");
  // Checked now against the latest, applied at commit to whatever is latest then.
  validate(lambda::readUpdateConfiguration(request.body, latest.config).config,
           daemon_.supervisor().runtimeNames());
  supervisor::StagingArea area = daemon_.registry().stagingArea();
  auto work = [area, dir = latest.codeDir]() { return area.directory(dir); };
  return deploy(
      request.route.function, std::move(work),
      [body = request.body](const std::optional<supervisor::FunctionVersion>& now) {
        return lambda::readUpdateConfiguration(body, now->config).config;
      },
      false,
      [this](const supervisor::FunctionVersion& version) {
        return Reply{
            200, {}, lambda::functionConfiguration(version, true, arns(), daemon_.config().limits)};
      });
}

Reply LambdaApi::getFunction(const Request& request, bool configurationOnly) const {
  const lambda::Route& route = request.route;
  supervisor::FunctionVersion version = versionOrNotFound(route.function, route.qualifier);
  bool asLatest = route.qualifier.empty() || route.qualifier == "$LATEST";
  std::string configuration =
      lambda::functionConfiguration(version, asLatest, arns(), daemon_.config().limits);
  if (configurationOnly) return {200, {}, configuration};
  base::JsonWriter json;
  json.beginObject().key("Configuration").rawJson(configuration);
  // thatch keeps the unpacked tree, not the zip: there is nothing to download.
  json.key("Code").beginObject().key("RepositoryType").stringValue("thatch").endObject();
  json.endObject();
  return {200, {}, json.text()};
}

Reply LambdaApi::listFunctions(const Request& request) const {
  const lambda::Route& route = request.route;
  unsigned page = pageSize(route);
  bool all = route.queryValue("FunctionVersion").value_or("") == "ALL";
  std::string marker = route.queryValue("Marker").value_or("");
  supervisor::Registry& registry = daemon_.registry();
  const supervisor::LimitsConfig& limits = daemon_.config().limits;
  base::JsonWriter json;
  json.beginObject().key("Functions").beginArray();
  // Functions by name; with FunctionVersion=ALL each one's $LATEST, then its
  // versions: entries ordered by (name, version), $LATEST as version 0. A
  // marker, "NAME" or "NAME:VERSION", is the first entry not yet returned.
  std::pair<std::string, uint64_t> from{marker.substr(0, marker.find(':')), 0};
  if (size_t colon = marker.find(':'); colon != std::string::npos)
    from.second = std::strtoull(marker.c_str() + colon + 1, nullptr, 10);
  unsigned written = 0;
  std::string next;
  for (const std::string& name : registry.list()) {
    if (name < from.first || !next.empty() || !request.grants.maySee(name)) continue;
    std::vector<supervisor::FunctionVersion> versions = registry.versions(name);
    if (versions.empty()) continue;
    std::vector<uint64_t> entries{0};  // $LATEST
    if (all)
      for (const auto& version : versions) entries.push_back(version.version);
    for (uint64_t entry : entries) {
      if (std::make_pair(name, entry) < from) continue;
      if (written == page) {
        next = entry ? name + ":" + std::to_string(entry) : name;
        break;
      }
      const supervisor::FunctionVersion& version =
          entry ? *std::find_if(versions.begin(), versions.end(),
                                [entry](const auto& v) { return v.version == entry; })
                : versions.back();
      json.rawJson(lambda::functionConfiguration(version, entry == 0, arns(), limits));
      ++written;
    }
  }
  json.endArray();
  if (!next.empty()) json.key("NextMarker").stringValue(next);
  json.endObject();
  return {200, {}, json.text()};
}

Reply LambdaApi::listVersions(const Request& request) const {
  const lambda::Route& route = request.route;
  unsigned page = pageSize(route);
  std::vector<supervisor::FunctionVersion> versions = daemon_.registry().versions(route.function);
  if (versions.empty())
    throw lambda::notFound("Function not found: " + arns().function(route.function));
  std::string marker = route.queryValue("Marker").value_or("");
  const supervisor::LimitsConfig& limits = daemon_.config().limits;
  // $LATEST first, then the versions in ascending order; a marker is the
  // version to start at.
  std::vector<std::pair<std::string, std::string>> entries;
  entries.emplace_back("$LATEST",
                       lambda::functionConfiguration(versions.back(), true, arns(), limits));
  for (const auto& version : versions)
    entries.emplace_back(std::to_string(version.version),
                         lambda::functionConfiguration(version, false, arns(), limits));
  size_t start = 0;
  if (!marker.empty()) {
    while (start < entries.size() && entries[start].first != marker) ++start;
    if (start == entries.size())
      throw lambda::badParameter("Marker " + base::quoted(marker, 32) +
                                 " is not one this API gave");
  }
  base::JsonWriter json;
  json.beginObject().key("Versions").beginArray();
  size_t end = std::min(entries.size(), start + page);
  for (size_t i = start; i < end; ++i) json.rawJson(entries[i].second);
  json.endArray();
  if (end < entries.size()) json.key("NextMarker").stringValue(entries[end].first);
  json.endObject();
  return {200, {}, json.text()};
}

Reply LambdaApi::publishVersion(const Request& request) const {
  // Every deploy is already an immutable, numbered version: publishing
  // names the latest one, as Lambda does when nothing changed since.
  supervisor::FunctionVersion latest = versionOrNotFound(request.route.function, "");
  return {201, {}, lambda::functionConfiguration(latest, false, arns(), daemon_.config().limits)};
}

Reply LambdaApi::deleteFunction(const Request& request) {
  const lambda::Route& route = request.route;
  if (!route.qualifier.empty())
    throw lambda::badParameter(
        "thatch deletes a function with all its versions, not one version: old versions go "
        "by [registry] keep_versions");
  if (!daemon_.removeFunction(route.function))
    throw lambda::notFound("Function not found: " + arns().function(route.function));
  daemon_.stager().removeTrees(daemon_.registry().takeRemoved());
  return {204, {}, {}};
}

// --- function URL configurations (2021-10-31) --------------------------------

namespace {

// thatch's function URLs invoke $LATEST: there are no aliases to point at.
void refuseQualifier(const lambda::Route& route) {
  if (!route.qualifier.empty() && route.qualifier != "$LATEST")
    throw lambda::badParameter("Qualifier: a thatch function URL invokes $LATEST (no aliases)");
}

}  // namespace

lambda::UrlConfig LambdaApi::urlConfigOf(const Trigger& trigger) const {
  // The listener's own address: http_listen may ask for any port (":0").
  return {functionUrlAddress(listener_.address, arns().region, trigger.url.urlId),
          arns().function(trigger.function),
          trigger.url.authType,
          trigger.url.payloadFormat,
          trigger.createdUnixMs,
          trigger.createdUnixMs};
}

const Trigger& LambdaApi::urlTriggerOrNotFound(const lambda::Route& route) const {
  refuseQualifier(route);
  versionOrNotFound(route.function, "");
  const Trigger* trigger = daemon_.triggers().urlOf(route.function);
  if (!trigger) throw lambda::notFound("The resource you requested does not exist.");
  return *trigger;
}

Reply LambdaApi::createUrlConfig(const Request& request) {
  const lambda::Route& route = request.route;
  refuseQualifier(route);
  versionOrNotFound(route.function, "");
  lambda::UrlConfigRequest fields = lambda::readUrlConfig(request.body, true);
  if (daemon_.triggers().urlOf(route.function))
    throw conflict("Failed to create function url config for [functionArn = " +
                   arns().function(route.function) +
                   "]. Error message:  FunctionUrlConfig exists for this Lambda function");
  Trigger trigger;
  trigger.kind = TriggerKind::kUrl;
  trigger.function = route.function;
  trigger.url.authType = fields.authType;
  if (!fields.payloadFormat.empty()) trigger.url.payloadFormat = fields.payloadFormat;
  try {
    const Trigger& added = daemon_.triggers().add(std::move(trigger));
    return {201, {}, lambda::functionUrlConfig(urlConfigOf(added), false)};
  } catch (const TriggerError& e) {
    throw lambda::badParameter(e.what());
  }
}

Reply LambdaApi::getUrlConfig(const Request& request) const {
  return {
      200, {}, lambda::functionUrlConfig(urlConfigOf(urlTriggerOrNotFound(request.route)), true)};
}

Reply LambdaApi::updateUrlConfig(const Request& request) {
  const Trigger& trigger = urlTriggerOrNotFound(request.route);
  lambda::UrlConfigRequest fields = lambda::readUrlConfig(request.body, false);
  FunctionUrlSettings settings = trigger.url;
  if (!fields.authType.empty()) settings.authType = fields.authType;
  if (!fields.payloadFormat.empty()) settings.payloadFormat = fields.payloadFormat;
  try {
    const Trigger& updated = daemon_.triggers().updateUrl(trigger.id, settings);
    return {200, {}, lambda::functionUrlConfig(urlConfigOf(updated), true)};
  } catch (const TriggerError& e) {
    throw lambda::badParameter(e.what());
  }
}

Reply LambdaApi::deleteUrlConfig(const Request& request) {
  daemon_.triggers().remove(urlTriggerOrNotFound(request.route).id);
  return {204, {}, {}};
}

Reply LambdaApi::listUrlConfigs(const Request& request) const {
  const lambda::Route& route = request.route;
  versionOrNotFound(route.function, "");
  base::JsonWriter json;
  json.beginObject().key("FunctionUrlConfigs").beginArray();
  if (const Trigger* trigger = daemon_.triggers().urlOf(route.function))
    json.rawJson(lambda::functionUrlConfig(urlConfigOf(*trigger), true));
  json.endArray().endObject();
  return {200, {}, json.text()};
}

}  // namespace thatchd
