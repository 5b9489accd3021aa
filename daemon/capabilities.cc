#include "daemon/capabilities.h"

#include <capnp/schema.h>

#include <algorithm>
#include <bitset>
#include <optional>
#include <string>
#include <vector>

#include "api/wire.h"
#include "base/text.h"
#include "base/units.h"
#include "supervisor/messages.h"

namespace thatchd {

namespace schema = thatch::api;
using base::quoted;
using thatch::wire::bytes;
using thatch::wire::configFromWire;
using thatch::wire::configToWire;
using thatch::wire::kNoSuchFunction;
using thatch::wire::kNoSuchLayer;
using thatch::wire::statusToWire;
using thatch::wire::text;

namespace {

[[noreturn]] void refuse(const std::string& message) {
  kj::throwFatalException(supervisor::failure(kj::Exception::Type::FAILED, message));
}

void toWire(const supervisor::FunctionVersion& in, schema::FunctionInfo::Builder out) {
  out.setName(text(in.name));
  out.setVersion(in.version);
  configToWire(in.config, out.initConfig());
  out.setCreatedUnixMs(in.createdUnixMs);
  out.setCodeBytes(in.codeBytes);
  out.setFileCount(in.fileCount);
}

void toWire(const supervisor::LayerVersion& in, schema::LayerInfo::Builder out) {
  out.setName(text(in.name));
  out.setVersion(in.version);
  out.setCreatedUnixMs(in.createdUnixMs);
  out.setCodeBytes(in.codeBytes);
  out.setFileCount(in.fileCount);
}

uint64_t nanoseconds(supervisor::Duration d) {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

void toWire(const supervisor::InvokeResult& in, schema::InvokeResult::Builder out) {
  out.setStatus(statusToWire(in.status));
  if (!in.payload.empty()) out.setPayload(bytes(in.payload));
  if (in.status != supervisor::Status::kOk) {
    auto error = out.initError();
    error.setType(text(in.errorType));
    error.setMessage(text(in.errorMessage));
    error.setTraceback(text(in.traceback));
  }
  if (!in.logs.empty()) out.setLogs(bytes(in.logs));
  out.setLogsTruncated(in.logsTruncated);
  auto timings = out.initTimings();
  timings.setQueuedNs(nanoseconds(in.queued));
  timings.setStartNs(nanoseconds(in.start));
  timings.setRunNs(nanoseconds(in.run));
  out.setCold(in.cold);
  out.setSandboxId(in.sandboxId);
  out.setVersion(in.version);
}

void toWire(const std::map<std::string, uint64_t>& in, capnp::List<schema::Counter>::Builder out) {
  size_t i = 0;
  for (const auto& [name, value] : in) {
    out[i].setName(text(name));
    out[i++].setValue(value);
  }
}

void toWire(const supervisor::Stats& in, schema::StatsResult::Builder out) {
  toWire(in.invocationsByStatus, out.initInvocationsByStatus(in.invocationsByStatus.size()));
  out.setColdStarts(in.coldStarts);
  out.setWarmStarts(in.warmStarts);
  out.setLiveSandboxes(in.liveSandboxes);
  out.setIdleSandboxes(in.idleSandboxes);
  out.setIdleMemoryBytes(in.idleMemoryBytes);
  out.setStartingSandboxes(in.startingSandboxes);
  out.setFrozenSandboxes(in.frozenSandboxes);
  toWire(in.killsByReason, out.initKillsByReason(in.killsByReason.size()));
  out.setEvictions(in.pools.evictions);
  out.setExpirations(in.pools.expirations);
  out.setQueued(in.admission.queued);
  out.setQueueTimeouts(in.admission.queueTimeouts);
  out.setZygoteRestarts(in.zygoteRestarts);
  out.setSentAhead(in.sentAhead);
  out.setSentAheadStarted(in.sentAheadStarted);
  out.setAnsweredInPage(in.answeredInPage);
  const std::pair<const char*, const supervisor::Histogram*> histograms[] = {
      {"queued", &in.queued}, {"start", &in.start}, {"run", &in.run}};
  auto list = out.initHistograms(std::size(histograms));
  for (size_t i = 0; i < std::size(histograms); ++i) {
    list[i].setName(histograms[i].first);
    auto counts = list[i].initCounts(supervisor::Histogram::kBuckets);
    for (int b = 0; b < supervisor::Histogram::kBuckets; ++b)
      counts.set(b, histograms[i].second->counts[b]);
  }
}

// What an API caller can name and reach: shared by every capability a
// connection holds.
struct Context {
  supervisor::Supervisor& supervisor;
  supervisor::Registry& registry;
  const supervisor::Config& config;
  Stager& stager;
  Triggers& triggers;
  Peer peer;
};

supervisor::FunctionVersion latestOrRefuse(const Context& c, const std::string& name) {
  std::optional<supervisor::FunctionVersion> latest = c.registry.latest(name);
  if (!latest) refuse(kNoSuchFunction + quoted(name, 64));
  return std::move(*latest);
}

// The methods of an interface a capability serves, by ordinal: those its
// grants do not cover answer as methods it never had. Capabilities are
// the unit of authority: what a method serves, it serves to whoever holds it.
using Served = std::bitset<64>;

using supervisor::Grants;

bool always(const Grants&, const std::string&) {
  return true;
}
bool seesEverything(const Grants& g, const std::string&) {
  return g.read || g.deploy;
}
bool deploys(const Grants& g, const std::string&) {
  return g.deploy;
}
bool readsStats(const Grants& g, const std::string&) {
  return g.stats;
}
bool invokes(const Grants& g, const std::string& function) {
  return g.mayInvoke(function);
}

struct MethodGrant {
  const char* method;
  // For the Function of `function`; Thatch's ignore it.
  bool (*granted)(const Grants&, const std::string& function);
};

// A method of thatch.capnp listed in neither table is served to no one.
const MethodGrant kThatchMethods[] = {
    {"deploy", deploys},
    {"get", always},
    {"list", always},
    {"remove", deploys},
    {"stats", readsStats},
    {"ping", always},
    {"publishLayer", deploys},
    {"listLayers", seesEverything},
    {"layerVersions", seesEverything},
    {"removeLayer", deploys},
    {"listTriggers", always},  // lists the triggers of the functions it may see
    {"addTrigger", deploys},
    {"removeTrigger", deploys},
    {"setTriggerEnabled", deploys},
};
const MethodGrant kFunctionMethods[] = {
    {"invoke", invokes},
    {"prewarm", invokes},
    {"info", always},  // a Function is given only to a client that may see it
    {"versions", always},
};

template <typename Interface, size_t N>
Served served(const MethodGrant (&table)[N], const Grants& grants, const std::string& function) {
  capnp::InterfaceSchema schema = capnp::Schema::from<Interface>();
  Served result;
  for (const MethodGrant& m : table)
    if (m.granted(grants, function)) result.set(schema.getMethodByName(m.method).getOrdinal());
  return result;
}

// What a call to a method not served gets.
template <typename Interface>
capnp::Capability::Server::DispatchCallResult notServed(uint16_t methodId) {
  capnp::InterfaceSchema schema = capnp::Schema::from<Interface>();
  std::string method = methodId < schema.getMethods().size()
                           ? schema.getMethods()[methodId].getProto().getName().cStr()
                           : std::to_string(methodId);
  std::string name = schema.getShortDisplayName().cStr();
  return {supervisor::failure(kj::Exception::Type::UNIMPLEMENTED,
                              "this client may not call " + name + "." + method +
                                  ": its allow list does not grant it"),
          false};
}

// A schema's Server that dispatches only the methods in `served`.
template <typename Interface>
class Restricted : public Interface::Server {
 protected:
  explicit Restricted(Served served) : served_(served) {}

  capnp::Capability::Server::DispatchCallResult dispatchCall(
      uint64_t interfaceId, uint16_t methodId,
      capnp::CallContext<capnp::AnyPointer, capnp::AnyPointer> context) override {
    if (interfaceId == capnp::typeId<Interface>() &&
        (methodId >= served_.size() || !served_.test(methodId)))
      return notServed<Interface>(methodId);
    return Interface::Server::dispatchCall(interfaceId, methodId, context);
  }

 private:
  Served served_;
};

// One function by name: its calls act on the latest version at the time.
class FunctionImpl final : public Restricted<schema::Function> {
 public:
  FunctionImpl(kj::Own<Context> context, std::string name)
      : Restricted(served<schema::Function>(kFunctionMethods, context->peer.grants, name)),
        context_(kj::mv(context)),
        name_(std::move(name)) {}

  kj::Promise<void> invoke(InvokeContext call) override {
    // Without this, Cap'n Proto 0.9.2 lets a call run on after its caller
    // hung up or dropped it; with it, the supervisor's promise is dropped
    // and the sandbox running it is killed.
    call.allowCancellation();
    capnp::Data::Reader payload = call.getParams().getPayload();
    std::string body(payload.asChars().begin(), payload.size());
    call.releaseParams();
    return context_->supervisor.invoke(name_, std::move(body))
        .then([call](supervisor::InvokeResult result) mutable {
          // Sized for the payload and logs, so that they fit the first segment.
          capnp::MessageSize size{(result.payload.size() + result.logs.size()) / 8 + 256, 0};
          toWire(result, call.getResults(size));
        });
  }

  kj::Promise<void> prewarm(PrewarmContext call) override {
    call.allowCancellation();
    return context_->supervisor.prewarm(name_, call.getParams().getCount())
        .then([call](unsigned started) mutable { call.getResults().setStarted(started); });
  }

  kj::Promise<void> info(InfoContext call) override {
    toWire(latestOrRefuse(*context_, name_), call.getResults().initInfo());
    return kj::READY_NOW;
  }

  kj::Promise<void> versions(VersionsContext call) override {
    std::vector<supervisor::FunctionVersion> versions = context_->registry.versions(name_);
    if (versions.empty()) refuse(kNoSuchFunction + quoted(name_, 64));
    auto list = call.getResults().initVersions(versions.size());
    for (size_t i = 0; i < versions.size(); ++i) toWire(versions[i], list[i]);
    return kj::READY_NOW;
  }

 private:
  kj::Own<Context> context_;
  std::string name_;
};

class ThatchImpl final : public Restricted<schema::Thatch> {
 public:
  explicit ThatchImpl(kj::Own<Context> context)
      : Restricted(served<schema::Thatch>(kThatchMethods, context->peer.grants, "")),
        context_(kj::mv(context)) {}

  kj::Promise<void> deploy(DeployContext call) override {
    call.allowCancellation();  // the staging thread finishes; its result is dropped
    auto request = call.getParams();
    std::string name = text(request.getName());
    auto config = configFromWire(request.getConfig());
    try {
      supervisor::validateFunctionName(name);
      supervisor::validateFunctionConfig(config);
      // Before staging, for a quick answer; the commit checks again, since
      // a layer may be removed meanwhile.
      context_->registry.layerDirsOf(config);
    } catch (const supervisor::DeployError& e) {
      refuse(e.what());
    }
    checkRuntime(config.runtime);
    Stager::Work work = stagingWork(context_->registry.stagingArea(), request.getCode());
    call.releaseParams();
    return context_->stager.run(std::move(work))
        .then([this, call, name, config](std::unique_ptr<supervisor::StagedCode> staged) mutable {
          supervisor::FunctionVersion version;
          try {
            version = commitDeploy(context_->supervisor, context_->registry, context_->stager, name,
                                   config, *staged);
          } catch (const DeployRefused& e) {
            refuse(e.what());
          }
          auto results = call.getResults();
          results.setFunction(function(name));
          toWire(version, results.initInfo());
        });
  }

  kj::Promise<void> get(GetContext call) override {
    std::string name = text(call.getParams().getName());
    // The same answer as for a function that does not exist.
    if (!context_->peer.grants.maySee(name)) refuse(kNoSuchFunction + quoted(name, 64));
    supervisor::FunctionVersion latest = latestOrRefuse(*context_, name);
    auto results = call.getResults();
    results.setFunction(function(name));
    toWire(latest, results.initInfo());
    return kj::READY_NOW;
  }

  kj::Promise<void> list(ListContext call) override {
    std::vector<supervisor::FunctionVersion> latest;
    for (const std::string& name : context_->registry.list()) {
      if (!context_->peer.grants.maySee(name)) continue;
      if (auto version = context_->registry.latest(name)) latest.push_back(std::move(*version));
    }
    auto list = call.getResults().initFunctions(latest.size());
    for (size_t i = 0; i < latest.size(); ++i) toWire(latest[i], list[i]);
    return kj::READY_NOW;
  }

  kj::Promise<void> remove(RemoveContext call) override {
    std::string name = text(call.getParams().getName());
    context_->triggers.removeFunction(name);
    call.getResults().setRemoved(context_->supervisor.remove(name));
    context_->stager.removeTrees(context_->registry.takeRemoved());
    return kj::READY_NOW;
  }

  kj::Promise<void> stats(StatsContext call) override {
    toWire(context_->supervisor.stats(), call.getResults());
    return kj::READY_NOW;
  }

  kj::Promise<void> ping(PingContext call) override {
    call.getResults();  // an empty struct, not a null pointer: some clients insist
    return kj::READY_NOW;
  }

  kj::Promise<void> publishLayer(PublishLayerContext call) override {
    call.allowCancellation();  // as deploy's
    auto request = call.getParams();
    std::string name = text(request.getName());
    try {
      supervisor::validateLayerName(name);
    } catch (const supervisor::DeployError& e) {
      refuse(e.what());
    }
    Stager::Work work = stagingWork(context_->registry.layerStagingArea(), request.getCode());
    call.releaseParams();
    return context_->stager.run(std::move(work))
        .then([this, call, name](std::unique_ptr<supervisor::StagedCode> staged) mutable {
          supervisor::LayerVersion version;
          std::string refusal;
          try {
            version = context_->registry.publishLayer(name, *staged);
          } catch (const supervisor::DeployError& e) {
            refusal = e.what();
          } catch (const std::system_error& e) {
            refusal = std::string("thatchd could not store the layer: ") + e.what();
          }
          context_->registry.discard(*staged);
          context_->stager.removeTrees(context_->registry.takeRemoved());
          if (!refusal.empty()) refuse(refusal);
          toWire(version, call.getResults().initInfo());
        });
  }

  kj::Promise<void> listLayers(ListLayersContext call) override {
    const supervisor::LayerStore& layers = context_->registry.layers();
    std::vector<supervisor::LayerVersion> latest;
    for (const std::string& name : layers.list())
      if (auto version = layers.latest(name)) latest.push_back(std::move(*version));
    auto list = call.getResults().initLayers(latest.size());
    for (size_t i = 0; i < latest.size(); ++i) toWire(latest[i], list[i]);
    return kj::READY_NOW;
  }

  kj::Promise<void> layerVersions(LayerVersionsContext call) override {
    std::string name = text(call.getParams().getName());
    std::vector<supervisor::LayerVersion> versions = context_->registry.layers().versions(name);
    if (versions.empty()) refuse(kNoSuchLayer + quoted(name, 64));
    auto list = call.getResults().initVersions(versions.size());
    for (size_t i = 0; i < versions.size(); ++i) toWire(versions[i], list[i]);
    return kj::READY_NOW;
  }

  kj::Promise<void> removeLayer(RemoveLayerContext call) override {
    std::string name = text(call.getParams().getName());
    bool removed = false;
    std::string refusal;
    try {
      removed = context_->registry.removeLayer(name);
    } catch (const supervisor::DeployError& e) {
      refusal = e.what();
    } catch (const std::system_error& e) {
      refusal = std::string("thatchd could not remove the layer: ") + e.what();
    }
    context_->stager.removeTrees(context_->registry.takeRemoved());
    if (!refusal.empty()) refuse(refusal);
    call.getResults().setRemoved(removed);
    return kj::READY_NOW;
  }

  kj::Promise<void> listTriggers(ListTriggersContext call) override {
    std::string function = text(call.getParams().getFunction());
    std::vector<const Trigger*> triggers;
    for (const Trigger* trigger : context_->triggers.list(function))
      if (context_->peer.grants.maySee(trigger->function)) triggers.push_back(trigger);
    auto list = call.getResults().initTriggers(triggers.size());
    for (size_t i = 0; i < triggers.size(); ++i) triggerToWire(*triggers[i], list[i]);
    return kj::READY_NOW;
  }

  kj::Promise<void> addTrigger(AddTriggerContext call) override {
    Trigger trigger;
    try {
      trigger = triggerFromWire(call.getParams().getTrigger());
      if (!context_->peer.grants.maySee(trigger.function) ||
          !context_->registry.latest(trigger.function))
        refuse(kNoSuchFunction + quoted(trigger.function, 64));
      triggerToWire(context_->triggers.add(std::move(trigger)), call.getResults().initTrigger());
    } catch (const TriggerError& e) {
      refuse(e.what());
    }
    return kj::READY_NOW;
  }

  kj::Promise<void> removeTrigger(RemoveTriggerContext call) override {
    std::string id = text(call.getParams().getId());
    const Trigger* trigger = context_->triggers.find(id);
    bool removed = false;
    if (trigger && context_->peer.grants.maySee(trigger->function)) {
      try {
        removed = context_->triggers.remove(id);
      } catch (const TriggerError& e) {
        refuse(e.what());
      }
    }
    call.getResults().setRemoved(removed);
    return kj::READY_NOW;
  }

  kj::Promise<void> setTriggerEnabled(SetTriggerEnabledContext call) override {
    auto params = call.getParams();
    std::string id = text(params.getId());
    const Trigger* trigger = context_->triggers.find(id);
    if (!trigger || !context_->peer.grants.maySee(trigger->function))
      refuse("no trigger " + quoted(id, 128));
    try {
      context_->triggers.setEnabled(id, params.getEnabled());
    } catch (const TriggerError& e) {
      refuse(e.what());
    }
    call.getResults();
    return kj::READY_NOW;
  }

 private:
  // With its stats and, for a URL, where it is served.
  void triggerToWire(const Trigger& trigger, schema::Trigger::Builder out) {
    toWire(trigger, context_->triggers.stats(trigger.id), out);
    if (trigger.kind == TriggerKind::kUrl)
      out.getUrl().setUrl(functionUrlAddress(context_->triggers.httpAddress(),
                                             context_->config.lambda.region, trigger.url.urlId));
  }

  schema::Function::Client function(const std::string& name) {
    return kj::heap<FunctionImpl>(kj::heap<Context>(*context_), name);
  }

  void checkRuntime(const std::string& runtime) {
    std::vector<std::string> known = context_->supervisor.runtimeNames();
    if (std::find(known.begin(), known.end(), runtime) != known.end()) return;
    std::string list;
    for (const std::string& name : known) list += (list.empty() ? "" : ", ") + name;
    refuse("runtime " + quoted(runtime, 64) + " is not one of this thatchd's: " + list);
  }

  // What the staging thread does: its own copy of the code's bytes or path,
  // since the request is released before it runs. For a function's code
  // (DeployRequest) or a layer's (PublishLayerRequest): the same union.
  template <typename CodeReader>
  Stager::Work stagingWork(supervisor::StagingArea area, CodeReader code) {
    if (code.isDirectory()) {
      if (!context_->peer.mayReadHost)
        refuse(
            "deploying from a directory on thatchd's host is for root on the Unix socket; "
            "send an archive");
      return [area, path = text(code.getDirectory())]() { return area.directory(path); };
    }
    capnp::Data::Reader archive = code.getArchive();
    uint64_t limit = context_->config.limits.archiveBytes;
    if (archive.size() > limit)
      refuse("the archive is " + std::to_string(archive.size()) + " bytes, over the limit of " +
             base::formatSize(limit));
    return [area, bytes = std::string(archive.asChars().begin(), archive.size())]() {
      return area.archiveBytes(bytes);
    };
  }

  kj::Own<Context> context_;
};

}  // namespace

thatch::api::Thatch::Client makeThatch(supervisor::Supervisor& supervisor,
                                       supervisor::Registry& registry,
                                       const supervisor::Config& config, Stager& stager,
                                       Triggers& triggers, Peer peer) {
  return kj::heap<ThatchImpl>(
      kj::heap<Context>(Context{supervisor, registry, config, stager, triggers, peer}));
}

uint64_t maxRequestBytes(const supervisor::LimitsConfig& limits) {
  return std::max(limits.payloadBytes, limits.archiveBytes) + (64 << 10);
}

uint64_t maxQueuedAnswerBytes(const supervisor::LimitsConfig& limits) {
  return limits.resultBytes + limits.logBytes + (64 << 10);
}

}  // namespace thatchd
