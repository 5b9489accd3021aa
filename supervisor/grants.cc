#include "supervisor/grants.h"

#include "supervisor/registry.h"

namespace supervisor {

namespace {

// The words that stand alone, and what each sets. "invoke", "write" are
// the HTTP API's first words, kept as aliases of "invoke:*" and "deploy".
struct Word {
  std::string_view word;
  void (*apply)(Grants&);
};

const Word kWords[] = {
    {"invoke:*", [](Grants& g) { g.invokeAll = true; }},
    {"invoke", [](Grants& g) { g.invokeAll = true; }},
    {"read", [](Grants& g) { g.read = true; }},
    {"deploy", [](Grants& g) { g.deploy = true; }},
    {"write", [](Grants& g) { g.deploy = true; }},
    {"metrics", [](Grants& g) { g.metrics = true; }},
    {"admin", [](Grants& g) { g.invokeAll = g.read = g.deploy = g.stats = g.metrics = true; }},
};

constexpr std::string_view kInvokePrefix = "invoke:";

}  // namespace

const char kGrantWords[] =
    "\"invoke:NAME\", \"invoke:*\", \"read\", \"deploy\", \"admin\", \"metrics\" (and the "
    "older \"invoke\", \"write\")";

bool addGrant(std::string_view word, Grants& into) {
  for (const Word& w : kWords) {
    if (w.word != word) continue;
    w.apply(into);
    return true;
  }
  if (word.substr(0, kInvokePrefix.size()) != kInvokePrefix) return false;
  std::string_view name = word.substr(kInvokePrefix.size());
  try {
    validateFunctionName(name);
  } catch (const DeployError&) {
    return false;
  }
  into.invoke.insert(std::string(name));
  return true;
}

Grants grantsOf(const std::vector<std::string>& allow) {
  Grants grants;
  for (const std::string& word : allow) addGrant(word, grants);
  return grants;
}

Grants allGrants() {
  return grantsOf({"admin"});
}

}  // namespace supervisor
