#include "daemon/daemon.h"

#include <unistd.h>

#include <cstdio>
#include <stdexcept>

#include "sandbox/cgroup.h"
#include "supervisor/host_limits.h"

namespace thatchd {

supervisor::Config loadConfig(const ConfigSource& source) {
  supervisor::Config config =
      source.path.empty() ? supervisor::defaultConfig() : supervisor::loadConfig(source.path);
  if (!source.stateDir.empty()) config.stateDir = source.stateDir;
  if (!source.socketPath.empty()) config.socketPath = source.socketPath;
  if (!source.zygotePath.empty()) config.zygotePath = source.zygotePath;
  std::vector<supervisor::ConfigIssue> issues = supervisor::validateConfig(config);
  if (!issues.empty()) throw supervisor::ConfigError("", std::move(issues));
  return config;
}

std::string findZygote(const supervisor::Config& config) {
  if (!config.zygotePath.empty()) return config.zygotePath;
  std::string beside = supervisor::zygoteBesideThisProgram();
  if (access(beside.c_str(), X_OK) != 0)
    throw std::runtime_error("there is no thatch-zygote at " + beside +
                             ", beside this program; set the config's `zygote`");
  return beside;
}

namespace {

supervisor::EventLog eventLog(const supervisor::Config& config, supervisor::EventLog::Sink sink) {
  return supervisor::EventLog(config.logFormat == "json" ? supervisor::EventLog::Format::kJson
                                                         : supervisor::EventLog::Format::kText,
                              std::move(sink));
}

std::vector<sandbox::EgressAllow> egressAllowList(const supervisor::NetworkConfig& network) {
  std::vector<sandbox::EgressAllow> allow;
  for (const std::string& entry : network.allow) allow.push_back(sandbox::parseEgressAllow(entry));
  return allow;
}

RedisStreamRunner::Options redisStreamOptions(const supervisor::Config& config) {
  RedisStreamRunner::Options options;
  options.stateDir = config.stateDir;
  options.region = config.lambda.region;
  options.accountId = config.lambda.accountId;
  return options;
}

}  // namespace

Daemon::Daemon(const supervisor::Config& config, kj::AsyncIoContext& io,
               supervisor::EventLog::Sink logSink, kj::FunctionParam<void()> beforeSupervisor)
    : config_(config),
      lock_(config_.stateDir),
      registry_(config_.stateDir, {},
                {config_.registry.keepVersions, config_.registry.maxStoredBytes}),
      firewall_(config_.network.firewall, sandbox::egressTableName(config_.cgroupSubdir),
                sandbox::EgressSpec{}.bridge, egressAllowList(config_.network)),
      supervisor_(supervisorOptions(logSink, beforeSupervisor), registry_, clock_,
                  io.provider->getTimer(), io.unixEventPort, *io.lowLevelProvider),
      stager_(io.unixEventPort),
      events_(
          config_.stateDir + "/events", io.unixEventPort, io.provider->getTimer(),
          [this](EventQueue::Event event) {
            return supervisor_.invoke(event.function, std::move(event.payload), event.version)
                .then([](supervisor::InvokeResult result) { return result.status; });
          },
          eventQueueLimits(config_.lambda), eventLog(config_, logSink)),
      clients_(config_.clients),
      triggers_(config_.stateDir + "/triggers.json", eventLog(config_, logSink)),
      redisStreams_(
          redisStreamOptions(config_), io.unixEventPort,
          [this](const std::string& function, std::string event) {
            return supervisor_.invoke(function, std::move(event));
          },
          eventLog(config_, logSink)),
      wallClock_(config_.testing.scheduleClockScale, config_.stateDir + "/schedule-clock-epoch"),
      scheduler_({config_.stateDir, config_.lambda.region, config_.lambda.accountId}, events_,
                 io.provider->getTimer(), wallClock_, eventLog(config_, std::move(logSink))) {
  triggers_.setRunner(TriggerKind::kRedisStream, &redisStreams_);
  triggers_.setRunner(TriggerKind::kSchedule, &scheduler_);
}

Daemon::~Daemon() {
  triggers_.setRunner(TriggerKind::kSchedule, nullptr);
}

EventQueueLimits eventQueueLimits(const supervisor::LambdaConfig& lambda) {
  EventQueueLimits limits;
  limits.maxEvents = lambda.eventQueue;
  limits.concurrency = lambda.eventConcurrency;
  return limits;
}

supervisor::SupervisorOptions Daemon::supervisorOptions(
    supervisor::EventLog::Sink logSink, kj::FunctionParam<void()>& beforeSupervisor) {
  beforeSupervisor();
  // Before the zygotes start: they inherit the raised open-file limit.
  std::vector<supervisor::HostLimit> shortLimits =
      supervisor::ensureHostLimits(config_, supervisor::HostLimitProbe::thisHost());
  if (!shortLimits.empty())
    throw std::runtime_error("the host's limits are too low for this configuration:\n" +
                             supervisor::describeShortLimits(shortLimits));
  supervisor::SupervisorOptions options;
  options.config = config_;
  options.logSink = std::move(logSink);
  options.zygoteBinary = findZygote(config_);
  // cgroup v2 lets no cgroup that holds processes enable controllers for
  // its children, and the sandboxes' cgroups go below this process's own.
  options.cgroupParent = sandbox::moveIntoLeafCgroup(kLeafCgroup);
  if (!options.cgroupParent.empty())
    fprintf(stderr, "thatchd: moved into %s/%s (cgroup v2)\n", options.cgroupParent.c_str(),
            kLeafCgroup);
  return options;
}

supervisor::ConfigChange Daemon::reload(const supervisor::Config& next) {
  supervisor::ConfigChange change = supervisor::compareConfigs(config_, next);
  if (!change.needRestart.empty() || change.changed.empty()) return change;
  config_ = next;
  clients_ = Clients(config_.clients);
  registry_.setRetention({config_.registry.keepVersions, config_.registry.maxStoredBytes});
  supervisor_.reconfigure(config_);
  scheduler_.setAccount(config_.lambda.region, config_.lambda.accountId);
  return change;
}

bool Daemon::removeFunction(const std::string& name) {
  triggers_.removeFunction(name);
  return supervisor_.remove(name);
}

thatch::api::Thatch::Client Daemon::thatchFor(Peer peer) {
  return makeThatch(supervisor_, registry_, config_, stager_, triggers_, std::move(peer));
}

}  // namespace thatchd
