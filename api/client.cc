// The library behind include/thatch/thatch.h: a Cap'n Proto client of
// api/thatch.capnp, over a socket, or straight to a daemon in this process
// (daemon/embedded.cc builds that one).
#include <capnp/rpc-twoparty.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "api/client_impl.h"
#include "api/pack.h"
#include "api/thatch.capnp.h"
#include "api/wire.h"
#include "base/fd.h"
#include "base/socket_stream.h"

namespace thatch {

namespace schema = thatch::api;

namespace {

constexpr char kDefaultSocket[] = "/run/thatch/thatchd.sock";
// What the client accepts from its server: a result is bounded by the
// server's own limits, which the client does not know.
constexpr uint64_t kMaxAnswerWords = (1ull << 30) / 8;

using wire::bytes;
using wire::text;

// Cap'n Proto marks exceptions that crossed the connection; the user only
// needs what thatchd said.
Error toError(const kj::Exception& e) {
  std::string message = e.getDescription().cStr();
  constexpr std::string_view kRemote = "remote exception: ";
  while (message.rfind(kRemote, 0) == 0) message.erase(0, kRemote.size());
  if (e.getType() == kj::Exception::Type::DISCONNECTED)
    return Error(Error::Kind::kDisconnected, "lost the connection to thatchd: " + message);
  // thatchd's refusal for an unknown name starts so (docs/api.md).
  if (message.rfind(wire::kNoSuchFunction, 0) == 0 || message.rfind(wire::kNoSuchLayer, 0) == 0)
    return Error(Error::Kind::kNotFound, message);
  if (message == wire::kRefusedToken)
    return Error(Error::Kind::kRefused,
                 message + " (give a [[client]]'s token: THATCH_TOKEN, ConnectOptions::token)");
  return Error(Error::Kind::kRefused, message);
}

template <typename T>
T waitOrThrow(kj::Promise<T>&& promise, kj::WaitScope& waitScope) {
  try {
    return promise.wait(waitScope);
  } catch (const kj::Exception& e) {
    throw toError(e);
  }
}

FunctionInfo fromWire(schema::FunctionInfo::Reader in) {
  FunctionInfo info;
  info.name = text(in.getName());
  info.version = in.getVersion();
  info.config = wire::configFromWire(in.getConfig());
  info.createdUnixMs = in.getCreatedUnixMs();
  info.codeBytes = in.getCodeBytes();
  info.fileCount = in.getFileCount();
  return info;
}

LayerInfo fromWire(schema::LayerInfo::Reader in) {
  LayerInfo info;
  info.name = text(in.getName());
  info.version = in.getVersion();
  info.createdUnixMs = in.getCreatedUnixMs();
  info.codeBytes = in.getCodeBytes();
  info.fileCount = in.getFileCount();
  return info;
}

Result fromWire(schema::InvokeResult::Reader in) {
  Result result;
  result.status = wire::statusFromWire(in.getStatus());
  result.payload = bytes(in.getPayload());
  if (in.hasError()) {
    result.errorType = text(in.getError().getType());
    result.errorMessage = text(in.getError().getMessage());
    result.traceback = text(in.getError().getTraceback());
  }
  result.logs = bytes(in.getLogs());
  result.logsTruncated = in.getLogsTruncated();
  result.queued = std::chrono::nanoseconds(in.getTimings().getQueuedNs());
  result.start = std::chrono::nanoseconds(in.getTimings().getStartNs());
  result.run = std::chrono::nanoseconds(in.getTimings().getRunNs());
  result.cold = in.getCold();
  result.sandboxId = in.getSandboxId();
  result.version = in.getVersion();
  return result;
}

std::map<std::string, uint64_t> fromWire(capnp::List<schema::Counter>::Reader in) {
  std::map<std::string, uint64_t> counters;
  for (schema::Counter::Reader c : in) counters[text(c.getName())] = c.getValue();
  return counters;
}

Stats fromWire(schema::StatsResult::Reader in) {
  Stats stats;
  stats.invocationsByStatus = fromWire(in.getInvocationsByStatus());
  stats.killsByReason = fromWire(in.getKillsByReason());
  stats.coldStarts = in.getColdStarts();
  stats.warmStarts = in.getWarmStarts();
  stats.liveSandboxes = in.getLiveSandboxes();
  stats.idleSandboxes = in.getIdleSandboxes();
  stats.idleMemoryBytes = in.getIdleMemoryBytes();
  stats.startingSandboxes = in.getStartingSandboxes();
  stats.frozenSandboxes = in.getFrozenSandboxes();
  stats.evictions = in.getEvictions();
  stats.expirations = in.getExpirations();
  stats.queued = in.getQueued();
  stats.queueTimeouts = in.getQueueTimeouts();
  stats.zygoteRestarts = in.getZygoteRestarts();
  stats.sentAhead = in.getSentAhead();
  stats.sentAheadStarted = in.getSentAheadStarted();
  stats.answeredInPage = in.getAnsweredInPage();
  for (schema::Histogram::Reader h : in.getHistograms()) {
    std::vector<uint64_t>& counts = stats.histograms[text(h.getName())];
    for (uint64_t c : h.getCounts()) counts.push_back(c);
  }
  return stats;
}

std::string readWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(Error::Kind::kLocal, "cannot read " + path + ": " + strerror(errno));
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) throw Error(Error::Kind::kLocal, "cannot read " + path + ": " + strerror(errno));
  return std::move(contents).str();
}

// A connected Unix socket, or Error with what the user can do about it.
base::Fd connectUnix(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path)
    throw Error(Error::Kind::kConnect, "cannot connect to " + path + ": the path is too long");
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path.data(), path.size());
  base::Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw Error(Error::Kind::kConnect, std::string("socket: ") + strerror(errno));
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
  int err = errno;
  std::string hint;
  if (err == ENOENT || err == ECONNREFUSED)
    hint = " — is thatchd running?";
  else if (err == EACCES)
    hint = " — thatchd's socket is for root and its socket_group";
  std::string reason = err == ENOENT ? "no such file" : strerror(err);
  for (char& c : reason) c = static_cast<char>(tolower(c));
  throw Error(Error::Kind::kConnect, "cannot connect to " + path + ": " + reason + hint);
}

// "HOST" of "HOST:PORT" or "[V6]:PORT": what the certificate must name.
std::string hostOf(const std::string& hostPort) {
  std::string host = hostPort.substr(0, hostPort.rfind(':'));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return host;
}

// A TLS client trusting `caFile`'s certificates, or the system's.
kj::Own<kj::TlsContext> tlsClient(const std::string& caFile) {
  kj::TlsContext::Options options;
  if (caFile.empty()) return kj::heap<kj::TlsContext>(kj::mv(options));
  std::string pem;
  try {
    pem = readWholeFile(caFile);
  } catch (const Error& e) {
    throw Error(Error::Kind::kLocal, std::string("the TLS CA file: ") + e.what());
  }
  auto trusted =
      kj::heapArray<kj::TlsCertificate>({kj::TlsCertificate(kj::StringPtr(pem.c_str()))});
  options.useSystemTrustStore = false;
  options.trustedCertificates = trusted;
  return kj::heap<kj::TlsContext>(kj::mv(options));
}

}  // namespace

Error errorFrom(const kj::Exception& exception) {
  return toError(exception);
}

schema::Function::Client Thatch::Impl::function(const std::string& name) {
  auto request = thatch.getRequest();
  request.setName(text(name));
  return request.send().getFunction();
}

void Thatch::Impl::connect(kj::Own<kj::AsyncIoStream> connection) {
  stream = kj::mv(connection);
  capnp::ReaderOptions options;
  options.traversalLimitInWords = kMaxAnswerWords;
  network =
      kj::heap<capnp::TwoPartyVatNetwork>(*stream, capnp::rpc::twoparty::Side::CLIENT, options);
  rpc = kj::heap<capnp::RpcSystem<capnp::rpc::twoparty::VatId>>(capnp::makeRpcClient(*network));
  capnp::word scratch[4];
  memset(scratch, 0, sizeof scratch);
  capnp::MallocMessageBuilder message(scratch);
  auto server = message.getRoot<capnp::rpc::twoparty::VatId>();
  server.setSide(capnp::rpc::twoparty::Side::SERVER);
  thatch = rpc->bootstrap(server).castAs<schema::Thatch>();
}

void Thatch::Impl::logIn(const std::string& token) {
  auto request = thatch.castAs<schema::Login>().loginRequest();
  request.setToken(text(token));
  try {
    thatch = request.send().wait(io.waitScope).getThatch();
  } catch (const kj::Exception& e) {
    // A Thatch, not a Login: a socket whose file mode is its guard.
    if (e.getType() != kj::Exception::Type::UNIMPLEMENTED) throw toError(e);
  }
}

Thatch::ConnectOptions Thatch::ConnectOptions::fromEnvironment() {
  ConnectOptions options;
  if (const char* token = getenv("THATCH_TOKEN")) options.token = token;
  if (const char* ca = getenv("THATCH_TLS_CA")) options.tlsCa = ca;
  return options;
}

std::string Thatch::defaultAddress() {
  const char* env = getenv("THATCH_SOCKET");
  return env && *env ? env : kDefaultSocket;
}

Thatch::Thatch(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Thatch::~Thatch() = default;

std::unique_ptr<Thatch> Thatch::connect(const std::string& address) {
  return connect(address, ConnectOptions());
}

std::unique_ptr<Thatch> Thatch::connect(const std::string& address, const ConnectOptions& options) {
  auto impl = std::make_unique<Impl>();
  bool tls = address.rfind("tls:", 0) == 0;
  if (tls || address.rfind("tcp:", 0) == 0) {
    std::string hostPort = address.substr(4);
    std::string stage;
    try {
      auto addr = impl->io.provider->getNetwork()
                      .parseAddress(kj::str(hostPort.c_str()))
                      .wait(impl->io.waitScope);
      kj::Own<kj::AsyncIoStream> stream =
          base::socketStreamFrom(impl->io.unixEventPort, addr->connect().wait(impl->io.waitScope));
      if (tls) {
        stage = "TLS: ";
        impl->tls = tlsClient(options.tlsCa);
        stream = impl->tls->wrapClient(kj::mv(stream), kj::str(hostOf(hostPort).c_str()))
                     .wait(impl->io.waitScope);
      }
      impl->connect(kj::mv(stream));
    } catch (const kj::Exception& e) {
      throw Error(Error::Kind::kConnect,
                  "cannot connect to " + address + ": " + stage + e.getDescription().cStr());
    }
  } else {
    std::string path = address.rfind("unix:", 0) == 0 ? address.substr(5) : address;
    base::Fd fd = connectUnix(path);
    impl->connect(kj::heap<base::SocketStream>(impl->io.unixEventPort, std::move(fd)));
  }
  if (!options.token.empty()) impl->logIn(options.token);
  return std::make_unique<Thatch>(std::move(impl));
}

namespace {

// The code at `path` into a request's `code` union (DeployRequest's or
// PublishLayerRequest's): a directory named in place (in process) or sent as
// an archive, or an archive file's bytes. `archive` holds the bytes the
// request points at until it is sent.
template <typename CodeBuilder>
void setCode(const Thatch::Impl& impl, const std::string& path, CodeBuilder code,
             std::string& archive) {
  if (pack::isDirectory(path)) {
    if (impl.readsDirectoriesInPlace) {
      char resolved[PATH_MAX];
      if (!realpath(path.c_str(), resolved))
        throw Error(Error::Kind::kLocal, "cannot read " + path + ": " + strerror(errno));
      code.setDirectory(resolved);
      return;
    }
    try {
      archive = pack::packDirectory(path);
    } catch (const std::runtime_error& e) {
      throw Error(Error::Kind::kLocal, e.what());
    }
  } else {
    archive = readWholeFile(path);
  }
  code.setArchive(bytes(archive));
}

}  // namespace

FunctionInfo Thatch::deploy(const std::string& name, const std::string& path,
                            const FunctionConfig& config) {
  auto request = impl_->thatch.deployRequest();
  request.setName(text(name));
  if (config.timeout.count() < 0 || config.timeout.count() > UINT32_MAX)
    throw Error(Error::Kind::kRefused, "the timeout must be from 0 to 2^32-1 ms");
  wire::configToWire(config, request.initConfig());
  std::string archive;
  setCode(*impl_, path, request.getCode(), archive);
  auto response = waitOrThrow(request.send(), impl_->io.waitScope);
  impl_->functions.insert_or_assign(name, response.getFunction());
  return fromWire(response.getInfo());
}

kj::Promise<Result> Thatch::invokeAsync(const std::string& name, std::string payload) {
  auto setPayload = [&payload](schema::InvokeRequest::Builder request) {
    request.setPayload(bytes(payload));
  };
  auto toResult = [](capnp::Response<schema::InvokeResult>&& response) {
    return fromWire(response);
  };
  auto known = impl_->functions.find(name);
  if (known != impl_->functions.end()) {
    auto request = known->second.invokeRequest(capnp::MessageSize{payload.size() / 8 + 8, 0});
    setPayload(request);
    return request.send().then(toResult);
  }
  // Pipelined: one round trip for get and invoke. A failed get means there
  // is no such function, which is an outcome, not an error.
  auto get = impl_->thatch.getRequest();
  get.setName(text(name));
  auto got = get.send();
  schema::Function::Client function = got.getFunction();
  auto request = function.invokeRequest();
  setPayload(request);
  auto lookup = got.then([](auto&&) {}).fork();
  return request.send().then(
      [this, name, toResult, function = kj::mv(function)](
          capnp::Response<schema::InvokeResult>&& response) mutable -> kj::Promise<Result> {
        impl_->functions.insert_or_assign(name, kj::mv(function));
        return toResult(kj::mv(response));
      },
      [lookup = kj::mv(lookup)](kj::Exception&& e) mutable -> kj::Promise<Result> {
        return lookup.addBranch().then(
            [e = kj::mv(e)]() mutable -> Result { kj::throwFatalException(kj::mv(e)); },
            [](kj::Exception&& lookupFailed) -> Result {
              // Disconnected, or a refused token: not an outcome of this call.
              Error error = toError(lookupFailed);
              if (error.kind() != Error::Kind::kNotFound)
                kj::throwFatalException(kj::mv(lookupFailed));
              Result result;
              result.status = Status::kNotFound;
              result.errorMessage = error.what();
              return result;
            });
      });
}

Result Thatch::invoke(const std::string& name, std::string payload) {
  return waitOrThrow(invokeAsync(name, std::move(payload)), impl_->io.waitScope);
}

std::vector<FunctionInfo> Thatch::list() {
  auto response = waitOrThrow(impl_->thatch.listRequest().send(), impl_->io.waitScope);
  std::vector<FunctionInfo> functions;
  for (schema::FunctionInfo::Reader info : response.getFunctions())
    functions.push_back(fromWire(info));
  return functions;
}

std::vector<FunctionInfo> Thatch::versions(const std::string& name) {
  auto response = waitOrThrow(impl_->function(name).versionsRequest().send(), impl_->io.waitScope);
  std::vector<FunctionInfo> versions;
  for (schema::FunctionInfo::Reader info : response.getVersions())
    versions.push_back(fromWire(info));
  return versions;
}

FunctionInfo Thatch::info(const std::string& name) {
  auto response = waitOrThrow(impl_->function(name).infoRequest().send(), impl_->io.waitScope);
  return fromWire(response.getInfo());
}

bool Thatch::remove(const std::string& name) {
  impl_->functions.erase(name);
  auto request = impl_->thatch.removeRequest();
  request.setName(text(name));
  return waitOrThrow(request.send(), impl_->io.waitScope).getRemoved();
}

unsigned Thatch::prewarm(const std::string& name, unsigned count) {
  auto request = impl_->function(name).prewarmRequest();
  request.setCount(count);
  return waitOrThrow(request.send(), impl_->io.waitScope).getStarted();
}

Stats Thatch::stats() {
  return fromWire(waitOrThrow(impl_->thatch.statsRequest().send(), impl_->io.waitScope));
}

LayerInfo Thatch::publishLayer(const std::string& name, const std::string& path) {
  auto request = impl_->thatch.publishLayerRequest();
  request.setName(text(name));
  std::string archive;
  setCode(*impl_, path, request.getCode(), archive);
  return fromWire(waitOrThrow(request.send(), impl_->io.waitScope).getInfo());
}

std::vector<LayerInfo> Thatch::listLayers() {
  auto response = waitOrThrow(impl_->thatch.listLayersRequest().send(), impl_->io.waitScope);
  std::vector<LayerInfo> layers;
  for (schema::LayerInfo::Reader info : response.getLayers()) layers.push_back(fromWire(info));
  return layers;
}

std::vector<LayerInfo> Thatch::layerVersions(const std::string& name) {
  auto request = impl_->thatch.layerVersionsRequest();
  request.setName(text(name));
  auto response = waitOrThrow(request.send(), impl_->io.waitScope);
  std::vector<LayerInfo> versions;
  for (schema::LayerInfo::Reader info : response.getVersions()) versions.push_back(fromWire(info));
  return versions;
}

bool Thatch::removeLayer(const std::string& name) {
  auto request = impl_->thatch.removeLayerRequest();
  request.setName(text(name));
  return waitOrThrow(request.send(), impl_->io.waitScope).getRemoved();
}

namespace {

TriggerInfo fromWire(schema::Trigger::Reader in) {
  TriggerInfo t;
  t.id = in.getId().cStr();
  t.function = in.getFunction().cStr();
  t.enabled = in.getEnabled();
  t.createdUnixMs = in.getCreatedUnixMs();
  switch (in.which()) {
    case schema::Trigger::URL: {
      auto url = in.getUrl();
      t.kind = "url";
      t.urlId = url.getUrlId().cStr();
      t.authType = url.getAuthType().cStr();
      t.payloadFormat = url.getPayloadFormat().cStr();
      t.url = url.getUrl().cStr();
      break;
    }
    case schema::Trigger::SCHEDULE:
      t.kind = "schedule";
      t.expression = in.getSchedule().getExpression().cStr();
      t.detail = in.getSchedule().getDetail().cStr();
      break;
    case schema::Trigger::REDIS_STREAM: {
      auto redis = in.getRedisStream();
      t.kind = "redis-stream";
      t.redisUrl = redis.getUrl().cStr();
      t.stream = redis.getStream().cStr();
      t.group = redis.getGroup().cStr();
      t.batchSize = redis.getBatchSize();
      t.maxWait = std::chrono::milliseconds(redis.getMaxWaitMs());
      t.maxAttempts = redis.getMaxAttempts();
      t.deadLetterStream = redis.getDeadLetterStream().cStr();
      break;
    }
    default:
      t.kind = "unknown";
  }
  auto s = in.getStats();
  t.stats.deliveries = s.getDeliveries();
  t.stats.messages = s.getMessages();
  t.stats.failures = s.getFailures();
  t.stats.skipped = s.getSkipped();
  t.stats.missed = s.getMissed();
  t.stats.lag = s.getLag();
  t.stats.deadLettered = s.getDeadLettered();
  t.stats.lastRunUnixMs = s.getLastRunUnixMs();
  t.stats.nextRunUnixMs = s.getNextRunUnixMs();
  t.stats.lastError = s.getLastError().cStr();
  return t;
}

void toWire(const TriggerInfo& t, schema::Trigger::Builder out) {
  out.setFunction(text(t.function));
  out.setEnabled(t.enabled);
  if (t.kind == "url") {
    auto url = out.initUrl();
    url.setAuthType(text(t.authType));
    url.setPayloadFormat(text(t.payloadFormat));
  } else if (t.kind == "schedule") {
    auto schedule = out.initSchedule();
    schedule.setExpression(text(t.expression));
    schedule.setDetail(text(t.detail));
  } else if (t.kind == "redis-stream") {
    auto redis = out.initRedisStream();
    redis.setUrl(text(t.redisUrl));
    redis.setStream(text(t.stream));
    redis.setGroup(text(t.group));
    redis.setBatchSize(t.batchSize);
    redis.setMaxWaitMs(uint32_t(t.maxWait.count()));
    redis.setMaxAttempts(t.maxAttempts);
    redis.setDeadLetterStream(text(t.deadLetterStream));
  } else {
    throw Error(Error::Kind::kRefused,
                "no trigger kind '" + t.kind + "' (url, schedule or redis-stream)");
  }
}

}  // namespace

std::vector<TriggerInfo> Thatch::listTriggers(const std::string& function) {
  auto request = impl_->thatch.listTriggersRequest();
  request.setFunction(text(function));
  auto response = waitOrThrow(request.send(), impl_->io.waitScope);
  std::vector<TriggerInfo> triggers;
  for (schema::Trigger::Reader trigger : response.getTriggers())
    triggers.push_back(fromWire(trigger));
  return triggers;
}

TriggerInfo Thatch::addTrigger(const TriggerInfo& trigger) {
  auto request = impl_->thatch.addTriggerRequest();
  toWire(trigger, request.initTrigger());
  return fromWire(waitOrThrow(request.send(), impl_->io.waitScope).getTrigger());
}

bool Thatch::removeTrigger(const std::string& id) {
  auto request = impl_->thatch.removeTriggerRequest();
  request.setId(text(id));
  return waitOrThrow(request.send(), impl_->io.waitScope).getRemoved();
}

void Thatch::setTriggerEnabled(const std::string& id, bool enabled) {
  auto request = impl_->thatch.setTriggerEnabledRequest();
  request.setId(text(id));
  request.setEnabled(enabled);
  waitOrThrow(request.send(), impl_->io.waitScope);
}

kj::Promise<void> Thatch::pingAsync() {
  return impl_->thatch.pingRequest().send().ignoreResult();
}

void Thatch::ping() {
  waitOrThrow(pingAsync(), impl_->io.waitScope);
}

kj::WaitScope& Thatch::waitScope() {
  return impl_->io.waitScope;
}

}  // namespace thatch
