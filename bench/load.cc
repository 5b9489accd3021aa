#include "bench/load.h"

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "api/wire.h"
#include "base/socket_stream.h"

namespace bench {

double quantile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t i = static_cast<size_t>(std::ceil(p * sorted.size()));
  return sorted[std::min(sorted.size() - 1, i == 0 ? 0 : i - 1)];
}

Point summarize(std::vector<double> latenciesUs, double seconds) {
  std::sort(latenciesUs.begin(), latenciesUs.end());
  Point point;
  point.calls = latenciesUs.size();
  point.p50us = quantile(latenciesUs, 0.50);
  point.p99us = quantile(latenciesUs, 0.99);
  point.maxUs = latenciesUs.empty() ? 0 : latenciesUs.back();
  point.perSecond = seconds > 0 ? latenciesUs.size() / seconds : 0;
  return point;
}

namespace {

kj::Own<kj::AsyncIoStream> connectTo(kj::AsyncIoContext& io, const std::string& address,
                                     kj::TlsContext* tls) {
  bool network = address.rfind("tcp:", 0) == 0 || address.rfind("tls:", 0) == 0;
  std::string parsed = network ? address.substr(4) : "unix:" + address;
  kj::Own<kj::AsyncIoStream> stream =
      base::socketStreamFrom(io.unixEventPort, io.provider->getNetwork()
                                                   .parseAddress(kj::str(parsed.c_str()))
                                                   .wait(io.waitScope)
                                                   ->connect()
                                                   .wait(io.waitScope));
  if (!tls) return stream;
  std::string host = parsed.substr(0, parsed.rfind(':'));
  return tls->wrapClient(kj::mv(stream), kj::str(host.c_str())).wait(io.waitScope);
}

thatch::api::Thatch::Client bootstrap(capnp::TwoPartyClient& client, const std::string& token) {
  if (token.empty()) return client.bootstrap().castAs<thatch::api::Thatch>();
  auto login = client.bootstrap().castAs<thatch::api::Login>().loginRequest();
  login.setToken(token);
  return login.send().getThatch();
}

}  // namespace

Connection::Connection(kj::AsyncIoContext& io, const std::string& socketPath,
                       const std::string& functionName, const std::string& token,
                       kj::TlsContext* tls)
    : stream(connectTo(io, socketPath, tls)), client(*stream), thatch(bootstrap(client, token)) {
  auto get = thatch.getRequest();
  get.setName(functionName);
  function = get.send().getFunction();
}

std::vector<kj::Own<Connection>> connectMany(kj::AsyncIoContext& io, const std::string& socketPath,
                                             const std::string& function, unsigned count,
                                             const std::string& token, kj::TlsContext* tls) {
  std::vector<kj::Own<Connection>> connections;
  for (unsigned c = 0; c < count; ++c)
    connections.push_back(kj::heap<Connection>(io, socketPath, function, token, tls));
  return connections;
}

kj::Promise<Outcome> invokeOnce(Connection& c) {
  static const char kPayload[] = R"({"name":"bench"})";
  auto request = c.function.invokeRequest();
  request.setPayload(
      kj::arrayPtr(reinterpret_cast<const kj::byte*>(kPayload), sizeof kPayload - 1));
  return request.send().then([](capnp::Response<thatch::api::InvokeResult>&& r) {
    return Outcome{r.getStatus(), r.getCold(), r.getTimings().getStartNs(), {}};
  });
}

namespace {

kj::Promise<void> callRepeatedly(unsigned client, Run& run) {
  auto start = Clock::now();
  if (start >= run.until) return kj::READY_NOW;
  kj::Promise<Outcome> done = nullptr;
  if (run.callOf)
    done = run.callOf(client);
  else if (run.call == Run::Call::kPing)
    done = (*run.connections)[client]->thatch.pingRequest().send().then(
        [](auto&&) { return Outcome{}; });
  else
    done = invokeOnce(*(*run.connections)[client]);
  return done.then([client, &run, start](Outcome outcome) {
    auto end = Clock::now();
    ++run.callsInSlices;
    if (start >= run.measureFrom) {
      run.latencies.push_back(std::chrono::duration<double, std::micro>(end - start).count());
      if (outcome.status != thatch::api::Status::OK || !outcome.failure.empty()) {
        if (!run.failures++)
          run.firstFailure = outcome.failure.empty()
                                 ? thatch::statusName(thatch::wire::statusFromWire(outcome.status))
                                 : outcome.failure;
      }
      run.cold += outcome.cold;
    }
    return callRepeatedly(client, run);
  });
}

// The CPU time a thread has had (ns): the first field of its schedstat,
// precise where /proc/PID/stat counts in ticks. 0 if unreadable.
uint64_t threadCpuNs(pid_t tid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/schedstat", int(tid));
  FILE* file = fopen(path, "r");
  if (!file) return 0;
  unsigned long long ns = 0;
  if (fscanf(file, "%llu", &ns) != 1) ns = 0;
  fclose(file);
  return ns;
}

uint64_t ownThreadCpuNs() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return uint64_t(now.tv_sec) * 1'000'000'000 + uint64_t(now.tv_nsec);
}

}  // namespace

Point Run::summary() const {
  Point point = summarize(latencies, measuredSeconds);
  point.failures = failures;
  point.cold = cold;
  if (cpuOf > 0 && callsInSlices > 0) {
    point.serverCpuUs = double(serverCpuNs) / 1000 / double(callsInSlices);
    point.clientCpuUs = double(clientCpuNs) / 1000 / double(callsInSlices);
  }
  return point;
}

bool endsWithin(kj::AsyncIoContext& io, kj::Promise<void> work, Clock::duration bound) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(bound).count();
  return work.then([] { return true; })
      .exclusiveJoin(
          io.provider->getTimer().afterDelay(ns * kj::NANOSECONDS).then([] { return false; }))
      .wait(io.waitScope);
}

void runSlice(kj::AsyncIoContext& io, Run& run, std::chrono::seconds grace) {
  auto loops = kj::heapArrayBuilder<kj::Promise<void>>(run.clients);
  uint64_t serverBefore = run.cpuOf > 0 ? threadCpuNs(run.cpuOf) : 0;
  uint64_t clientBefore = ownThreadCpuNs();
  for (unsigned c = 0; c < run.clients; ++c) loops.add(callRepeatedly(c, run));
  auto bound = std::max(Clock::duration::zero(), run.until - Clock::now()) + grace;
  bool ended = endsWithin(io, kj::joinPromises(loops.finish()), bound);
  if (run.cpuOf > 0) {
    run.serverCpuNs += threadCpuNs(run.cpuOf) - serverBefore;
    run.clientCpuNs += ownThreadCpuNs() - clientBefore;
  }
  if (!ended)
    throw std::runtime_error("calls still unanswered " + std::to_string(grace.count()) +
                             " s after the end of their slice");
}

void measureAlternating(kj::AsyncIoContext& io, const std::vector<Run*>& runs, double seconds,
                        std::chrono::milliseconds slice, std::chrono::milliseconds settle) {
  for (Run* run : runs) {
    run->measureFrom = run->until = Clock::now() + std::chrono::milliseconds(300);
    runSlice(io, *run);
  }
  int slices =
      std::max(1, static_cast<int>(seconds / std::chrono::duration<double>(slice).count()));
  for (int i = 0; i < slices; ++i) {
    for (Run* run : runs) {
      run->measureFrom = Clock::now() + settle;
      run->until = run->measureFrom + slice;
      runSlice(io, *run);
    }
  }
  for (Run* run : runs)
    run->measuredSeconds = slices * std::chrono::duration<double>(slice).count();
}

Watchdog::Watchdog(std::string step, std::chrono::seconds bound, pid_t victim) {
  thread_ = std::thread([this, step = std::move(step), bound, victim] {
    std::unique_lock lock(mutex_);
    if (ended_.wait_for(lock, bound, [this] { return done_; })) return;
    fired_ = true;
    fprintf(stderr, "\n%s: FAILED: no end within %lld s", step.c_str(),
            static_cast<long long>(bound.count()));
    if (victim > 0) {
      fprintf(stderr, "; thatchd (pid %d) killed", victim);
      kill(victim, SIGKILL);
    }
    fprintf(stderr, "\n");
    if (ended_.wait_for(lock, std::chrono::seconds(30), [this] { return done_; })) return;
    fprintf(stderr, "%s: still no end 30 s later; giving up\n", step.c_str());
    _exit(3);
  });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mutex_);
    done_ = true;
  }
  ended_.notify_one();
  thread_.join();
}

double envNumber(const char* name, double fallback) {
  const char* value = getenv(name);
  if (!value || !*value) return fallback;
  char* end = nullptr;
  double number = strtod(value, &end);
  if (*end || !(number > 0)) {
    fprintf(stderr, "%s=%s: not a positive number; using %g\n", name, value, fallback);
    return fallback;
  }
  return number;
}

}  // namespace bench
