#pragma once
// The gate sequence for one command line, top to bottom: parse, look up, check arity, authorise
// (always audited), execute, audit the result. One Dispatcher per session, used only on that
// session's strand.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "agent/exec/process_runner.hpp"
#include "agent/identity/peer_identity.hpp"
#include "agent/policy/authorizer.hpp"
#include "agent/protocol/command_parser.hpp"
#include "agent/protocol/reply_formatter.hpp"
#include "agent/server/server_context.hpp"

namespace opsagent::server {

/// Who is on the other end of a session; fixed when the connection is made.
struct SessionInfo {
  std::uint64_t id = 0;
  std::string peer;  ///< "127.0.0.1:53412"
  PeerIdentity identity;
  policy::Principal principal;
};

/// Where replies go. Implemented by the session, which owns the only writer of the stream.
class ReplySink {
 public:
  virtual ~ReplySink() = default;
  /// Writes `bytes` to the client; false when the client is gone or stalled.
  virtual boost::asio::awaitable<bool> send(std::string bytes) = 0;
};

class Dispatcher {
 public:
  enum class Next { keep_open, close };

  Dispatcher(ServerContext& ctx, const SessionInfo& info, ReplySink& sink);

  /// Handles one line (without its LF) and writes its whole reply.
  boost::asio::awaitable<Next> handle_line(std::string_view line);

  /// The client went away: kill a running child, stop a running digest. Same strand only.
  void cancel_active() noexcept;

  /// Reply framing (text or JSON) in force on this session.
  [[nodiscard]] const protocol::ReplyFormatter& formatter() const { return fmt_; }

  /// Number of commands handled, for the disconnect record.
  [[nodiscard]] std::uint64_t commands() const noexcept { return commands_; }

 private:
  struct Outcome;  // how one command ended, for the reply's final line and the audit record
  class RunSink;

  boost::asio::awaitable<Outcome> execute(const protocol::Command& cmd, const policy::Decision& d);
  boost::asio::awaitable<Outcome> do_help();
  boost::asio::awaitable<Outcome> do_whoami();
  boost::asio::awaitable<Outcome> do_json(const protocol::Command& cmd);
  boost::asio::awaitable<Outcome> do_tail(const std::filesystem::path& path, int lines,
                                          std::string label);
  boost::asio::awaitable<Outcome> do_lastlog();
  boost::asio::awaitable<Outcome> do_hash(const policy::Decision& d, const std::string& shown_path);
  boost::asio::awaitable<Outcome> do_run(std::vector<std::string> argv,
                                         const exec::RunLimits& limits);

  /// Sends data lines, counting bytes; false when the client is gone.
  boost::asio::awaitable<bool> send_lines(protocol::Channel channel,
                                          const std::vector<std::string>& lines);
  boost::asio::awaitable<bool> send(std::string bytes);

  ServerContext& ctx_;
  const SessionInfo& info_;
  ReplySink& sink_;
  protocol::ReplyFormatter fmt_;
  exec::RunControl* active_run_ = nullptr;  // set while a child runs
  std::shared_ptr<std::atomic<bool>> cancel_blocking_ = std::make_shared<std::atomic<bool>>(false);
  std::uint64_t bytes_sent_ = 0;  // of the current command
  std::uint64_t commands_ = 0;
};

}  // namespace opsagent::server
