// A real redis-server for tests: on a free loopback port, in a directory of
// its own, nothing saved; stopped (SIGKILL if need be) when destroyed, and
// with the test process (PR_SET_PDEATHSIG). A small blocking client beside it.
#pragma once

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/testing.h"

namespace testing_util {

// A port the kernel just gave out, free again: another process could take
// it before redis-server binds it, which start() reports.
inline int freeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) < 0) {
    close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  close(fd);
  return ntohs(address.sin_port);
}

struct RedisReplyFree {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using RedisReply = std::unique_ptr<redisReply, RedisReplyFree>;

// A blocking client for the test's own commands.
class RedisClient {
 public:
  explicit RedisClient(int port) {
    timeval timeout{10, 0};
    context_ = redisConnectWithTimeout("127.0.0.1", port, timeout);
    if (!context_ || context_->err)
      throw std::runtime_error("cannot connect to redis on port " + std::to_string(port));
    redisSetTimeout(context_, timeout);
  }
  ~RedisClient() {
    if (context_) redisFree(context_);
  }
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  RedisReply command(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    for (const std::string& arg : args) {
      argv.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    auto* reply = static_cast<redisReply*>(
        redisCommandArgv(context_, int(argv.size()), argv.data(), lengths.data()));
    if (!reply) throw std::runtime_error("redis: " + std::string(context_->errstr));
    return RedisReply(reply);
  }
  // A command whose answer is a string (XADD's id, ...).
  std::string text(const std::vector<std::string>& args) {
    RedisReply reply = command(args);
    if (reply->type == REDIS_REPLY_ERROR)
      throw std::runtime_error(args[0] + ": " + std::string(reply->str, reply->len));
    return reply->str ? std::string(reply->str, reply->len) : "";
  }
  long long integer(const std::vector<std::string>& args) {
    RedisReply reply = command(args);
    if (reply->type != REDIS_REPLY_INTEGER) throw std::runtime_error(args[0] + ": not an integer");
    return reply->integer;
  }

 private:
  redisContext* context_ = nullptr;
};

class RedisServer {
 public:
  // On `port` (0: a free one). Waits until it answers PING.
  explicit RedisServer(int port = 0) : port_(port ? port : freeLoopbackPort()) { start(); }
  ~RedisServer() { stop(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  void start() {
    if (pid_ > 0) return;
    std::string log = dir_.path() + "/redis.log";
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      execlp("redis-server", "redis-server", "--port", std::to_string(port_).c_str(), "--bind",
             "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir_.path().c_str(),
             "--logfile", log.c_str(), nullptr);
      _exit(127);
    }
    bool up = eventually(
        [&]() {
          int status;
          if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return true;
          }
          try {
            RedisClient client(port_);
            return client.text({"PING"}) == "PONG";
          } catch (const std::exception&) {
            return false;
          }
        },
        std::chrono::seconds(20));
    if (pid_ < 0 || !up) {
      stop();
      throw std::runtime_error("redis-server did not start on port " + std::to_string(port_) +
                               ":\n" + (exists(log) ? readFile(log) : ""));
    }
  }

  // SIGKILL: the broker gone at once, as a crash or a network cut leaves it.
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  TempDir dir_{"thatch-redis"};
  int port_;
  pid_t pid_ = -1;
};

}  // namespace testing_util
