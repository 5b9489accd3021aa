// thatchd's RPC server on any bytes a client may send: each input is the
// whole of one connection (Cap'n Proto's framing and RPC messages, then
// end of stream) to a real daemon (registry, supervisor, zygote) through
// daemon/server.h, as a Unix client of uid 65534. Whatever the bytes, the
// server answers or drops the connection, and nothing crashes or hangs.
//
// Needs root (the daemon builds sandboxes). The corpus in
// tests/fuzz/corpus/rpc is what a real client sends for each call of the
// API; to record it again:
//   THATCH_RPC_FUZZ_RECORD=tests/fuzz/corpus/rpc build-fuzz/rpc-fuzz -runs=0

#include <capnp/rpc-twoparty.h>
#include <fcntl.h>
#include <kj/async-io.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "api/pack.h"
#include "api/thatch.capnp.h"
#include "daemon/daemon.h"
#include "daemon/listeners.h"
#include "daemon/server.h"
#include "sandbox/cgroup.h"

namespace {

namespace fs = std::filesystem;
namespace api = thatch::api;

constexpr char kFunction[] = "hello";  // deployed before the first input
constexpr unsigned kPeerUid = 65534;   // a client that may not read thatchd's host

std::string cgroupLeaf() {
  return "fuzz-rpc-" + std::to_string(getpid());
}

// One daemon for the whole run, on this thread's event loop, removed (with
// its state directory and cgroups) at exit.
struct Harness {
  Harness() : io(kj::setupAsyncIo()), stateDir(makeStateDir()), config(makeConfig(stateDir)) {
    daemon = std::make_unique<thatchd::Daemon>(config, io, [](std::string_view) {});
    listeners = std::make_unique<thatchd::Listeners>(config, *io.provider);  // none bound
    server = std::make_unique<thatchd::Server>(*listeners, *daemon, io, [](std::string_view) {});
    deployExample();
  }

  ~Harness() {
    server.reset();
    listeners.reset();
    daemon.reset();  // stops every sandbox and the zygote
    std::error_code ignored;
    fs::remove_all(stateDir, ignored);
    sandbox::detectCgroups("thatch")->remove(cgroupLeaf());
  }

  static std::string makeStateDir() {
    char path[] = "/tmp/thatch-rpc-fuzz.XXXXXX";
    if (!mkdtemp(path)) abort();
    chmod(path, 0711);  // sandboxes open their code below it as their own uid
    return path;
  }

  static supervisor::Config makeConfig(const std::string& stateDir) {
    thatchd::ConfigSource source;
    source.stateDir = stateDir;
    source.socketPath = stateDir + "/unused.sock";
    source.zygotePath = THATCH_ZYGOTE;
    supervisor::Config config = thatchd::loadConfig(source);
    config.cgroupSubdir = "thatch/" + cgroupLeaf();
    return config;
  }

  void deployExample() {
    daemon->supervisor().remove(kFunction);
    daemon->registry().deployDirectory(kFunction, std::string(THATCH_REPO) + "/examples/hello", {});
  }

  // What an input may have deployed or removed goes, and the example is
  // back to one version: the state directory stays small however long the
  // run.
  void restore() {
    for (const std::string& name : daemon->registry().list())
      if (name != kFunction) daemon->supervisor().remove(name);
    if (daemon->registry().versions(kFunction).size() != 1) deployExample();
  }

  kj::AsyncIoContext io;
  std::string stateDir;
  supervisor::Config config;
  std::unique_ptr<thatchd::Daemon> daemon;
  std::unique_ptr<thatchd::Listeners> listeners;
  std::unique_ptr<thatchd::Server> server;
};

Harness* harness = nullptr;

void tearDown() {
  delete harness;
  harness = nullptr;
}

// A connected pair of Unix sockets: the server's end, served as a client of
// kPeerUid, and the client's.
kj::Own<kj::AsyncIoStream> connect(Harness& h) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) abort();
  kj::LocalPeerIdentity::Credentials peer;
  peer.uid = kPeerUid;
  h.server->serve(
      {h.io.lowLevelProvider->wrapUnixSocketFd(fds[0], kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP),
       kj::LocalPeerIdentity::newInstance(peer)},
      true);
  return h.io.lowLevelProvider->wrapUnixSocketFd(fds[1],
                                                 kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
}

// Recording the corpus: the client's side of a stream, everything written
// also kept.
class RecordingStream final : public kj::AsyncIoStream {
 public:
  RecordingStream(kj::AsyncIoStream& inner, std::string& sent) : inner_(inner), sent_(sent) {}
  kj::Promise<size_t> tryRead(void* buffer, size_t minBytes, size_t maxBytes) override {
    return inner_.tryRead(buffer, minBytes, maxBytes);
  }
  kj::Promise<void> write(const void* buffer, size_t size) override {
    sent_.append(static_cast<const char*>(buffer), size);
    return inner_.write(buffer, size);
  }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    for (auto piece : pieces)
      sent_.append(reinterpret_cast<const char*>(piece.begin()), piece.size());
    return inner_.write(pieces);
  }
  kj::Promise<void> whenWriteDisconnected() override { return inner_.whenWriteDisconnected(); }
  void shutdownWrite() override { inner_.shutdownWrite(); }

 private:
  kj::AsyncIoStream& inner_;
  std::string& sent_;
};

using Script = std::function<void(api::Thatch::Client& thatch, kj::WaitScope& waitScope)>;

// What the calls of the script being recorded answered, for its line.
std::string outcomes;

// A script calls on whether the server refuses or not: the refusals are
// inputs too.
void ignoreFailure(kj::Promise<void> promise, kj::WaitScope& waitScope) {
  promise
      .then([]() { outcomes += " ok"; },
            [](kj::Exception&& e) {
              outcomes += std::string(" refused (") + e.getDescription().cStr() + ")";
            })
      .wait(waitScope);
}

// One call of each kind, right and wrong, as the client library makes them.
std::vector<std::pair<std::string, Script>> scripts() {
  std::string archive = thatch::pack::packDirectory(std::string(THATCH_REPO) + "/examples/hello");
  auto invoke = [](api::Thatch::Client& thatch, kj::WaitScope& ws, std::string name,
                   std::string payload) {
    auto get = thatch.getRequest();
    get.setName(name);
    auto call = get.send().getFunction().invokeRequest();
    call.setPayload(
        kj::arrayPtr(reinterpret_cast<const kj::byte*>(payload.data()), payload.size()));
    ignoreFailure(call.send().ignoreResult(), ws);
  };
  auto deploy = [archive](api::Thatch::Client& thatch, kj::WaitScope& ws, std::string name,
                          bool invokeIt) {
    auto request = thatch.deployRequest();
    request.setName(name);
    request.getCode().setArchive(
        kj::arrayPtr(reinterpret_cast<const kj::byte*>(archive.data()), archive.size()));
    auto config = request.initConfig();
    config.setMemoryBytes(64 << 20);
    config.setTimeoutMs(2000);
    config.setNetwork(api::NetworkAccess::NONE);
    auto env = config.initEnv(1);
    env[0].setName("GREETING");
    env[0].setValue("hi");
    auto deployed = request.send();
    if (!invokeIt) return ignoreFailure(deployed.ignoreResult(), ws);
    auto call = deployed.getFunction().invokeRequest();
    call.setPayload(kj::StringPtr(R"({"name":"fuzz"})").asBytes());
    ignoreFailure(call.send().ignoreResult(), ws);
  };
  return {
      {"ping", [](auto& t, auto& ws) { ignoreFailure(t.pingRequest().send().ignoreResult(), ws); }},
      {"list", [](auto& t, auto& ws) { ignoreFailure(t.listRequest().send().ignoreResult(), ws); }},
      {"stats",
       [](auto& t, auto& ws) { ignoreFailure(t.statsRequest().send().ignoreResult(), ws); }},
      {"invoke", [invoke](auto& t, auto& ws) { invoke(t, ws, kFunction, R"({"name":"fuzz"})"); }},
      {"invoke-not-json", [invoke](auto& t, auto& ws) { invoke(t, ws, kFunction, "{not json"); }},
      {"invoke-missing", [invoke](auto& t, auto& ws) { invoke(t, ws, "missing", "{}"); }},
      {"info-and-versions",
       [](auto& t, auto& ws) {
         auto get = t.getRequest();
         get.setName(kFunction);
         auto function = get.send().getFunction();
         ignoreFailure(function.infoRequest().send().ignoreResult(), ws);
         ignoreFailure(function.versionsRequest().send().ignoreResult(), ws);
       }},
      {"prewarm",
       [](auto& t, auto& ws) {
         auto get = t.getRequest();
         get.setName(kFunction);
         auto prewarm = get.send().getFunction().prewarmRequest();
         prewarm.setCount(1);
         ignoreFailure(prewarm.send().ignoreResult(), ws);
       }},
      {"deploy-and-invoke", [deploy](auto& t, auto& ws) { deploy(t, ws, "fuzzed", true); }},
      {"deploy-bad-name", [deploy](auto& t, auto& ws) { deploy(t, ws, "Bad Name", false); }},
      {"deploy-directory",
       [](auto& t, auto& ws) {
         auto request = t.deployRequest();
         request.setName("fromhost");
         request.getCode().setDirectory("/etc");
         ignoreFailure(request.send().ignoreResult(), ws);
       }},
      {"remove",
       [](auto& t, auto& ws) {
         auto request = t.removeRequest();
         request.setName(kFunction);
         ignoreFailure(request.send().ignoreResult(), ws);
       }},
  };
}

void record(Harness& h, const std::string& dir) {
  fs::create_directories(dir);
  for (auto& [name, script] : scripts()) {
    std::string sent;
    outcomes.clear();
    {
      kj::Own<kj::AsyncIoStream> stream = connect(h);
      RecordingStream recording(*stream, sent);
      capnp::TwoPartyClient client(recording);
      api::Thatch::Client thatch = client.bootstrap().castAs<api::Thatch>();
      script(thatch, h.io.waitScope);
    }
    std::ofstream(dir + "/" + name, std::ios::binary) << sent;
    fprintf(stderr, "recorded %s: %zu bytes;%s\n", name.c_str(), sent.size(), outcomes.c_str());
    h.restore();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (geteuid() != 0) {
    fprintf(stderr, "rpc-fuzz: needs root (thatchd builds sandboxes)\n");
    exit(1);
  }
  harness = new Harness();
  atexit(tearDown);
  if (const char* dir = getenv("THATCH_RPC_FUZZ_RECORD")) {
    record(*harness, dir);
    exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Harness& h = *harness;
  kj::Own<kj::AsyncIoStream> client = connect(h);
  // Everything the server answers is read, until it closes its end: the
  // input's end of stream ends the connection, whatever the input held.
  auto answers = client->readAllBytes()
                     .ignoreResult()
                     .then([]() {}, [](kj::Exception&&) {})
                     .eagerlyEvaluate(nullptr);
  client->write(data, size)
      .then([&client]() { client->shutdownWrite(); })
      .then([]() {}, [](kj::Exception&&) {})  // the server may close first
      .wait(h.io.waitScope);
  answers.wait(h.io.waitScope);
  h.restore();
  return 0;
}
