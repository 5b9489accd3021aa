// Warm invocations over thatchd's Lambda HTTP API (docs/lambda.md), beside
// warm invocations through its Cap'n Proto socket: one thatchd, the same
// function and warm sandboxes, the series in alternating slices of one run
// (bench/load.h), so that the ratios say what the HTTP front end costs.
//
//   http-bench [SECONDS_PER_POINT] [--profile CLIENTS KIND] [--kj-streams]
//
// KIND is one of capnp, http, signed, dry-run, url: --profile measures only that
// series, after printing thatchd's pid, as a steady load to attach a
// profiler to. --kj-streams: the HTTP clients over kj's own stream, as
// kj-http comes (each request in two TCP segments; see clientStream()).
//
// The HTTP clients are kj-http's HttpClient, each over one persistent
// connection to 127.0.0.1 (keep-alive, one request in flight, no
// pipelining), on the same event loop as the Cap'n Proto clients. Unsigned
// requests are served because the config says [lambda] anonymous = true;
// signed ones carry a SigV4 signature made here (Signer) with the config's
// [[access_key]], as an SDK would make it. "url" requests go to the
// function's URL (docs/triggers.md#function-urls): POST / with the URL's Host, the
// same body; the function answers them as it does an Invoke, from the
// event of format 2.0 that thatchd makes of the request.
#include <arpa/inet.h>
#include <kj/compat/http.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "base/socket_stream.h"
#include "bench/load.h"
#include "daemon/sigv4.h"
#include "supervisor/config.h"
#include "tests/daemon.h"
#include "thatch/thatch.h"

namespace {

using bench::Outcome;
using bench::Point;
using bench::Run;
constexpr unsigned kMaxClients = 16;
constexpr std::string_view kPath = "/2015-03-31/functions/hello/invocations";
constexpr std::string_view kPayload = R"({"name":"bench"})";  // as bench/load.cc's invokeOnce
constexpr std::string_view kAnswer = R"("hello, bench")";     // in examples/hello's answer
// A URL's event has no "name": hello greets the world.
constexpr std::string_view kUrlAnswer = R"("hello, world")";
constexpr const char* kKeyId = "AKIDTHATCHBENCH";
constexpr const char* kSecret = "a secret of thatch's http-bench";
constexpr const char* kRegion = "us-east-1";

// ---- SigV4, as a client signs: sha256, HMAC-SHA256 and hex ----

using Digest = std::array<unsigned char, 32>;

Digest sha256(std::string_view data) {
  Digest digest;
  unsigned length = 0;
  if (EVP_Digest(data.data(), data.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("libcrypto: EVP_Digest(SHA-256) failed");
  return digest;
}

Digest hmac(std::string_view key, std::string_view data) {
  Digest digest;
  unsigned length = 0;
  if (!HMAC(EVP_sha256(), key.data(), int(key.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data(),
            &length))
    throw std::runtime_error("libcrypto: HMAC(SHA-256) failed");
  return digest;
}

std::string_view bytes(const Digest& digest) {
  return {reinterpret_cast<const char*>(digest.data()), digest.size()};
}

std::string hex(const Digest& digest) {
  static const char kDigits[] = "0123456789abcdef";
  std::string text;
  for (unsigned char b : digest) {
    text += kDigits[b >> 4];
    text += kDigits[b & 15];
  }
  return text;
}

// Signs requests for service `lambda` as the SDKs do (host and x-amz-date
// signed, the body's SHA-256 in the canonical request), for paths that need
// no percent-encoding and have no query. The day's signing key is kept, as
// a long-lived client would keep it.
class Signer {
 public:
  struct Signature {
    std::string authorization, amzDate;
  };

  Signature sign(std::string_view method, std::string_view path, std::string_view host,
                 std::string_view body, time_t now) {
    struct tm utc {};
    gmtime_r(&now, &utc);
    char amzDate[17];
    strftime(amzDate, sizeof amzDate, "%Y%m%dT%H%M%SZ", &utc);
    std::string day(amzDate, 8);
    if (day != keyDay_) {
      Digest key = hmac(std::string("AWS4") + kSecret, day);
      key = hmac(bytes(key), kRegion);
      key = hmac(bytes(key), "lambda");
      signingKey_ = hmac(bytes(key), "aws4_request");
      keyDay_ = day;
    }
    std::string scope = day + "/" + kRegion + "/lambda/aws4_request";
    std::string canonical = std::string(method) + "\n" + std::string(path) +
                            "\n\nhost:" + std::string(host) + "\nx-amz-date:" + amzDate +
                            "\n\nhost;x-amz-date\n" + hex(sha256(body));
    std::string toSign =
        std::string("AWS4-HMAC-SHA256\n") + amzDate + "\n" + scope + "\n" + hex(sha256(canonical));
    return {
        std::string("AWS4-HMAC-SHA256 Credential=") + kKeyId + "/" + scope +
            ", SignedHeaders=host;x-amz-date, Signature=" + hex(hmac(bytes(signingKey_), toSign)),
        amzDate};
  }

 private:
  std::string keyDay_;
  Digest signingKey_{};
};

// ---- the HTTP clients ----

// What is measured: each a series of its own.
enum class Kind { kCapnpPing, kCapnpInvoke, kHttpDryRun, kHttpInvoke, kHttpSigned, kHttpUrl };

const char* nameOf(Kind kind) {
  switch (kind) {
    case Kind::kCapnpPing:
      return "capnp ping";
    case Kind::kCapnpInvoke:
      return "capnp invoke";
    case Kind::kHttpDryRun:
      return "http dry-run";
    case Kind::kHttpInvoke:
      return "http invoke";
    case Kind::kHttpSigned:
      return "http signed";
    case Kind::kHttpUrl:
      return "http url";
  }
  return "?";
}

bool isHttp(Kind kind) {
  return kind == Kind::kHttpDryRun || kind == Kind::kHttpInvoke || kind == Kind::kHttpSigned ||
         kind == Kind::kHttpUrl;
}

struct HeaderIds {
  explicit HeaderIds(kj::HttpHeaderTable::Builder& builder)
      : authorization(builder.add("Authorization")),
        amzDate(builder.add("X-Amz-Date")),
        invocationType(builder.add("X-Amz-Invocation-Type")),
        errorType(builder.add("x-amzn-ErrorType")),
        functionError(builder.add("X-Amz-Function-Error")) {}
  kj::HttpHeaderId authorization, amzDate, invocationType, errorType, functionError;
};

// A request's headers held back until its body is written, then both sent
// in one sendmsg(): one TCP segment, as an SDK sends a small request
// (Python's http.client joins a small body to its headers); kj-http writes
// the two apart. Every request here has a body, so writes come in pairs.
class OneSegmentRequests final : public kj::AsyncIoStream {
 public:
  explicit OneSegmentRequests(kj::Own<kj::AsyncIoStream> inner) : inner_(kj::mv(inner)) {}

  kj::Promise<void> write(const void* buffer, size_t size) override {
    auto bytes = kj::arrayPtr(static_cast<const kj::byte*>(buffer), size);
    if (held_ == nullptr) {
      held_ = kj::heapArray(bytes);
      return kj::READY_NOW;
    }
    auto headers = kj::mv(held_);
    auto pieces = kj::heapArray<kj::ArrayPtr<const kj::byte>>({headers.asPtr(), bytes});
    auto view = pieces.asPtr();
    return inner_->write(view).attach(kj::mv(pieces), kj::mv(headers));
  }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    KJ_REQUIRE(held_ == nullptr, "a request's body in pieces");
    return inner_->write(pieces);
  }
  kj::Promise<size_t> tryRead(void* buffer, size_t minBytes, size_t maxBytes) override {
    return inner_->tryRead(buffer, minBytes, maxBytes);
  }
  kj::Promise<void> whenWriteDisconnected() override { return inner_->whenWriteDisconnected(); }
  void shutdownWrite() override { inner_->shutdownWrite(); }

 private:
  kj::Own<kj::AsyncIoStream> inner_;
  kj::Array<kj::byte> held_;
};

// A connection to thatchd's http_listen over base::SocketStream, as
// bench/load.h's Cap'n Proto clients have, each request in one segment.
// `kjStream`: kj's own stream instead, as kj-http comes (--kj-streams).
kj::Own<kj::AsyncIoStream> clientStream(kj::AsyncIoContext& io, const std::string& host,
                                        bool kjStream) {
  auto connection = io.provider->getNetwork()
                        .parseAddress(kj::str(host.c_str()))
                        .wait(io.waitScope)
                        ->connect()
                        .wait(io.waitScope);
  if (kjStream) return connection;
  return kj::heap<OneSegmentRequests>(base::socketStreamFrom(io.unixEventPort, kj::mv(connection)));
}

// One client: a connection of its own to thatchd's http_listen, kept alive.
class LambdaClient {
 public:
  LambdaClient(kj::AsyncIoContext& io, const std::string& host, const std::string& urlHost,
               bool kjStream, const kj::HttpHeaderTable& table, const HeaderIds& ids,
               Signer& signer)
      : host_(host),
        urlHost_(urlHost),
        table_(table),
        ids_(ids),
        signer_(signer),
        stream_(clientStream(io, host, kjStream)),
        http_(kj::newHttpClient(table, *stream_)) {}

  kj::Promise<Outcome> invoke(Kind kind) {
    kj::HttpHeaders headers(table_);
    bool url = kind == Kind::kHttpUrl;
    headers.set(kj::HttpHeaderId::HOST, url ? urlHost_.c_str() : host_.c_str());
    if (url) headers.set(kj::HttpHeaderId::CONTENT_TYPE, "application/json");
    Signer::Signature signature;  // outlives request(), which copies the headers out
    if (kind == Kind::kHttpDryRun) headers.set(ids_.invocationType, "DryRun");
    if (kind == Kind::kHttpSigned) {
      signature = signer_.sign("POST", kPath, host_, kPayload, time(nullptr));
      headers.set(ids_.authorization, signature.authorization.c_str());
      headers.set(ids_.amzDate, signature.amzDate.c_str());
    }
    kj::StringPtr path = url ? kj::StringPtr("/") : kj::StringPtr(kPath.data(), kPath.size());
    auto request = http_->request(kj::HttpMethod::POST, path, headers, uint64_t(kPayload.size()));
    auto sent = request.body->write(kPayload.data(), kPayload.size()).attach(kj::mv(request.body));
    unsigned expected = kind == Kind::kHttpDryRun ? 204 : 200;
    return sent.then([response = kj::mv(request.response)]() mutable { return kj::mv(response); })
        .then([this, expected, url](kj::HttpClient::Response&& response) {
          // The status and headers go when the body is read: read them first.
          std::string failure;
          if (response.statusCode != expected) {
            failure = "HTTP " + std::to_string(response.statusCode);
            KJ_IF_MAYBE (type, response.headers->get(ids_.errorType))
              failure += std::string(" ") + type->cStr();
          } else KJ_IF_MAYBE (error, response.headers->get(ids_.functionError)) {
            failure = std::string("X-Amz-Function-Error: ") + error->cStr();
          }
          auto body = response.body->readAllText(1 << 20).attach(kj::mv(response.body));
          return body.then([failure = std::move(failure), expected, url](kj::String text) {
            Outcome outcome;
            std::string_view answer(text.cStr(), text.size());
            std::string quoted(answer.substr(0, 200));
            if (!failure.empty())
              outcome.failure = answer.empty() ? failure : failure + ": " + quoted;
            else if (expected == 200 && answer.find(url ? kUrlAnswer : kAnswer) == answer.npos)
              outcome.failure = "unexpected answer: " + quoted;
            return outcome;
          });
        });
  }

 private:
  std::string host_, urlHost_;
  const kj::HttpHeaderTable& table_;
  const HeaderIds& ids_;
  Signer& signer_;
  kj::Own<kj::AsyncIoStream> stream_;
  kj::Own<kj::HttpClient> http_;
};

// ---- the daemon and the measurements ----

// CreateFunctionUrlConfig for `function` (unsigned: the bench's thatchd
// takes anonymous requests), over a blocking socket before the measuring
// starts; the URL's Host, "ID.lambda-url.REGION.localhost:PORT".
std::string createUrl(const std::string& httpAddress, const std::string& function) {
  size_t colon = httpAddress.rfind(':');
  struct sockaddr_in address {};
  address.sin_family = AF_INET;
  address.sin_port = htons(uint16_t(std::stoi(httpAddress.substr(colon + 1))));
  inet_pton(AF_INET, httpAddress.substr(0, colon).c_str(), &address.sin_addr);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<struct sockaddr*>(&address), sizeof address) != 0) {
    if (fd >= 0) close(fd);
    throw std::runtime_error("http-bench: cannot connect to " + httpAddress);
  }
  std::string body = R"({"AuthType":"NONE"})";
  std::string request =
      "POST /2021-10-31/functions/" + function + "/url HTTP/1.1\r\nHost: " + httpAddress +
      "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  std::string answer;
  bool sent = write(fd, request.data(), request.size()) == ssize_t(request.size());
  char buffer[4096];
  for (ssize_t n; sent && (n = read(fd, buffer, sizeof buffer)) > 0;)
    answer.append(buffer, size_t(n));
  close(fd);
  size_t start = answer.find("http://");
  size_t end = start == std::string::npos ? start : answer.find('/', start + 7);
  if (answer.find(" 201 ") == std::string::npos || end == std::string::npos)
    throw std::runtime_error("http-bench: CreateFunctionUrlConfig failed: " + answer);
  return answer.substr(start + 7, end - start - 7);
}

// One thatchd serving both APIs, `hello` deployed and a warm sandbox per
// client: this measures the front ends and thatching, not starts.
struct Daemon {
  Daemon()
      : daemon(
            "http_listen = \"127.0.0.1:0\"\n"
            "[pool]\nconcurrency = " +
            std::to_string(kMaxClients) + "\nmax_warm = " + std::to_string(kMaxClients) +
            "\nqueue_length = 256\n[host]\nmax_warm_memory = \"16GiB\"\n"
            "[lambda]\nanonymous = true\nregion = \"" +
            kRegion + "\"\n[[access_key]]\nid = \"" + kKeyId + "\"\nsecret = \"" + kSecret +
            "\"\nallow = [\"invoke\"]\n") {
    auto admin = thatch::Thatch::connect(daemon.socketPath());
    admin->deploy("hello", testing_util::example("hello"));
    warm = admin->prewarm("hello", kMaxClients);
    // "listening address=http:127.0.0.1:PORT", port 0 being any free port.
    std::string log = daemon.log();
    size_t at = log.find("address=http:");
    if (at == std::string::npos)
      throw std::runtime_error("thatchd logged no http address:\n" + log);
    at += 13;
    httpAddress = log.substr(at, log.find_first_of(" \n", at) - at);
    urlHost = createUrl(httpAddress, "hello");
  }
  testing_util::TestDaemon daemon;
  unsigned warm = 0;
  std::string httpAddress;  // HOST:PORT
  std::string urlHost;      // hello's function URL's
};

struct Series {
  Kind kind;
  unsigned clients;
};

// The series measured in turn, slice by slice, on an event loop of their
// own (a thread has one; the admin connection's is the main thread's), each
// kind of client with its own connections.
std::vector<Point> measure(const Daemon& d, const std::vector<Series>& series, double seconds,
                           bool kjStreams) {
  std::vector<Point> points;
  std::string error;
  std::thread([&] {
    try {
      auto io = kj::setupAsyncIo();
      kj::HttpHeaderTable::Builder builder;
      HeaderIds ids(builder);
      auto table = builder.build();
      Signer signer;
      unsigned capnpClients = 0, httpClients = 0;
      for (const Series& s : series)
        (isHttp(s.kind) ? httpClients : capnpClients) =
            std::max(isHttp(s.kind) ? httpClients : capnpClients, s.clients);
      auto capnp = bench::connectMany(io, d.daemon.socketPath(), "hello", capnpClients);
      std::vector<kj::Own<LambdaClient>> http;
      for (unsigned c = 0; c < httpClients; ++c)
        http.push_back(
            kj::heap<LambdaClient>(io, d.httpAddress, d.urlHost, kjStreams, *table, ids, signer));
      std::vector<Run> runs(series.size());
      std::vector<Run*> order;
      for (size_t i = 0; i < series.size(); ++i) {
        Run& run = runs[i];
        run.clients = series[i].clients;
        run.cpuOf = d.daemon.pid();
        run.connections = &capnp;
        run.call = series[i].kind == Kind::kCapnpPing ? Run::Call::kPing : Run::Call::kInvoke;
        if (Kind kind = series[i].kind; isHttp(kind))
          run.callOf = [&http, kind](unsigned client) { return http[client]->invoke(kind); };
        order.push_back(&run);
      }
      bench::measureAlternating(io, order, seconds);
      for (size_t i = 0; i < runs.size(); ++i) {
        points.push_back(runs[i].summary());
        if (runs[i].failures)
          fprintf(stderr, "http-bench: %s, %u clients: %llu failed, the first: %s\n",
                  nameOf(series[i].kind), series[i].clients,
                  static_cast<unsigned long long>(runs[i].failures), runs[i].firstFailure.c_str());
      }
    } catch (const std::exception& e) {
      error = e.what();
    } catch (const kj::Exception& e) {
      error = e.getDescription().cStr();
    }
  }).join();
  if (!error.empty()) throw std::runtime_error(error);
  return points;
}

// What a signature costs alone (µs each), in this process: the client's
// signing (Signer), and thatchd's check of it (daemon/sigv4.h's verify(),
// as LambdaApi::authorize calls it, on the request a client sends).
struct SigningCost {
  double signUs = 0, verifyUs = 0;
};

SigningCost signingCost() {
  constexpr int kRounds = 20000;
  constexpr std::string_view kHost = "127.0.0.1:65535";
  Signer signer;
  SigningCost cost;
  auto start = bench::Clock::now();
  Signer::Signature signature;
  for (int i = 0; i < kRounds; ++i)
    signature = signer.sign("POST", kPath, kHost, kPayload, time(nullptr));
  cost.signUs =
      std::chrono::duration<double, std::micro>(bench::Clock::now() - start).count() / kRounds;
  thatchd::sigv4::Request request{"POST",
                                  std::string(kPath),
                                  {{"Host", std::string(kHost)},
                                   {"X-Amz-Date", signature.amzDate},
                                   {"Authorization", signature.authorization},
                                   {"Content-Length", std::to_string(kPayload.size())}},
                                  kPayload};
  const std::string secret = kSecret;
  auto secretOf = [&secret](std::string_view id) { return id == kKeyId ? &secret : nullptr; };
  start = bench::Clock::now();
  for (int i = 0; i < kRounds; ++i) {
    auto verdict = thatchd::sigv4::verify(request, secretOf, "lambda", int64_t(time(nullptr)));
    if (!std::holds_alternative<thatchd::sigv4::Verified>(verdict))
      throw std::runtime_error(
          "http-bench: thatchd's SigV4 check refuses this bench's signature: " +
          std::get<thatchd::sigv4::Refusal>(verdict).message);
  }
  cost.verifyUs =
      std::chrono::duration<double, std::micro>(bench::Clock::now() - start).count() / kRounds;
  return cost;
}

void printHeader() {
  printf("%-8s %-14s %10s %10s %12s %9s %13s %13s\n", "clients", "call", "p50 us", "p99 us",
         "calls/s", "failures", "thatchd us/c", "client us/c");
}

void printPoint(const Series& s, const Point& p) {
  printf("%-8u %-14s %10.1f %10.1f %12.0f %9llu %13.1f %13.1f\n", s.clients, nameOf(s.kind),
         p.p50us, p.p99us, p.perSecond, static_cast<unsigned long long>(p.failures), p.serverCpuUs,
         p.clientCpuUs);
}

bool parseKind(const std::string& word, Kind& kind) {
  static const std::pair<const char*, Kind> kWords[] = {{"capnp", Kind::kCapnpInvoke},
                                                        {"http", Kind::kHttpInvoke},
                                                        {"signed", Kind::kHttpSigned},
                                                        {"dry-run", Kind::kHttpDryRun},
                                                        {"url", Kind::kHttpUrl}};
  for (const auto& [name, k] : kWords)
    if (word == name) return (kind = k), true;
  return false;
}

int profile(unsigned clients, Kind kind, double seconds, bool kjStreams) {
  Daemon d;
  printf("thatchd pid %d, http on %s; %s from %u clients for %.1f s\n", d.daemon.pid(),
         d.httpAddress.c_str(), nameOf(kind), clients, seconds);
  fflush(stdout);
  Point p = measure(d, {{kind, clients}}, seconds, kjStreams)[0];
  printHeader();
  printPoint({kind, clients}, p);
  thatch::Stats stats = thatch::Thatch::connect(d.daemon.socketPath())->stats();
  printf(
      "%s: p50 %.1f us, p99 %.1f us, %.0f calls/s, %llu failures; thatchd: %llu of %llu warm "
      "invocations answered through the shared page, %llu sent ahead\n",
      nameOf(kind), p.p50us, p.p99us, p.perSecond, static_cast<unsigned long long>(p.failures),
      static_cast<unsigned long long>(stats.answeredInPage),
      static_cast<unsigned long long>(stats.warmStarts),
      static_cast<unsigned long long>(stats.sentAheadStarted));
  return p.failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3.0;
  unsigned profileClients = 0;
  Kind profileKind = Kind::kHttpInvoke;
  bool kjStreams = false, secondsGiven = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--kj-streams") {
      kjStreams = true;
      continue;
    }
    if (arg == "--profile" && i + 2 < argc) {
      profileClients = static_cast<unsigned>(atoi(argv[++i]));
      if (profileClients < 1 || profileClients > kMaxClients ||
          !parseKind(argv[++i], profileKind)) {
        fprintf(stderr,
                "http-bench: --profile takes 1 to %u clients and capnp, http, signed, "
                "dry-run or url\n",
                kMaxClients);
        return 2;
      }
    } else if (!secondsGiven && atof(argv[i]) > 0) {
      seconds = atof(argv[i]);
      secondsGiven = true;
    } else {
      fprintf(stderr,
              "usage: http-bench [SECONDS_PER_POINT] [--profile CLIENTS KIND] [--kj-streams]\n");
      return 2;
    }
  }
  try {
    if (profileClients) return profile(profileClients, profileKind, seconds, kjStreams);
    SigningCost signing = signingCost();
    Daemon d;
    printf("thatchd up, http on %s; %u warm sandboxes of examples/hello; %.1f s per point\n\n",
           d.httpAddress.c_str(), d.warm, seconds);
    const std::vector<Series> one = {{Kind::kCapnpPing, 1},  {Kind::kCapnpInvoke, 1},
                                     {Kind::kHttpDryRun, 1}, {Kind::kHttpInvoke, 1},
                                     {Kind::kHttpSigned, 1}, {Kind::kHttpUrl, 1}};
    const std::vector<Series> many = {{Kind::kCapnpInvoke, kMaxClients},
                                      {Kind::kHttpInvoke, kMaxClients},
                                      {Kind::kHttpSigned, kMaxClients},
                                      {Kind::kHttpUrl, kMaxClients}};
    std::vector<Point> atOne = measure(d, one, seconds, kjStreams);
    std::vector<Point> atMany = measure(d, many, seconds, kjStreams);
    printHeader();
    uint64_t failures = 0;
    for (size_t i = 0; i < one.size(); ++i) printPoint(one[i], atOne[i]);
    for (size_t i = 0; i < many.size(); ++i) printPoint(many[i], atMany[i]);
    for (const Point& p : atOne) failures += p.failures;
    for (const Point& p : atMany) failures += p.failures;
    const Point &capnp1 = atOne[1], &http1 = atOne[3], &signed1 = atOne[4], &url1 = atOne[5];
    const Point &capnpN = atMany[0], &httpN = atMany[1], &signedN = atMany[2], &urlN = atMany[3];
    printf(
        "\nhttp invoke p50 / capnp invoke p50, 1 client: %.1f / %.1f us = %.2fx (target <= "
        "2.00x); p99 %.2fx\n",
        http1.p50us, capnp1.p50us, http1.p50us / capnp1.p50us, http1.p99us / capnp1.p99us);
    printf("invokes/s, %u clients: http %.0f (target >= 10000), capnp %.0f; http / capnp %.2f\n",
           kMaxClients, httpN.perSecond, capnpN.perSecond, httpN.perSecond / capnpN.perSecond);
    printf(
        "SigV4: thatchd +%.1f us of CPU per call at %u clients, %.0f/s (%.2f of unsigned); "
        "p50 +%.1f us at 1 client; alone: %.1f us to sign, %.1f us to check\n",
        signedN.serverCpuUs - httpN.serverCpuUs, kMaxClients, signedN.perSecond,
        signedN.perSecond / httpN.perSecond, signed1.p50us - http1.p50us, signing.signUs,
        signing.verifyUs);
    printf(
        "function URL p50 / http invoke p50, 1 client: %.1f / %.1f us = %.2fx (target <= 1.30x); "
        "p99 %.2fx\n",
        url1.p50us, http1.p50us, url1.p50us / http1.p50us, url1.p99us / http1.p99us);
    printf("function URL requests/s, %u clients: %.0f (target >= 10000); / http invoke %.2f\n",
           kMaxClients, urlN.perSecond, urlN.perSecond / httpN.perSecond);
    if (failures) {
      fprintf(stderr, "http-bench: %llu calls failed\n", static_cast<unsigned long long>(failures));
      return 1;
    }
  } catch (const std::exception& e) {
    fprintf(stderr, "http-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
