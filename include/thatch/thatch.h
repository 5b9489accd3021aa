// thatch's C++ API: deploy and invoke functions in thatch sandboxes through
// a running thatchd (its Unix socket or TCP). thatch/embedded.h gives the
// same Thatch with the supervisor running inside this process instead.
//
//   auto thatch = thatch::Thatch::connect();          // $THATCH_SOCKET or the default
//   thatch->deploy("hello", "examples/hello");
//   thatch::Result r = thatch->invoke("hello", R"({"name":"world"})");
//   if (r.status == thatch::Status::kOk) puts(r.payload.c_str());
//
// Build with `pkg-config --cflags --libs thatch`.
//
// Threads: a Thatch runs a Cap'n Proto (kj) event loop on the thread that
// created it and must only be used on that thread; a thread has at most one
// kj event loop, hence at most one Thatch. The blocking calls run that loop
// until their answer arrives; the *Async calls return kj promises, to be
// waited on with waitScope() or combined (kj::joinPromises) for many calls
// in flight on one connection.
#pragma once

#include <kj/async.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "thatch/types.h"

namespace thatch {

// Status, statusName(), Network, LayerRef and FunctionConfig: thatch/types.h.

struct FunctionInfo {
  std::string name;
  uint64_t version = 0;  // 1, 2, ...: each deploy makes a new one
  FunctionConfig config;
  int64_t createdUnixMs = 0;
  uint64_t codeBytes = 0;
  uint64_t fileCount = 0;
};

// A version of a layer: files that functions naming it (FunctionConfig::
// layers) see read-only under /opt.
struct LayerInfo {
  std::string name;
  uint64_t version = 0;  // 1, 2, ...: each publish makes a new one
  int64_t createdUnixMs = 0;
  uint64_t codeBytes = 0;
  uint64_t fileCount = 0;
};

struct Result {
  Status status = Status::kOk;
  std::string payload;  // the handler's JSON result when kOk
  std::string errorType, errorMessage, traceback;
  std::string logs;  // stdout, stderr and logging, bounded by thatchd
  bool logsTruncated = false;
  std::chrono::nanoseconds queued{}, start{}, run{};
  bool cold = false;  // a new sandbox was started for it
  uint64_t sandboxId = 0;
  uint64_t version = 0;  // of the function that ran
};

struct Stats {
  std::map<std::string, uint64_t> invocationsByStatus;  // by statusName()
  std::map<std::string, uint64_t> killsByReason;
  uint64_t coldStarts = 0, warmStarts = 0;
  uint64_t liveSandboxes = 0, idleSandboxes = 0, idleMemoryBytes = 0;
  // Of the live ones: not ready yet (asked of a zygote, or importing), and
  // idle and frozen ([pool] freeze_idle).
  uint64_t startingSandboxes = 0, frozenSandboxes = 0;
  uint64_t evictions = 0, expirations = 0;
  uint64_t queued = 0, queueTimeouts = 0;
  // Queued invocations sent ahead into a busy sandbox, and how many of
  // those started there (docs/thatching.md, "Sending ahead").
  uint64_t sentAhead = 0, sentAheadStarted = 0;
  // Answers that came through a sandbox's shared page while thatchd polled
  // for them (docs/api.md, "Performance").
  uint64_t answeredInPage = 0;
  uint64_t zygoteRestarts = 0;
  // "queued", "start", "run": counts[i] is the number in [2^i, 2^(i+1)) µs.
  std::map<std::string, std::vector<uint64_t>> histograms;
};

// What starts a function besides invoke (docs/triggers.md): a function URL,
// a schedule, a Redis stream. Only the fields of its kind are set.
struct TriggerInfo {
  std::string id;    // thatchd's: "url-NAME", "schedule-N", "redis-stream-N"
  std::string kind;  // "url", "schedule", "redis-stream"
  std::string function;
  bool enabled = true;
  int64_t createdUnixMs = 0;
  // url
  std::string urlId, authType, payloadFormat;
  std::string url;  // where thatchd's HTTP listener serves it ("" when it has none)
  // schedule: rate(...) or cron(...), UTC; the event's `detail` (JSON, "" = {})
  std::string expression, detail;
  // redis-stream (0 and "": thatchd's defaults)
  std::string redisUrl, stream, group, deadLetterStream;
  unsigned batchSize = 0, maxAttempts = 0;
  std::chrono::milliseconds maxWait{0};
  // Since thatchd started (missed: at its start); docs/triggers.md.
  struct Counts {
    uint64_t deliveries = 0, messages = 0, failures = 0, skipped = 0, missed = 0, lag = 0,
             deadLettered = 0;
    int64_t lastRunUnixMs = 0, nextRunUnixMs = 0;
    std::string lastError;
  } stats;
};

// Anything but an invocation's own outcome (those are a Result's status):
// thatchd unreachable or gone, or a request it refused. what() is one line
// meant for a person.
class Error : public std::runtime_error {
 public:
  enum class Kind {
    kConnect,       // could not reach thatchd
    kDisconnected,  // the connection broke
    kRefused,       // thatchd refused the request (bad name, bad code, unknown runtime)
    kNotFound,      // there is no such function (info, versions, prewarm) or layer (layerVersions)
    kLocal,         // a local file or directory to send could not be read
  };
  Error(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

// The *Async promises reject with kj::Exception (a kj promise carries no
// other kind); this is the Error it stands for.
Error errorFrom(const kj::Exception& exception);

class Thatch {
 public:
  // $THATCH_SOCKET if set, else /run/thatch/thatchd.sock.
  static std::string defaultAddress();

  // How to present ourselves to thatchd.
  struct ConnectOptions {
    // A token of one of thatchd's [[client]]s: what its TCP listener (and
    // its Unix socket, with socket_requires_token) wants. Empty: none. Sent
    // to a socket that wants none, it is not needed and not refused.
    std::string token;
    // For "tls:HOST:PORT": a PEM file of the certificates to trust (a
    // private CA, or thatchd's self-signed one). Empty: the system's.
    std::string tlsCa;
    // $THATCH_TOKEN as `token`, $THATCH_TLS_CA as `tlsCa`.
    static ConnectOptions fromEnvironment();
  };

  // Connects to thatchd at `address`: a Unix socket path, "unix:PATH",
  // "tcp:HOST:PORT" or "tls:HOST:PORT" (its certificate verified for HOST).
  // Throws Error (kConnect, also for a certificate that does not verify;
  // kRefused if thatchd refused the token).
  static std::unique_ptr<Thatch> connect(const std::string& address = defaultAddress());
  static std::unique_ptr<Thatch> connect(const std::string& address, const ConnectOptions& options);

  ~Thatch();
  Thatch(const Thatch&) = delete;
  Thatch& operator=(const Thatch&) = delete;

  // A new version of `name` from `path`: a directory (sent as a tar archive
  // when connected to a daemon) or an archive file (tar, tar.gz, tar.xz,
  // tar.bz2, tar.zst or zip). Throws Error.
  FunctionInfo deploy(const std::string& name, const std::string& path,
                      const FunctionConfig& config = {});

  // The latest version's result. Throws Error only when thatchd cannot be
  // asked (an unknown function is a Result with kNotFound).
  Result invoke(const std::string& name, std::string payload);
  kj::Promise<Result> invokeAsync(const std::string& name, std::string payload);

  std::vector<FunctionInfo> list();                             // the latest of each function
  std::vector<FunctionInfo> versions(const std::string& name);  // ascending; throws if unknown
  FunctionInfo info(const std::string& name);                   // the latest; throws if unknown
  bool remove(const std::string& name);                         // false: there was no such function
  // Has `count` warm sandboxes of `name` ready (within its pool's and the
  // host's caps); the number started for it.
  unsigned prewarm(const std::string& name, unsigned count);
  Stats stats();

  // A new version of layer `name` from `path`, a directory or an archive
  // file as for deploy(). Throws Error.
  LayerInfo publishLayer(const std::string& name, const std::string& path);
  std::vector<LayerInfo> listLayers();                            // the latest of each layer
  std::vector<LayerInfo> layerVersions(const std::string& name);  // ascending; throws if unknown
  // Every version of layer `name`; false: there was no such layer. Refused
  // (Error kRefused, naming them) while stored functions use it.
  bool removeLayer(const std::string& name);

  // Triggers (docs/triggers.md). list: `function`'s, or "" every one's.
  std::vector<TriggerInfo> listTriggers(const std::string& function = "");
  // Adds a trigger of `trigger.kind` with its settings; thatchd's copy
  // (its id). Throws Error (kRefused: bad settings, with why; kNotFound:
  // no such function).
  TriggerInfo addTrigger(const TriggerInfo& trigger);
  bool removeTrigger(const std::string& id);                    // false: there was no such trigger
  void setTriggerEnabled(const std::string& id, bool enabled);  // throws if unknown

  // A round trip to thatchd that does nothing (health checks, benchmarks).
  void ping();
  kj::Promise<void> pingAsync();

  // This thread's event loop, to wait on the *Async promises.
  kj::WaitScope& waitScope();

  // What connect() and startInProcess() (thatch/embedded.h) build a Thatch
  // from; its definition is the library's own.
  struct Impl;
  explicit Thatch(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace thatch
