#pragma once
// What each verb does once the gate has allowed it: the agent's CommandHandlers. Files are read
// and hashed on the blocking pool, processes run under opsagent-guard with their output streamed
// to the client as it arrives.

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "agent/exec/process_runner.hpp"
#include "agent/server/command_handlers.hpp"
#include "agent/server/server_context.hpp"
#include "agent/server/session_info.hpp"

namespace opsagent::server {

/// One per session, used only on its strand.
class Commands final : public CommandHandlers {
 public:
  Commands(ServerContext& ctx, const SessionInfo& info) : ctx_(ctx), info_(info) {}

  boost::asio::awaitable<Outcome> execute(const protocol::VerbSpec& verb,
                                          const protocol::Command& cmd,
                                          const policy::Decision& decision,
                                          ReplyStream& out) override;
  void cancel() noexcept override;

 private:
  boost::asio::awaitable<Outcome> help(const protocol::Command& cmd, ReplyStream& out);
  boost::asio::awaitable<Outcome> whoami(ReplyStream& out);
  static Outcome json(const protocol::Command& cmd, ReplyStream& out);
  boost::asio::awaitable<Outcome> tail(const std::filesystem::path& path, int lines,
                                       std::string label, ReplyStream& out);
  boost::asio::awaitable<Outcome> lastlog(ReplyStream& out);
  boost::asio::awaitable<Outcome> hash(const policy::Decision& d, const std::string& shown_path);
  boost::asio::awaitable<Outcome> run(std::vector<std::string> argv, const exec::RunLimits& limits,
                                      ReplyStream& out);
  [[nodiscard]] Outcome busy_blocking_work() const;

  ServerContext& ctx_;
  const SessionInfo& info_;
  exec::RunControl* active_run_ = nullptr;  // set while a child runs
  std::shared_ptr<std::atomic<bool>> cancel_blocking_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace opsagent::server
