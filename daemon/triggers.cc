#include "daemon/triggers.h"

#include <capnp/compat/json.h>
#include <capnp/message.h>
#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "api/wire.h"
#include "base/fd.h"
#include "base/sys_error.h"
#include "supervisor/store_files.h"

namespace thatchd {

namespace {

constexpr uint64_t kMaxFileBytes = 16 << 20;  // kMaxTriggers of the largest, with room

using thatch::wire::text;

// Lambda's url ids: 32 lowercase letters and digits.
std::string newUrlId() {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) base::throwSysError("getrandom");
    got += size_t(n);
  }
  std::string id;
  for (unsigned char b : bytes) id += kAlphabet[b % 36];
  return id;
}

// The number N of an id "KIND-N"; 0 for any other id.
uint64_t numberOf(const std::string& id) {
  size_t dash = id.rfind('-');
  if (dash == std::string::npos) return 0;
  uint64_t n = 0;
  const char* first = id.data() + dash + 1;
  const char* last = id.data() + id.size();
  auto [end, ec] = std::from_chars(first, last, n);
  return ec == std::errc() && end == last ? n : 0;
}

std::string readWhole(const std::string& path, bool& exists) {
  base::Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  exists = fd || errno != ENOENT;
  if (!fd) {
    if (!exists) return "";
    base::throwSysError("open " + path);
  }
  std::string bytes;
  char buffer[65536];
  for (;;) {
    ssize_t n = read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) base::throwSysError("read " + path);
    if (n == 0) break;
    bytes.append(buffer, size_t(n));
    if (bytes.size() > kMaxFileBytes)
      throw std::runtime_error(path + " is over " + std::to_string(kMaxFileBytes) + " bytes");
  }
  return bytes;
}

}  // namespace

const char* kindName(TriggerKind kind) {
  switch (kind) {
    case TriggerKind::kUrl:
      return "url";
    case TriggerKind::kSchedule:
      return "schedule";
    case TriggerKind::kRedisStream:
      return "redis-stream";
  }
  return "?";
}

std::string functionUrlAddress(const std::string& httpListen, const std::string& region,
                               const std::string& urlId) {
  size_t colon = httpListen.rfind(':');
  if (httpListen.empty() || colon == std::string::npos) return "";
  return "http://" + urlId + ".lambda-url." + region +
         ".localhost:" + httpListen.substr(colon + 1) + "/";
}

void toWire(const Trigger& trigger, const TriggerStats* stats, thatch::api::Trigger::Builder out) {
  out.setId(trigger.id);
  out.setFunction(trigger.function);
  out.setEnabled(trigger.enabled);
  out.setCreatedUnixMs(trigger.createdUnixMs);
  switch (trigger.kind) {
    case TriggerKind::kUrl: {
      auto url = out.initUrl();
      url.setUrlId(trigger.url.urlId);
      url.setAuthType(trigger.url.authType);
      url.setPayloadFormat(trigger.url.payloadFormat);
      break;
    }
    case TriggerKind::kSchedule: {
      auto schedule = out.initSchedule();
      schedule.setExpression(trigger.schedule.expression);
      schedule.setDetail(trigger.schedule.detail);
      break;
    }
    case TriggerKind::kRedisStream: {
      const RedisStreamSettings& r = trigger.redis;
      auto redis = out.initRedisStream();
      redis.setUrl(r.url);
      redis.setStream(r.stream);
      redis.setGroup(r.group);
      redis.setBatchSize(r.batchSize);
      redis.setMaxWaitMs(uint32_t(r.maxWait.count()));
      redis.setMaxAttempts(r.maxAttempts);
      redis.setDeadLetterStream(r.deadLetterStream);
      break;
    }
  }
  if (!stats) return;
  auto s = out.initStats();
  s.setDeliveries(stats->deliveries);
  s.setMessages(stats->messages);
  s.setFailures(stats->failures);
  s.setSkipped(stats->skipped);
  s.setMissed(stats->missed);
  s.setLag(stats->lag);
  s.setDeadLettered(stats->deadLettered);
  s.setLastRunUnixMs(stats->lastRunUnixMs);
  s.setNextRunUnixMs(stats->nextRunUnixMs);
  s.setLastError(stats->lastError);
}

Trigger triggerFromWire(thatch::api::Trigger::Reader in) {
  Trigger trigger;
  trigger.id = text(in.getId());
  trigger.function = text(in.getFunction());
  trigger.enabled = in.getEnabled();
  trigger.createdUnixMs = in.getCreatedUnixMs();
  switch (in.which()) {
    case thatch::api::Trigger::URL: {
      auto url = in.getUrl();
      trigger.kind = TriggerKind::kUrl;
      trigger.url.urlId = text(url.getUrlId());
      trigger.url.authType = text(url.getAuthType());
      trigger.url.payloadFormat = text(url.getPayloadFormat());
      break;
    }
    case thatch::api::Trigger::SCHEDULE: {
      auto schedule = in.getSchedule();
      trigger.kind = TriggerKind::kSchedule;
      trigger.schedule.expression = text(schedule.getExpression());
      trigger.schedule.detail = text(schedule.getDetail());
      break;
    }
    case thatch::api::Trigger::REDIS_STREAM: {
      auto redis = in.getRedisStream();
      RedisStreamSettings& r = trigger.redis;
      trigger.kind = TriggerKind::kRedisStream;
      r.url = text(redis.getUrl());
      r.stream = text(redis.getStream());
      if (redis.getGroup().size() > 0) r.group = text(redis.getGroup());
      if (redis.getBatchSize() > 0) r.batchSize = redis.getBatchSize();
      if (redis.getMaxWaitMs() > 0) r.maxWait = std::chrono::milliseconds(redis.getMaxWaitMs());
      if (redis.getMaxAttempts() > 0) r.maxAttempts = redis.getMaxAttempts();
      r.deadLetterStream = text(redis.getDeadLetterStream());
      break;
    }
    default:
      throw TriggerError("a trigger of a kind this thatchd does not know");
  }
  return trigger;
}

Triggers::Triggers(std::string path, supervisor::EventLog log)
    : path_(std::move(path)), log_(std::move(log)) {
  load();
}

Triggers::~Triggers() = default;

void Triggers::load() {
  bool exists = false;
  std::string bytes = readWhole(path_, exists);
  if (!exists) return;
  capnp::MallocMessageBuilder message;
  auto file = message.initRoot<thatch::api::ListTriggersResult>();
  try {
    capnp::JsonCodec codec;
    codec.decode(kj::ArrayPtr<const char>(bytes.data(), bytes.size()), file);
  } catch (const kj::Exception& e) {
    throw std::runtime_error(path_ + " is not a trigger list thatchd can read (" +
                             e.getDescription().cStr() + "): fix or move it away");
  }
  for (auto wire : file.asReader().getTriggers()) {
    Trigger trigger;
    try {
      trigger = triggerFromWire(wire);
    } catch (const TriggerError& e) {
      throw std::runtime_error(path_ + ": " + e.what());
    }
    if (trigger.id.empty() || entries_.count(trigger.id))
      throw std::runtime_error(path_ + ": a trigger without an id, or two with one");
    if (trigger.kind != TriggerKind::kUrl)
      lastNumber_ = std::max(lastNumber_, numberOf(trigger.id));
    if (trigger.kind == TriggerKind::kUrl) urlIds_[trigger.url.urlId] = trigger.id;
    std::string id = trigger.id;
    entries_[id].trigger = std::move(trigger);
  }
}

void Triggers::save() const {
  capnp::MallocMessageBuilder message;
  auto file = message.initRoot<thatch::api::ListTriggersResult>();
  auto list = file.initTriggers(entries_.size());
  size_t i = 0;
  for (const auto& [id, entry] : entries_) toWire(entry.trigger, nullptr, list[i++]);
  capnp::JsonCodec codec;
  codec.setPrettyPrint(true);
  kj::String json = codec.encode(file.asReader());
  std::string tmp = path_ + ".tmp";
  try {
    base::Fd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) base::throwSysError("create " + tmp);
    supervisor::writeDurably(fd.get(), tmp, std::string(json.cStr(), json.size()) + "\n");
    fd = base::Fd();
    if (rename(tmp.c_str(), path_.c_str()) != 0) base::throwSysError("rename " + tmp);
    std::string dir = std::filesystem::path(path_).parent_path().string();
    base::Fd dirFd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dirFd) fsync(dirFd.get());
  } catch (const std::system_error& e) {
    unlink(tmp.c_str());
    throw TriggerError(std::string("thatchd could not store its triggers: ") + e.what());
  }
}

TriggerRunner* Triggers::runnerOf(TriggerKind kind) const {
  auto it = runners_.find(kind);
  return it == runners_.end() ? nullptr : it->second;
}

void Triggers::setRunner(TriggerKind kind, TriggerRunner* runner) {
  if (TriggerRunner* old = runnerOf(kind))
    for (auto& [id, entry] : entries_)
      if (entry.trigger.kind == kind && entry.trigger.enabled) old->stop(id);
  runners_[kind] = runner;
  if (!runner) return;
  for (auto& [id, entry] : entries_)
    if (entry.trigger.kind == kind) startIfEnabled(entry);
}

void Triggers::startIfEnabled(Entry& entry) {
  if (!entry.trigger.enabled) return;
  if (TriggerRunner* runner = runnerOf(entry.trigger.kind))
    runner->start(entry.trigger, entry.stats);
}

void Triggers::stopIfRunning(const Trigger& trigger) {
  if (!trigger.enabled) return;
  if (TriggerRunner* runner = runnerOf(trigger.kind)) runner->stop(trigger.id);
}

namespace {

// Fills in a URL's defaults; throws TriggerError for bad settings.
void checkUrlSettings(FunctionUrlSettings& url) {
  if (url.authType.empty()) url.authType = "NONE";
  if (url.authType != "NONE" && url.authType != "AWS_IAM")
    throw TriggerError("a URL's auth type is NONE or AWS_IAM, not '" + url.authType + "'");
  if (url.payloadFormat.empty()) url.payloadFormat = "2.0";
  if (url.payloadFormat != "2.0" && url.payloadFormat != "1.0")
    throw TriggerError("a URL's payload format is 2.0 or 1.0, not '" + url.payloadFormat + "'");
}

}  // namespace

const Trigger& Triggers::add(Trigger trigger) {
  if (entries_.size() >= kMaxTriggers)
    throw TriggerError("thatchd has " + std::to_string(kMaxTriggers) +
                       " triggers, its most: remove one first");
  if (trigger.function.empty()) throw TriggerError("a trigger needs a function");
  if (trigger.kind == TriggerKind::kUrl) {
    if (urlOf(trigger.function))
      throw TriggerError("function '" + trigger.function + "' already has a URL");
    checkUrlSettings(trigger.url);
    trigger.url.urlId = newUrlId();
    trigger.id = std::string("url-") + trigger.function;
  } else {
    TriggerRunner* runner = runnerOf(trigger.kind);
    if (!runner)
      throw TriggerError(std::string("this thatchd does not run ") + kindName(trigger.kind) +
                         " triggers");
    runner->check(trigger);
    trigger.id = std::string(kindName(trigger.kind)) + "-" + std::to_string(lastNumber_ + 1);
  }
  trigger.createdUnixMs = supervisor::nowUnixMs();
  std::string id = trigger.id;
  auto [it, inserted] = entries_.emplace(id, Entry{std::move(trigger), {}});
  try {
    save();
  } catch (...) {
    entries_.erase(it);
    throw;
  }
  if (it->second.trigger.kind == TriggerKind::kUrl)
    urlIds_[it->second.trigger.url.urlId] = id;
  else
    ++lastNumber_;
  log_.write("trigger_added", {{"id", id},
                               {"function", it->second.trigger.function},
                               {"enabled", it->second.trigger.enabled}});
  startIfEnabled(it->second);
  return it->second.trigger;
}

bool Triggers::remove(const std::string& id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return false;
  Entry gone = std::move(it->second);
  entries_.erase(it);
  try {
    save();
  } catch (...) {
    entries_.emplace(id, std::move(gone));
    throw;
  }
  if (gone.trigger.kind == TriggerKind::kUrl) urlIds_.erase(gone.trigger.url.urlId);
  stopIfRunning(gone.trigger);
  if (TriggerRunner* runner = runnerOf(gone.trigger.kind)) runner->forget(id);
  log_.write("trigger_removed", {{"id", id}, {"function", gone.trigger.function}});
  return true;
}

void Triggers::setEnabled(const std::string& id, bool enabled) {
  auto it = entries_.find(id);
  if (it == entries_.end()) throw TriggerError("no trigger '" + id + "'");
  Trigger& trigger = it->second.trigger;
  if (trigger.enabled == enabled) return;
  trigger.enabled = enabled;
  try {
    save();
  } catch (...) {
    trigger.enabled = !enabled;
    throw;
  }
  if (enabled) {
    startIfEnabled(it->second);
  } else if (TriggerRunner* runner = runnerOf(trigger.kind)) {
    runner->stop(id);
    it->second.stats.nextRunUnixMs = 0;
  }
  log_.write(enabled ? "trigger_enabled" : "trigger_disabled",
             {{"id", id}, {"function", trigger.function}});
}

const Trigger& Triggers::updateUrl(const std::string& id, FunctionUrlSettings settings) {
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.trigger.kind != TriggerKind::kUrl)
    throw TriggerError("no function URL '" + id + "'");
  Trigger& trigger = it->second.trigger;
  checkUrlSettings(settings);
  settings.urlId = trigger.url.urlId;
  if (settings == trigger.url) return trigger;
  FunctionUrlSettings before = trigger.url;
  trigger.url = settings;
  try {
    save();
  } catch (...) {
    trigger.url = before;
    throw;
  }
  log_.write("trigger_updated", {{"id", id},
                                 {"function", trigger.function},
                                 {"auth_type", trigger.url.authType},
                                 {"payload_format", trigger.url.payloadFormat}});
  return trigger;
}

size_t Triggers::removeFunction(const std::string& function) {
  std::vector<std::string> ids;
  for (const auto& [id, entry] : entries_)
    if (entry.trigger.function == function) ids.push_back(id);
  size_t removed = 0;
  for (const std::string& id : ids) {
    try {
      removed += remove(id) ? 1 : 0;
    } catch (const TriggerError& e) {
      // The function is gone: its trigger stops now and starts nothing
      // more (a start finds no function); the file keeps it until the next
      // change can be written.
      log_.write("trigger_remove_failed", {{"id", id}, {"error", e.what()}});
    }
  }
  return removed;
}

std::vector<const Trigger*> Triggers::list(const std::string& function) const {
  std::vector<const Trigger*> out;
  for (const auto& [id, entry] : entries_)
    if (function.empty() || entry.trigger.function == function) out.push_back(&entry.trigger);
  std::stable_sort(out.begin(), out.end(),
                   [](const Trigger* a, const Trigger* b) { return a->function < b->function; });
  return out;
}

const Trigger* Triggers::find(const std::string& id) const {
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : &it->second.trigger;
}

const Trigger* Triggers::urlOf(const std::string& function) const {
  return find(std::string("url-") + function);
}

const Trigger* Triggers::byUrlId(const std::string& urlId) const {
  auto it = urlIds_.find(urlId);
  return it == urlIds_.end() ? nullptr : find(it->second);
}

TriggerStats* Triggers::stats(const std::string& id) {
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : &it->second.stats;
}

const TriggerStats* Triggers::stats(const std::string& id) const {
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : &it->second.stats;
}

}  // namespace thatchd
