// thatchd's Lambda-compatible HTTP API (AWS Lambda's 2015-03-31 REST API,
// what the AWS CLI and the SDKs speak), served with kj-http on the daemon's
// event loop beside the Cap'n Proto API: the same registry, supervisor,
// stager and limits. Requests are authenticated with AWS Signature Version
// 4 against the config's [[access_key]]s (daemon/sigv4.h); the documents
// and errors are daemon/lambda_shapes.h's. docs/lambda.md says what maps
// to what and what differs from AWS. The same listener serves function
// URLs (daemon/function_url.h, docs/triggers.md#function-urls).
#pragma once

#include <kj/async-io.h>
#include <kj/compat/http.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "daemon/daemon.h"
#include "daemon/function_url.h"
#include "daemon/lambda_shapes.h"
#include "daemon/listeners.h"
#include "daemon/triggers.h"
#include "supervisor/event_log.h"

namespace thatchd {

class LambdaApi final {
 public:
  // Accepts on `listener` (Listeners::http()) and serves with `daemon`;
  // both must outlive it.
  LambdaApi(Listeners::Listener& listener, Daemon& daemon, kj::AsyncIoContext& io,
            supervisor::EventLog::Sink logSink = {});
  ~LambdaApi();  // closes every connection, cancelling its calls
  LambdaApi(const LambdaApi&) = delete;
  LambdaApi& operator=(const LambdaApi&) = delete;

  // No more connections; those open keep being served.
  void stopListening();

  size_t connectionCount() const { return connections_; }

 private:
  struct Request;     // one request, read
  struct UrlRequest;  // one request to a function URL
  class Connection;   // what serves one connection: knows the client's address
  using Response = kj::HttpService::Response;

  kj::Promise<void> acceptLoop();
  kj::Promise<void> request(kj::HttpMethod method, kj::StringPtr url,
                            const kj::HttpHeaders& headers, kj::AsyncInputStream& body,
                            Response& response, const std::string& peer);
  kj::Promise<lambda::Reply> serve(Request& request);
  // GET /metrics and GET /healthz, routed before the Lambda API's paths
  // and not signed (Prometheus cannot sign with SigV4); docs/lambda.md#metrics.
  kj::Promise<void> serveOperator(kj::HttpMethod method, std::string_view path,
                                  const kj::HttpHeaders& headers, Response& response);
  // Whether this request may read /metrics or /healthz.
  bool mayReadOperatorEndpoint(std::string_view path, const kj::HttpHeaders& headers) const;
  std::string renderMetricsNow() const;
  // Why the daemon does not serve now ("" when it does): /healthz.
  std::string healthProblem() const;
  kj::Promise<void> sendText(Response& response, unsigned status, const char* contentType,
                             std::string body);
  kj::Promise<void> send(Response& response, lambda::Reply reply, const std::string& requestId);

  // Throws ApiError 403 unless the request is signed by a key that may do
  // its action (or is unsigned and [lambda] anonymous allows it), and 404,
  // as for a function that does not exist, if it names one the key may not
  // see; sets request.grants. `early`: before the body is read, only
  // whether the key could be valid.
  void authorize(Request& request, bool early) const;
  // What a function the key may not see answers: what it would if there
  // were no such function.
  [[noreturn]] void notFoundFor(const lambda::Route& route) const;
  // The most a request of this action may send.
  uint64_t bodyLimit(lambda::Action action) const;

  // A request to a function URL (docs/triggers.md#function-urls).
  kj::Promise<void> serveUrl(function_url::Target target, kj::HttpMethod method, kj::StringPtr url,
                             const kj::HttpHeaders& headers, kj::AsyncInputStream& body,
                             Response& response, const std::string& peer);
  kj::Promise<function_url::HttpResponse> invokeUrl(UrlRequest& request);
  // The access key that signed a request to an AWS_IAM URL, if it may
  // invoke `function`; "" if not (answered 403).
  std::string urlSigner(const UrlRequest& request) const;
  kj::Promise<void> sendUrl(Response& response, function_url::HttpResponse answer, bool head,
                            const std::string& requestId);
  // The secret of an [[access_key]], or null.
  const std::string* secretOf(std::string_view accessKeyId) const;

  // The actions.
  kj::Promise<lambda::Reply> invoke(Request& request);
  kj::Promise<lambda::Reply> createFunction(Request& request);
  kj::Promise<lambda::Reply> updateCode(Request& request);
  kj::Promise<lambda::Reply> updateConfiguration(Request& request);
  lambda::Reply getFunction(const Request& request, bool configurationOnly) const;
  lambda::Reply listFunctions(const Request& request) const;
  lambda::Reply listVersions(const Request& request) const;
  lambda::Reply publishVersion(const Request& request) const;
  lambda::Reply deleteFunction(const Request& request);
  lambda::Reply createUrlConfig(const Request& request);
  lambda::Reply getUrlConfig(const Request& request) const;
  lambda::Reply updateUrlConfig(const Request& request);
  lambda::Reply deleteUrlConfig(const Request& request);
  lambda::Reply listUrlConfigs(const Request& request) const;
  // The function's URL trigger; ResourceNotFoundException if it has none
  // (or the function does not exist).
  const Trigger& urlTriggerOrNotFound(const lambda::Route& route) const;
  lambda::UrlConfig urlConfigOf(const Trigger& trigger) const;
  // Stages `work` and commits it as the next version of `name`, with the
  // config `configOf` gives at commit time (the latest's may have changed
  // while the code was staged); `mustBeNew`: CreateFunction. Resolves to
  // `answer`'s reply for the new version, or to the refusal.
  kj::Promise<lambda::Reply> deploy(
      std::string name, Stager::Work work,
      std::function<thatch::FunctionConfig(const std::optional<supervisor::FunctionVersion>&)>
          configOf,
      bool mustBeNew, std::function<lambda::Reply(const supervisor::FunctionVersion&)> answer);

  supervisor::FunctionVersion versionOrNotFound(const std::string& name,
                                                const std::string& qualifier) const;
  std::string newRequestId();
  // In the current config's region and account (they reload).
  lambda::Arns arns() const;

  Listeners::Listener& listener_;
  Daemon& daemon_;
  kj::AsyncIoContext& io_;
  supervisor::EventLog log_;
  kj::Own<kj::HttpHeaderTable> headerTable_;
  struct HeaderIds;
  kj::Own<HeaderIds> ids_;
  kj::Own<kj::HttpServer> server_;
  std::mt19937_64 random_;
  size_t connections_ = 0;
  kj::Promise<void> accepting_ = nullptr;
  kj::Own<kj::TaskSet> tasks_;  // the connections
};

}  // namespace thatchd
