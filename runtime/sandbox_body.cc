#include "runtime/sandbox_body.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "runtime/framing.h"
#include "runtime/runtime.capnp.h"

namespace runtime {
namespace {

// An owned Python reference.
struct Ref {
  PyObject* p = nullptr;
  explicit Ref(PyObject* object) : p(object) {}
  Ref(const Ref&) = delete;
  Ref& operator=(const Ref&) = delete;
  ~Ref() { Py_XDECREF(p); }
  explicit operator bool() const { return p != nullptr; }
};

// A module the zygote imported (new reference), or null: looked up in
// sys.modules, without the import machinery.
PyObject* loadedModule(const char* name) {
  PyObject* module = PyDict_GetItemString(PyImport_GetModuleDict(), name);  // borrowed
  Py_XINCREF(module);
  return module;
}

uint64_t minorFaults() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

std::string utf8(PyObject* object) {
  if (!object || !PyUnicode_Check(object)) return "";
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(object, &size);
  if (!data) {
    PyErr_Clear();
    return "";
  }
  return std::string(data, size);
}

kj::ArrayPtr<const kj::byte> bytesOf(PyObject* object) {
  if (!object || !PyBytes_Check(object)) return nullptr;
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(PyBytes_AS_STRING(object)),
                      PyBytes_GET_SIZE(object));
}

// Fills `error` from a Python (type, message, traceback) tuple.
void setError(wire::Error::Builder error, PyObject* triple) {
  if (!triple || !PyTuple_Check(triple) || PyTuple_GET_SIZE(triple) != 3) return;
  error.setType(utf8(PyTuple_GET_ITEM(triple, 0)));
  error.setMessage(utf8(PyTuple_GET_ITEM(triple, 1)));
  error.setTraceback(utf8(PyTuple_GET_ITEM(triple, 2)));
}

// The pending Python exception, described by the runtime module.
void setErrorFromPython(wire::Error::Builder error, PyObject* runtimeModule) {
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  PyErr_NormalizeException(&type, &value, &traceback);
  if (value && traceback) PyException_SetTraceback(value, traceback);
  Ref described(value ? PyObject_CallMethod(runtimeModule, "describe_exception", "O", value)
                      : nullptr);
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(traceback);
  if (described) {
    setError(error, described.p);
  } else {
    error.setType("RuntimeError");
    error.setMessage(takePythonError());
  }
}

// The function's environment, set without running os.environ's Python
// methods: in a forked sandbox every object they touch costs a copy-on-write
// fault (measured: clear() and two assignments dirtied ~85 pages, this ~25).
// Both
// halves that os.environ.__setitem__ would update are set directly: the C
// environment, and the mapping's dict of encoded names and values
// (os.environ._data, shared with os.environb; on Linux the encoding is UTF-8
// with surrogateescape, so the bytes go in as they came).
void replaceEnvironment(const std::vector<std::string>& env) {
  Ref os(loadedModule("os"));
  Ref environ(os ? PyObject_GetAttrString(os.p, "environ") : nullptr);
  Ref data(environ ? PyObject_GetAttrString(environ.p, "_data") : nullptr);
  if (!data || !PyDict_Check(data.p)) throw std::runtime_error("os.environ: " + takePythonError());
  if (clearenv() != 0) throw std::runtime_error("clearenv failed");
  PyDict_Clear(data.p);
  for (const std::string& var : env) {
    size_t eq = var.find('=');
    if (eq == std::string::npos) continue;
    std::string name = var.substr(0, eq);
    if (name.empty() || var.find('\0') != std::string::npos)
      throw std::runtime_error("set " + name + ": an empty name or an embedded null byte");
    if (setenv(name.c_str(), var.c_str() + eq + 1, 1) != 0)
      throw std::runtime_error("set " + name + ": " + strerror(errno));
    Ref key(PyBytes_FromStringAndSize(var.data(), eq));
    Ref value(PyBytes_FromStringAndSize(var.data() + eq + 1, var.size() - eq - 1));
    if (!key || !value || PyDict_SetItem(data.p, key.p, value.p) < 0)
      throw std::runtime_error("set " + name + ": " + takePythonError());
  }
}

// What a child of a *single-threaded* zygote needs after the fork, instead
// of PyOS_AfterFork_Child(), whose at-fork hooks dirty hundreds of pages
// (measured: 6.4 ms of a 23 ms cold start). With no other thread, every lock
// is free and every thread id is still right; what does differ is the
// `random` module's state, which every sandbox would otherwise share. It is
// reseeded from the OS by the C method itself (`_random.Random.seed`), as
// random.seed() would after its Python-level checks (~20 pages fewer).
void afterFork() {
  Ref random(loadedModule("random"));
  if (!random) return PyErr_Clear();
  Ref instance(PyObject_GetAttrString(random.p, "_inst"));
  Ref base(loadedModule("_random"));
  Ref type(base ? PyObject_GetAttrString(base.p, "Random") : nullptr);
  Ref seed(type ? PyObject_GetAttrString(type.p, "seed") : nullptr);
  Ref reseeded(instance && seed ? PyObject_CallFunctionObjArgs(seed.p, instance.p, Py_None, nullptr)
                                : nullptr);
  // random.gauss() keeps its second value; it must not be shared either.
  if (!reseeded || PyObject_SetAttrString(instance.p, "gauss_next", Py_None) < 0) {
    PyErr_Clear();
    Ref fallback(PyObject_CallMethod(random.p, "seed", nullptr));
    if (!fallback) PyErr_Clear();
  }
}

bool configure(PyObject* runtimeModule, const FunctionMeta& f) {
  Ref result(PyObject_CallMethod(
      runtimeModule, "configure", "ssIsssOK", f.name.c_str(), f.version.c_str(), f.memoryLimitMb,
      f.invokedFunctionArn.c_str(), f.logGroupName.c_str(), f.logStreamName.c_str(),
      f.raw ? Py_True : Py_False, static_cast<unsigned long long>(f.logLimitBytes)));
  return static_cast<bool>(result);
}

// The phases after confinement, for the cold-start breakdown.
struct Phases {
  static constexpr int kMax = 8;
  const char* names[kMax] = {};
  uint64_t ns[kMax] = {};
  uint64_t faults[kMax] = {};
  int count = 0;
  void mark(const char* name) {
    if (count == kMax) return;
    names[count] = name;
    ns[count] = sandbox::monotonicNs();
    faults[count++] = minorFaults();
  }
};

void sendReady(MessageStream& stream, const sandbox::StepClock* clock, uint64_t requestNs,
               const Phases& phases) {
  capnp::MallocMessageBuilder message;
  auto ready = message.initRoot<wire::SandboxMessage>().initReady();
  ready.setStartNs(requestNs);
  int steps = clock ? clock->count : 0;
  auto timings = ready.initTimings(steps + phases.count);
  for (int i = 0; i < steps; ++i) {
    timings[i].setStep(clock->names[i]);
    timings[i].setNs(clock->endNs[i]);
  }
  for (int i = 0; i < phases.count; ++i) {
    timings[steps + i].setStep(phases.names[i]);
    timings[steps + i].setNs(phases.ns[i]);
    timings[steps + i].setMinorFaults(phases.faults[i]);
  }
  ready.setMinorFaults(minorFaults());
  stream.write(message);
}

// One invocation: Python's invoke() -> a result message. The result is copied
// once, from the Python bytes object into the reply. True if it ended past
// its deadline: then the sandbox must start nothing more, since the
// supervisor is killing it (and re-sends what it sent ahead elsewhere).
bool serveOne(MessageStream& stream, SharedAnswer* sharedAnswer, PyObject* runtimeModule,
              wire::Invocation::Reader request, bool first) {
  auto payload = request.getPayload();
  uint64_t start = sandbox::monotonicNs();
  uint64_t deadlineNs = request.getDeadlineNs();
  if (deadlineNs == 0 && request.getTimeoutNs() > 0) deadlineNs = start + request.getTimeoutNs();
  Ref result(PyObject_CallMethod(
      runtimeModule, "invoke", "y#s#K", reinterpret_cast<const char*>(payload.begin()),
      static_cast<Py_ssize_t>(payload.size()), request.getRequestId().cStr(),
      static_cast<Py_ssize_t>(request.getRequestId().size()),
      static_cast<unsigned long long>(deadlineNs)));
  uint64_t end = sandbox::monotonicNs();
  uint64_t runNs = end - start;
  bool overran = deadlineNs > 0 && end > deadlineNs;
  bool wellFormed = result && PyTuple_Check(result.p) && PyTuple_GET_SIZE(result.p) == 5;
  // One segment the size of the result and its logs (and some room for the
  // rest), instead of capnp's 8 KiB default or a second segment.
  size_t resultBytes = wellFormed ? bytesOf(PyTuple_GET_ITEM(result.p, 1)).size() +
                                        bytesOf(PyTuple_GET_ITEM(result.p, 3)).size()
                                  : 0;
  capnp::MallocMessageBuilder message(resultBytes / sizeof(capnp::word) + 128);
  auto out = message.initRoot<wire::SandboxMessage>().initResult();
  out.setRunNs(runNs);
  if (!wellFormed) {
    out.setStatus(wire::InvocationResult::Status::RUNTIME_ERROR);
    if (PyErr_Occurred()) setErrorFromPython(out.initError(), runtimeModule);
  } else {
    long status = PyLong_AsLong(PyTuple_GET_ITEM(result.p, 0));
    if (status < 0 || status > 3) status = 4;
    out.setStatus(static_cast<wire::InvocationResult::Status>(status));
    out.setPayload(bytesOf(PyTuple_GET_ITEM(result.p, 1)));
    PyObject* error = PyTuple_GET_ITEM(result.p, 2);
    if (error != Py_None) setError(out.initError(), error);
    out.setLogs(bytesOf(PyTuple_GET_ITEM(result.p, 3)));
    out.setLogsTruncated(PyObject_IsTrue(PyTuple_GET_ITEM(result.p, 4)) == 1);
  }
  // getrusage() is a syscall: the cold-start benchmark needs the first
  // invocation's count, warm ones go without (0: not measured).
  if (first) out.setMinorFaults(minorFaults());
  out.setCpu(sched_getcpu());
  out.setOverran(overran);
  if (!(request.getAnswerShared() && sharedAnswer && sharedAnswer->tryAnswer(message)))
    stream.write(message);
  return overran;
}

void reportMalformed(MessageStream& stream, const std::string& what) {
  capnp::MallocMessageBuilder message;
  auto out = message.initRoot<wire::SandboxMessage>().initResult();
  out.setStatus(wire::InvocationResult::Status::RUNTIME_ERROR);
  auto error = out.initError();
  error.setType("MalformedFrame");
  error.setMessage(what);
  try {
    stream.write(message);
  } catch (const std::exception&) {
    // The peer is gone too; closing is all that is left.
  }
}

}  // namespace

namespace {

// Confined: tell the parent (closing the report pipe), detach stdio from
// the zygote's (a handler's output is captured per invocation), and run as
// a batch task.
void detachFromZygote(const sandbox::ChildChannel& channel) {
  close(channel.reportFd);
  int devNull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devNull >= 0) {
    for (int fd = 0; fd < 3; ++fd) dup2(devNull, fd);
    close(devNull);
  }
  // A woken sandbox does not preempt the task that woke it (thatchd, which
  // has more requests to hand out, or a client): it runs when that task
  // sleeps, on a free core, or at the next tick. Under load this saves a
  // pair of context switches per invocation; with a core free it changes
  // nothing. A sandbox may set SCHED_OTHER again: that costs only it. A
  // failure (none is known) leaves SCHED_OTHER: only this gain is lost.
  sched_param normal{};
  sched_setscheduler(0, SCHED_BATCH, &normal);
}

// Everything from the function's environment to the end of the sandbox.
int loadAndServe(const Interpreter& interpreter, const SandboxParams& params, int channelFd,
                 SharedAnswer* sharedAnswer, const sandbox::StepClock* clock, uint64_t requestNs,
                 Phases& phases) {
  PyObject* runtimeModule = interpreter.runtimeModule();
  MessageStream stream(channelFd, params.maxMessageBytes);

  capnp::MallocMessageBuilder failure;
  auto loadFailed = [&](auto describe) {
    describe(failure.initRoot<wire::SandboxMessage>().initLoadFailed());
    stream.write(failure);
    return 1;
  };
  try {
    replaceEnvironment(params.env);
  } catch (const std::exception& e) {
    return loadFailed([&](wire::Error::Builder error) {
      error.setType("RuntimeError");
      error.setMessage(e.what());
    });
  }
  phases.mark("environment");
  if (!configure(runtimeModule, params.function))
    return loadFailed([&](auto error) { setErrorFromPython(error, runtimeModule); });
  phases.mark("configure");
  Ref loaded(PyObject_CallMethod(runtimeModule, "load", "s", params.handler.c_str()));
  if (!loaded) return loadFailed([&](auto error) { setErrorFromPython(error, runtimeModule); });
  phases.mark("import");
  sendReady(stream, clock, requestNs, phases);

  uint64_t busyPollNs = 0;  // what the supervisor asked for with the last request
  for (bool first = true;; first = false) {
    std::unique_ptr<capnp::MessageReader> request;
    std::string malformed;
    // Other Python threads the handler started may run while we wait; no
    // exception may cross these macros (the GIL must be taken back).
    Py_BEGIN_ALLOW_THREADS try {
      request = stream.read(busyPollNs);
    } catch (const FramingError& e) {
      malformed = e.what();
    }
    Py_END_ALLOW_THREADS if (!malformed.empty()) {
      reportMalformed(stream, malformed);
      return 2;
    }
    if (!request) return 0;  // the supervisor closed the channel
    try {
      auto invocation = request->getRoot<wire::Invocation>();
      busyPollNs = std::min<uint64_t>(invocation.getBusyPollNs(), kMaxBusyPollNs);
      if (serveOne(stream, sharedAnswer, runtimeModule, invocation, first)) return 0;
    } catch (const kj::Exception& e) {
      reportMalformed(stream, e.getDescription().cStr());
      return 2;
    } catch (const FramingError& e) {
      return 2;  // the reply could not be written: the supervisor is gone
    }
  }
}

}  // namespace

SandboxParams decodeSandboxParams(wire::SpawnRequest::Reader request) {
  SandboxParams params;
  params.handler = request.getHandler();
  for (auto var : request.getEnv()) params.env.push_back(var);
  auto f = request.getFunction();
  params.function.name = f.getName();
  params.function.version = f.getVersion();
  params.function.memoryLimitMb = f.getMemoryLimitMb();
  params.function.invokedFunctionArn = f.getInvokedFunctionArn();
  params.function.logGroupName = f.getLogGroupName();
  params.function.logStreamName = f.getLogStreamName();
  params.function.raw = f.getRaw();
  if (f.getLogLimitBytes() > 0) params.function.logLimitBytes = f.getLogLimitBytes();
  return params;
}

std::unique_ptr<SharedAnswer> mapSharedAnswer(const base::Fd& fd) {
  if (!fd) return nullptr;
  try {
    return std::make_unique<SharedAnswer>(fd.get());
  } catch (const std::exception& e) {
    fprintf(stderr, "thatch-zygote: cannot map the shared answer page: %s\n", e.what());
    return nullptr;
  }
}

int serveSandbox(const Interpreter& interpreter, const SandboxParams& params,
                 const sandbox::ChildChannel& channel, int channelFd, SharedAnswer* sharedAnswer,
                 uint64_t requestNs) {
  detachFromZygote(channel);
  Phases phases;
  phases.mark("stdio");
  afterFork();
  phases.mark("afterfork");
  return loadAndServe(interpreter, params, channelFd, sharedAnswer, channel.clock, requestNs,
                      phases);
}

namespace {

// One invocation of the warm-up function through the sandbox's own channel
// code (a socket pair to itself): the first call after a claim would
// otherwise fault in that code and its pages (measured: ~11 faults).
void warmInvocation(PyObject* runtimeModule) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) return;
  try {
    MessageStream supervisor(pair[0], 1 << 20), sandbox(pair[1], 1 << 20);
    capnp::MallocMessageBuilder message;
    auto invocation = message.initRoot<wire::Invocation>();
    invocation.setRequestId("warm");
    invocation.setPayload(kj::StringPtr(R"({"warm": [1, 2.5, "x", null]})").asBytes());
    supervisor.write(message);
    if (auto request = sandbox.read())
      serveOne(sandbox, nullptr, runtimeModule, request->getRoot<wire::Invocation>(), true);
    supervisor.read();
  } catch (const std::exception&) {
    // only a missed optimisation
  } catch (const kj::Exception&) {
  }
  close(pair[0]);
  close(pair[1]);
}

}  // namespace

int serveStemCell(const Interpreter& interpreter, const sandbox::ChildChannel& channel,
                  int stemFd) {
  detachFromZygote(channel);
  // Warming up must not slow the sandboxes serving requests on a small host:
  // the zygote restores the priority when it claims this one.
  setpriority(PRIO_PROCESS, 0, kStemNice);
  afterFork();
  // What the claim will do, done once now to take its copy-on-write faults:
  // the environment replaced (by the one it has), a function loaded and run.
  try {
    std::vector<std::string> inherited;
    for (char** var = environ; *var; ++var) inherited.push_back(*var);
    replaceEnvironment(inherited);
  } catch (const std::exception&) {
    PyErr_Clear();  // only a missed optimisation, as below
  }
  Ref warmed(PyObject_CallMethod(interpreter.runtimeModule(), "warm_up", "O", Py_False));
  if (warmed) warmInvocation(interpreter.runtimeModule());
  Ref forgotten(PyObject_CallMethod(interpreter.runtimeModule(), "forget", nullptr));
  if (!warmed || !forgotten) PyErr_Clear();
  const char warm = 'w';
  if (send(stemFd, &warm, 1, MSG_NOSIGNAL) != 1) return 0;
  std::optional<Packet> claim;
  try {
    claim = receivePacket(stemFd, 1 << 20);
  } catch (const std::exception&) {
    return 2;
  }
  if (!claim || claim->passedFds.empty()) return 0;  // discarded unclaimed
  Phases phases;
  phases.mark("claim");
  close(stemFd);
  auto request = claim->reader->getRoot<wire::SpawnRequest>();
  SandboxParams params = decodeSandboxParams(request);
  int channelFd = claim->passedFds[0].release();
  // Mapped and closed before the function's code loads.
  std::unique_ptr<SharedAnswer> page;
  if (claim->passedFds.size() > 1) page = mapSharedAnswer(claim->passedFds[1]);
  claim->passedFds.clear();
  return loadAndServe(interpreter, params, channelFd, page.get(), nullptr, request.getReceivedNs(),
                      phases);
}

}  // namespace runtime
