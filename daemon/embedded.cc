// include/thatch/embedded.h: the one daemon assembly (daemon/daemon.h) on
// the program's own thread, behind a thatch::Thatch.
#include "thatch/embedded.h"

#include <string>

#include "api/client_impl.h"
#include "daemon/daemon.h"

namespace thatch {

namespace {

struct Embedded final : Thatch::Impl::Local {
  Embedded(const supervisor::Config& config, kj::AsyncIoContext& io, supervisor::EventLog::Sink log)
      : daemon(config, io, std::move(log)) {}
  thatchd::Daemon daemon;
};

Error cannotStart(const std::string& why) {
  return Error(Error::Kind::kConnect, "cannot start thatch in process: " + why);
}

std::string describe(const supervisor::ConfigError& e) {
  if (!e.source().empty()) return e.what();
  std::string text;  // the overrides': no file to name
  for (const supervisor::ConfigIssue& issue : e.issues())
    text += (text.empty() ? "" : "; ") + issue.key + ": " + issue.message;
  return text;
}

}  // namespace

std::unique_ptr<Thatch> startInProcess(const InProcessOptions& options) {
  auto impl = std::make_unique<Thatch::Impl>();
  try {
    thatchd::ConfigSource source;
    source.path = options.configPath;
    source.stateDir = options.stateDir;
    source.zygotePath = options.zygotePath;
    supervisor::Config config = thatchd::loadConfig(source);
    auto embedded = std::make_unique<Embedded>(config, impl->io, options.log);
    impl->thatch = embedded->daemon.thatchFor({"in-process", true, supervisor::allGrants()});
    impl->local = std::move(embedded);
  } catch (const supervisor::ConfigError& e) {
    throw cannotStart(describe(e));
  } catch (const std::exception& e) {
    throw cannotStart(e.what());
  } catch (const kj::Exception& e) {
    throw cannotStart(e.getDescription().cStr());
  }
  impl->readsDirectoriesInPlace = true;
  return std::make_unique<Thatch>(std::move(impl));
}

}  // namespace thatch
