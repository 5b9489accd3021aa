// The load generator that api-bench and scale-bench share: clients that
// speak Cap'n Proto to a thatchd themselves, on one event loop (as a load
// generator does: the client side costs as little CPU as it can), the
// latencies they see, and deadlines, so that a benchmark fails rather than
// hangs.
#pragma once

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/compat/tls.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/thatch.capnp.h"

namespace bench {

using Clock = std::chrono::steady_clock;

// The latencies of one measured series, summed up.
struct Point {
  double p50us = 0, p99us = 0, maxUs = 0, perSecond = 0;
  uint64_t calls = 0, failures = 0, cold = 0;
  // CPU per call (µs) of the process Run::cpuOf names and of the client
  // thread, over its slices; 0 when not measured.
  double serverCpuUs = 0, clientCpuUs = 0;
};

// The p-quantile (0..1) of `sorted`, 0 when empty.
double quantile(const std::vector<double>& sorted, double p);

// Latencies (µs) and a count of calls per second of `seconds`.
Point summarize(std::vector<double> latenciesUs, double seconds);

// One client: a connection of its own to thatchd's socket, the function
// `function` got (pipelined) on it.
struct Connection {
  // `socketPath`: a Unix socket's path, "tcp:HOST:PORT", or
  // "tls:HOST:PORT" through `tls`. With a `token`, it logs in first
  // (pipelined, as a client that holds its token would).
  Connection(kj::AsyncIoContext& io, const std::string& socketPath, const std::string& function,
             const std::string& token = "", kj::TlsContext* tls = nullptr);
  kj::Own<kj::AsyncIoStream> stream;
  capnp::TwoPartyClient client;
  thatch::api::Thatch::Client thatch;
  thatch::api::Function::Client function = nullptr;
};

std::vector<kj::Own<Connection>> connectMany(kj::AsyncIoContext& io, const std::string& socketPath,
                                             const std::string& function, unsigned count,
                                             const std::string& token = "",
                                             kj::TlsContext* tls = nullptr);

// What one invocation came back with.
struct Outcome {
  thatch::api::Status status = thatch::api::Status::OK;
  bool cold = false;
  uint64_t startNs = 0;  // thatchd's figure for getting a sandbox
  // A failure `status` cannot say (an HTTP answer's status and error type):
  // the call failed if this is set, whatever `status` is.
  std::string failure;
};

// One invocation of the connection's function with a small JSON payload.
kj::Promise<Outcome> invokeOnce(Connection& c);

// Every client calling in a loop, one call in flight each, until `until`;
// calls that start before `measureFrom` are not counted.
struct Run {
  enum class Call { kPing, kInvoke } call = Call::kInvoke;
  std::vector<kj::Own<Connection>>* connections = nullptr;
  // When set, the call client N makes instead of `call` on `connections`
  // (another protocol's clients: bench/http_bench.cc).
  std::function<kj::Promise<Outcome>(unsigned client)> callOf;
  unsigned clients = 0;
  Clock::time_point measureFrom, until;
  std::vector<double> latencies;  // µs
  uint64_t failures = 0, cold = 0;
  std::string firstFailure;  // the status of the first call that was not ok
  double measuredSeconds = 0;
  // A process (thatchd) whose main thread's CPU time is summed over the
  // slices, with the client thread's and the calls that ended in them.
  pid_t cpuOf = 0;
  uint64_t serverCpuNs = 0, clientCpuNs = 0, callsInSlices = 0;

  Point summary() const;
};

// Waits for `work` for at most `bound` (dropping it then): whether it ended.
bool endsWithin(kj::AsyncIoContext& io, kj::Promise<void> work, Clock::duration bound);

// Runs every client's loop until run.until; throws std::runtime_error if
// the calls in flight then have not ended `grace` later.
void runSlice(kj::AsyncIoContext& io, Run& run,
              std::chrono::seconds grace = std::chrono::seconds(60));

// Measures `runs` in turn, slice by slice (each slice `settle` unmeasured,
// then `slice` measured), `seconds` of each in all, after an unmeasured
// first stretch of each: all see the same moments of a host whose speed
// drifts. Each run's measuredSeconds is set.
void measureAlternating(kj::AsyncIoContext& io, const std::vector<Run*>& runs, double seconds,
                        std::chrono::milliseconds slice = std::chrono::milliseconds(250),
                        std::chrono::milliseconds settle = std::chrono::milliseconds(20));

// Fails a step that does not end in time: past `bound`, says so on stderr
// and SIGKILLs `victim` (a thatchd: its clients' calls then fail at once);
// if the step has still not ended 30 s later, exits the program (status 3).
class Watchdog {
 public:
  Watchdog(std::string step, std::chrono::seconds bound, pid_t victim);
  ~Watchdog();  // the step has ended
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  bool fired() const { return fired_; }

 private:
  std::mutex mutex_;
  std::condition_variable ended_;
  bool done_ = false;
  std::atomic<bool> fired_{false};
  std::thread thread_;
};

// An environment variable as a positive number, or `fallback`.
double envNumber(const char* name, double fallback);

}  // namespace bench
