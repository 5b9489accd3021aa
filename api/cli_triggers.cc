// `thatch url`, `thatch schedule`, `thatch trigger` and `thatch ls
// --triggers`: the triggers of docs/triggers.md.
#include <cstdio>
#include <string>
#include <vector>

#include "api/cli_commands.h"
#include "api/cli_help.h"
#include "api/cli_text.h"
#include "base/json.h"
#include "base/units.h"

namespace cli {

using base::JsonWriter;
using thatch::TriggerInfo;

namespace {

void writeTrigger(JsonWriter& json, const TriggerInfo& t) {
  json.beginObject();
  json.key("id").stringValue(t.id);
  json.key("kind").stringValue(t.kind);
  json.key("function").stringValue(t.function);
  json.key("enabled").boolValue(t.enabled);
  json.key("createdUnixMs").signedValue(t.createdUnixMs);
  if (t.kind == "url") {
    json.key("urlId").stringValue(t.urlId);
    json.key("url").stringValue(t.url);
    json.key("authType").stringValue(t.authType);
    json.key("payloadFormat").stringValue(t.payloadFormat);
  } else if (t.kind == "schedule") {
    json.key("expression").stringValue(t.expression);
    json.key("detail");
    if (t.detail.empty())
      json.rawJson("{}");
    else
      json.rawJson(t.detail);  // thatchd accepted it as JSON
  } else if (t.kind == "redis-stream") {
    json.key("redisUrl").stringValue(t.redisUrl);
    json.key("stream").stringValue(t.stream);
    json.key("group").stringValue(t.group);
    json.key("batchSize").unsignedValue(t.batchSize);
    json.key("maxWaitMs").unsignedValue(uint64_t(t.maxWait.count()));
    json.key("maxAttempts").unsignedValue(t.maxAttempts);
    json.key("deadLetterStream").stringValue(t.deadLetterStream);
  }
  const TriggerInfo::Counts& s = t.stats;
  json.key("stats").beginObject();
  json.key("deliveries").unsignedValue(s.deliveries);
  json.key("messages").unsignedValue(s.messages);
  json.key("failures").unsignedValue(s.failures);
  json.key("skipped").unsignedValue(s.skipped);
  json.key("missed").unsignedValue(s.missed);
  json.key("lag").unsignedValue(s.lag);
  json.key("deadLettered").unsignedValue(s.deadLettered);
  json.key("lastRunUnixMs").signedValue(s.lastRunUnixMs);
  json.key("nextRunUnixMs").signedValue(s.nextRunUnixMs);
  json.key("lastError").stringValue(s.lastError);
  json.endObject();
  json.endObject();
}

void printTriggerJson(const TriggerInfo& trigger) {
  JsonWriter json;
  writeTrigger(json, trigger);
  writeOut(json.text() + "\n");
}

// What a trigger does, in one column.
std::string whatItDoes(const TriggerInfo& t) {
  if (t.kind == "url")
    return (t.url.empty() ? "url " + t.urlId : t.url) + " (" + t.authType + ", format " +
           t.payloadFormat + ")";
  if (t.kind == "schedule") return t.expression;
  if (t.kind == "redis-stream")
    return t.redisUrl + " " + t.stream + " (batch " + std::to_string(t.batchSize) + ", " +
           base::formatDuration(t.maxWait) + ")";
  return t.kind;
}

std::string timeOrDash(int64_t unixMs) {
  return unixMs == 0 ? "-" : localTime(unixMs);
}

int printTriggers(const Invocation& invocation, const std::vector<TriggerInfo>& triggers,
                  const std::string& kind) {
  std::vector<const TriggerInfo*> shown;
  for (const TriggerInfo& t : triggers)
    if (kind.empty() || t.kind == kind) shown.push_back(&t);
  if (invocation.json) {
    JsonWriter json;
    json.beginObject().key("triggers").beginArray();
    for (const TriggerInfo* t : shown) writeTrigger(json, *t);
    json.endArray().endObject();
    writeOut(json.text() + "\n");
    return kExitOk;
  }
  if (shown.empty()) {
    writeOut("no triggers\n");
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"ID", "FUNCTION", "STATE", "WHAT", "DELIVERIES",
                                                 "FAILURES", "SKIPPED", "MISSED", "LAG", "LAST RUN",
                                                 "NEXT RUN", "LAST ERROR"}};
  for (const TriggerInfo* t : shown) {
    const TriggerInfo::Counts& s = t->stats;
    rows.push_back({t->id, t->function, t->enabled ? "enabled" : "disabled", whatItDoes(*t),
                    std::to_string(s.deliveries), std::to_string(s.failures),
                    std::to_string(s.skipped), std::to_string(s.missed), std::to_string(s.lag),
                    timeOrDash(s.lastRunUnixMs), timeOrDash(s.nextRunUnixMs),
                    s.lastError.empty() ? "-" : oneLine(s.lastError)});
  }
  writeOut(formatTable(rows));
  return kExitOk;
}

void expectArgs(const Invocation& invocation, size_t count, std::string_view expected) {
  if (invocation.args.size() != count + 1)
    throw UsageError(invocation.command, std::string(invocation.command->name) + " " +
                                             invocation.args[0] + " takes " +
                                             std::string(expected));
}

int removeTrigger(const Invocation& invocation, Session& session, const std::string& id) {
  bool removed = session.thatch().removeTrigger(id);
  if (invocation.json) {
    JsonWriter json;
    json.beginObject().key("id").stringValue(id).key("removed").boolValue(removed).endObject();
    writeOut(json.text() + "\n");
  } else if (removed) {
    writeOut("removed trigger " + id + "\n");
  } else {
    writeErr("thatch: no trigger " + id + "\n");
  }
  return removed ? kExitOk : kExitNotFound;
}

const TriggerInfo* urlOf(const std::vector<TriggerInfo>& triggers) {
  for (const TriggerInfo& t : triggers)
    if (t.kind == "url") return &t;
  return nullptr;
}

}  // namespace

int urlCommand(const Invocation& invocation, Session& session) {
  const std::string& sub = invocation.args[0];
  if (sub != "create" && sub != "get" && sub != "rm")
    throw UsageError(invocation.command,
                     "unknown url command " + inQuotes(sub) + " (create, get or rm)");
  expectArgs(invocation, 1, "NAME");
  const std::string& name = invocation.args[1];
  if (sub == "create") {
    TriggerInfo trigger;
    trigger.kind = "url";
    trigger.function = name;
    trigger.authType = invocation.value("--auth-type").value_or("NONE");
    trigger.payloadFormat = invocation.value("--payload-format").value_or("2.0");
    TriggerInfo added = session.thatch().addTrigger(trigger);
    if (invocation.json)
      printTriggerJson(added);
    else
      writeOut((added.url.empty() ? "url id " + added.urlId + " (thatchd has no http_listen)"
                                  : added.url) +
               "\n");
    return kExitOk;
  }
  std::vector<TriggerInfo> triggers = session.thatch().listTriggers(name);
  const TriggerInfo* url = urlOf(triggers);
  if (sub == "get") {
    if (!url) {
      writeErr("thatch: function " + name + " has no URL\n");
      return kExitNotFound;
    }
    if (invocation.json)
      printTriggerJson(*url);
    else
      writeOut(whatItDoes(*url) + (url->enabled ? "" : " disabled") + "\n");
    return kExitOk;
  }
  return removeTrigger(invocation, session, url ? url->id : "url-" + name);
}

int scheduleCommand(const Invocation& invocation, Session& session) {
  const std::string& sub = invocation.args[0];
  if (sub == "add") {
    expectArgs(invocation, 2, "NAME EXPRESSION");
    TriggerInfo trigger;
    trigger.kind = "schedule";
    trigger.function = invocation.args[1];
    trigger.expression = invocation.args[2];
    trigger.detail = invocation.value("--data").value_or("");
    trigger.enabled = !invocation.has("--disabled");
    TriggerInfo added = session.thatch().addTrigger(trigger);
    if (invocation.json)
      printTriggerJson(added);
    else
      writeOut(added.id +
               (added.stats.nextRunUnixMs ? " next run " + localTime(added.stats.nextRunUnixMs)
                                          : std::string(added.enabled ? "" : " (disabled)")) +
               "\n");
    return kExitOk;
  }
  if (sub == "ls") {
    if (invocation.args.size() > 2)
      throw UsageError(invocation.command, "schedule ls takes at most a NAME");
    std::string name = invocation.args.size() == 2 ? invocation.args[1] : "";
    return printTriggers(invocation, session.thatch().listTriggers(name), "schedule");
  }
  if (sub == "rm") {
    expectArgs(invocation, 1, "ID");
    return removeTrigger(invocation, session, invocation.args[1]);
  }
  throw UsageError(invocation.command,
                   "unknown schedule command " + inQuotes(sub) + " (add, ls or rm)");
}

int triggerCommand(const Invocation& invocation, Session& session) {
  const std::string& sub = invocation.args[0];
  if (sub == "add") {
    if (invocation.args.size() < 2 || invocation.args[1] != "redis-stream")
      throw UsageError(invocation.command,
                       "trigger add takes a kind: redis-stream URL STREAM FUNCTION "
                       "(function URLs: `thatch url`; schedules: `thatch schedule`)");
    expectArgs(invocation, 4, "redis-stream URL STREAM FUNCTION");
    TriggerInfo trigger;
    trigger.kind = "redis-stream";
    trigger.redisUrl = invocation.args[2];
    trigger.stream = invocation.args[3];
    trigger.function = invocation.args[4];
    if (auto v = invocation.value("--batch-size"))
      trigger.batchSize = countOption("--batch-size", *v);
    if (auto v = invocation.value("--max-wait")) trigger.maxWait = durationOption("--max-wait", *v);
    if (auto v = invocation.value("--max-attempts"))
      trigger.maxAttempts = countOption("--max-attempts", *v);
    trigger.group = invocation.value("--group").value_or("");
    trigger.deadLetterStream = invocation.value("--dead-letter").value_or("");
    trigger.enabled = !invocation.has("--disabled");
    TriggerInfo added = session.thatch().addTrigger(trigger);
    if (invocation.json)
      printTriggerJson(added);
    else
      writeOut(added.id + "\n");
    return kExitOk;
  }
  if (sub == "ls") {
    if (invocation.args.size() > 2)
      throw UsageError(invocation.command, "trigger ls takes at most a FUNCTION");
    std::string name = invocation.args.size() == 2 ? invocation.args[1] : "";
    return printTriggers(invocation, session.thatch().listTriggers(name), "");
  }
  if (sub == "rm") {
    expectArgs(invocation, 1, "ID");
    return removeTrigger(invocation, session, invocation.args[1]);
  }
  if (sub == "enable" || sub == "disable") {
    expectArgs(invocation, 1, "ID");
    session.thatch().setTriggerEnabled(invocation.args[1], sub == "enable");
    if (invocation.json) {
      JsonWriter json;
      json.beginObject().key("id").stringValue(invocation.args[1]);
      json.key("enabled").boolValue(sub == "enable").endObject();
      writeOut(json.text() + "\n");
    } else {
      writeOut(sub + "d trigger " + invocation.args[1] + "\n");
    }
    return kExitOk;
  }
  throw UsageError(invocation.command, "unknown trigger command " + inQuotes(sub) +
                                           " (add, ls, rm, enable or disable)");
}

int listTriggersCommand(const Invocation& invocation, Session& session) {
  return printTriggers(invocation, session.thatch().listTriggers(), "");
}

}  // namespace cli
