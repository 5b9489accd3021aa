// The `thatch` CLI's commands, each a call of include/thatch/thatch.h and
// the rendering of its answer as text or JSON (docs/cli.md). The command
// table that names them is in api/cli_help.h.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "api/cli_args.h"
#include "thatch/thatch.h"

namespace cli {

// The connection, made when a command first needs it: after the command
// line has been checked, so that usage errors never wait on thatchd.
class Session {
 public:
  explicit Session(std::string address) : address_(std::move(address)) {}
  const std::string& address() const { return address_; }
  thatch::Thatch& thatch() {
    if (!thatch_)
      thatch_ =
          thatch::Thatch::connect(address_, thatch::Thatch::ConnectOptions::fromEnvironment());
    return *thatch_;
  }

 private:
  std::string address_;
  std::unique_ptr<thatch::Thatch> thatch_;
};

// Each returns the exit code; errors are thrown (CliError, UsageError,
// thatch::Error).
int deployCommand(const Invocation& invocation, Session& session);
int invokeCommand(const Invocation& invocation, Session& session);
int listCommand(const Invocation& invocation, Session& session);
int versionsCommand(const Invocation& invocation, Session& session);
int removeCommand(const Invocation& invocation, Session& session);
int statsCommand(const Invocation& invocation, Session& session);
int prewarmCommand(const Invocation& invocation, Session& session);
int pingCommand(const Invocation& invocation, Session& session);
// `thatch layer publish|ls|versions|rm ...`.
int layerCommand(const Invocation& invocation, Session& session);
// Triggers (api/cli_triggers.cc): `thatch url create|get|rm NAME`,
// `thatch schedule add|ls|rm ...`, `thatch trigger add|ls|rm|enable|disable ...`,
// and `thatch ls --triggers`.
int urlCommand(const Invocation& invocation, Session& session);
int scheduleCommand(const Invocation& invocation, Session& session);
int triggerCommand(const Invocation& invocation, Session& session);
int listTriggersCommand(const Invocation& invocation, Session& session);

void writeOut(std::string_view text);
void writeErr(std::string_view text);

// strerror(error), starting lower-case as the CLI's messages do.
std::string systemMessage(int error);

}  // namespace cli
