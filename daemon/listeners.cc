#include "daemon/listeners.h"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "base/fd.h"
#include "base/text.h"

namespace thatchd {

namespace {

// Whether something accepts connections at `path` (a live thatchd).
bool socketIsLive(const std::string& path) {
  base::Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  return connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

// A PEM file, read once at start (before the loop serves anyone).
std::string readPem(const char* key, const std::string& path) {
  std::ifstream in(path);
  std::ostringstream contents;
  if (in) contents << in.rdbuf();
  if (!in || in.bad())
    throw std::runtime_error(std::string(key) + " " + path +
                             ": cannot read it: " + strerror(errno));
  return std::move(contents).str();
}

supervisor::EventLog::Format logFormat(const supervisor::Config& config) {
  return config.logFormat == "json" ? supervisor::EventLog::Format::kJson
                                    : supervisor::EventLog::Format::kText;
}

}  // namespace

Listeners::Listeners(const supervisor::Config& config, kj::AsyncIoProvider& io,
                     supervisor::EventLog::Sink logSink)
    : config_(config), io_(io), log_(logFormat(config), std::move(logSink)) {}

Listeners::~Listeners() {
  close();
}

void Listeners::bind(kj::WaitScope& waitScope) {
  bindUnix(waitScope);
  if (!config_.tcpListen.empty()) bindTcp(waitScope);
  if (!config_.httpListen.empty()) bindHttp(waitScope);
}

void Listeners::close() {
  listeners_.clear();
  http_ = {};
  if (!socketPath_.empty()) {
    unlink(socketPath_.c_str());
    socketPath_.clear();
  }
}

void Listeners::bindUnix(kj::WaitScope& waitScope) {
  const std::string& path = config_.socketPath;
  if (path.size() >= sizeof(sockaddr_un::sun_path))
    throw std::runtime_error("socket path " + path + " is longer than " +
                             std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
  std::string dir = path.substr(0, path.rfind('/'));
  if (!dir.empty() && mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    throw std::runtime_error("cannot create " + dir + ": " + strerror(errno));
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) throw std::runtime_error(path + " exists and is not a socket");
    if (socketIsLive(path)) throw std::runtime_error("another thatchd is serving on " + path);
    unlink(path.c_str());  // a stale socket of a thatchd that was killed
  }
  gid_t group = static_cast<gid_t>(-1);
  if (!config_.socketGroup.empty()) {
    struct group* entry = getgrnam(config_.socketGroup.c_str());
    if (!entry)
      throw std::runtime_error("socket_group " + base::quoted(config_.socketGroup, 64) +
                               ": no such group");
    group = entry->gr_gid;
  }
  // Created 0660 from the start: no window in which anyone else may connect.
  mode_t previous = umask(0117);
  Listener listener;
  try {
    listener.receiver =
        io_.getNetwork().parseAddress(kj::str("unix:", path.c_str())).wait(waitScope)->listen();
  } catch (...) {
    umask(previous);
    throw;
  }
  umask(previous);
  socketPath_ = path;
  if (chown(path.c_str(), static_cast<uid_t>(-1), group) != 0 || chmod(path.c_str(), 0660) != 0)
    throw std::runtime_error("cannot set the owner and mode of " + path + ": " + strerror(errno));
  listener.local = true;
  listener.address = path;
  log_.write("listening", {{"address", "unix:" + path}});
  listeners_.push_back(std::move(listener));
}

void Listeners::bindTcp(kj::WaitScope& waitScope) {
  Listener listener;
  listener.receiver =
      io_.getNetwork().parseAddress(kj::str(config_.tcpListen.c_str())).wait(waitScope)->listen();
  listener.address = config_.tcpListen;
  if (!config_.tlsCert.empty()) listener.tls = tlsServer();
  log_.write("listening", {{"address", (listener.tls ? "tls:" : "tcp:") + config_.tcpListen}});
  // Tokens cross it in the clear: fine on loopback, a risk on a network
  // (docs/security.md, "Network clients").
  std::string host = config_.tcpListen.substr(0, config_.tcpListen.rfind(':'));
  if (!listener.tls && host != "localhost" && host != "[::1]" && host.rfind("127.", 0) != 0)
    log_.write("tcp_listen_unencrypted",
               {{"address", config_.tcpListen},
                {"warning", "tokens and payloads cross the network in the clear"}});
  listeners_.push_back(std::move(listener));
}

kj::Own<kj::TlsContext> Listeners::tlsServer() {
  std::string cert = readPem("tls_cert", config_.tlsCert);
  std::string key = readPem("tls_key", config_.tlsKey);
  try {
    kj::TlsKeypair keypair{kj::TlsPrivateKey(kj::StringPtr(key.c_str())),
                           kj::TlsCertificate(kj::StringPtr(cert.c_str()))};
    kj::TlsContext::Options options;
    options.defaultKeypair = keypair;
    // The context keeps its own references to the key and certificate.
    return kj::heap<kj::TlsContext>(kj::mv(options));
  } catch (const kj::Exception& e) {
    throw std::runtime_error("tls_cert " + config_.tlsCert + ", tls_key " + config_.tlsKey + ": " +
                             e.getDescription().cStr());
  }
}

void Listeners::bindHttp(kj::WaitScope& waitScope) {
  http_.receiver =
      io_.getNetwork().parseAddress(kj::str(config_.httpListen.c_str())).wait(waitScope)->listen();
  // Port 0 is any free port: the log says which.
  std::string host = config_.httpListen.substr(0, config_.httpListen.rfind(':'));
  http_.address = host + ":" + std::to_string(http_.receiver->getPort());
  log_.write("listening", {{"address", "http:" + http_.address}});
}

}  // namespace thatchd
