#pragma once
// One TLS connection to one agent, as C++20 coroutines: connect, verify, greet, send command
// lines, stream reply lines. Only moves bytes; meaning comes from protocol::parse_reply_line.

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include "agent/client/host_result.hpp"
#include "agent/client/target.hpp"
#include "agent/protocol/reply_parser.hpp"
#include "agent/tls/socket_stream.hpp"

namespace opsagent::client {

/// Called for every reply line as it arrives (data, final and unrecognised lines alike):
/// the classified line and the raw text (without LF).
using LineHandler = std::function<void(const protocol::ReplyLine& line, std::string_view raw)>;

/// A client connection. Not thread-safe: use it from one coroutine at a time on one executor.
/// The ssl::context must outlive the connection.
class AgentConnection {
 public:
  AgentConnection(const boost::asio::any_io_executor& executor, boost::asio::ssl::context& tls,
                  Target target, Timeouts timeouts);

  /// Resolves and connects (timeouts.connect), does the TLS handshake verifying the agent
  /// certificate against the CA and target.server_name (IP or DNS SAN) and reads the greeting
  /// (timeouts.handshake). status ok when the agent greeted with OK; otherwise the failure.
  boost::asio::awaitable<HostResult> open();
  /// Sends one command line (no LF) and reads the reply until its final line (timeouts.command),
  /// calling `on_line` for each line. The result comes from the final line, or says what
  /// went wrong (timeout, connection lost, protocol violation); the connection is then closed.
  boost::asio::awaitable<HostResult> command(std::string line, LineHandler on_line);
  /// Called whenever command() has handed every line received so far to its LineHandler and
  /// is about to wait for the network (e.g. to flush buffered output once per chunk, not per
  /// line). Optional.
  void set_idle_handler(std::function<void()> on_idle) { on_idle_ = std::move(on_idle); }
  /// TLS close_notify (bounded wait), then closes the socket. Safe to call more than once.
  boost::asio::awaitable<void> close();

  /// Stops the connection at once, whatever it is doing (resolving, connecting, handshaking,
  /// waiting for a reply): the socket is closed without a TLS goodbye, so the agent ends the
  /// running command, and the pending open()/command() returns soon with a failure.
  /// For interruption (Ctrl-C); call it on the connection's executor.
  void abort() noexcept;
  /// True once abort() was called.
  [[nodiscard]] bool aborted() const noexcept { return aborted_; }

  /// The greeting line, once open() succeeded (e.g. "OK opsagent 0.1.0 ready host=...").
  [[nodiscard]] const std::string& greeting() const noexcept { return greeting_; }
  /// True while the connection can carry another command.
  [[nodiscard]] bool is_open() const noexcept { return open_; }
  [[nodiscard]] const Target& target() const noexcept { return target_; }
  /// True when open() resumed a cached TLS session (SessionCache) instead of a full handshake.
  [[nodiscard]] bool resumed() noexcept;

 private:
  enum class ReadEnd { line, closed, failed, timed_out, too_long };
  struct LineRead {
    ReadEnd end = ReadEnd::failed;
    std::string line;
    boost::system::error_code ec;
  };
  struct FillResult {
    ReadEnd end = ReadEnd::failed;  ///< `line` when bytes arrived
    boost::system::error_code ec;
  };

  /// One line (a copy) before `deadline`: for the greeting.
  boost::asio::awaitable<LineRead> read_line(std::chrono::steady_clock::time_point deadline);
  /// The next complete line already received (without its LF), advancing past it; valid until
  /// the next fill(). Sets too_long_ when an unterminated line exceeds the limit.
  std::optional<std::string_view> buffered_line() noexcept;
  /// Reads what the agent has sent so far (at least one byte) into the buffer before
  /// `deadline`, growing it only for long lines or a fast stream.
  boost::asio::awaitable<FillResult> fill(std::chrono::steady_clock::time_point deadline);
  HostResult fail(HostStatus status, std::string code, std::string message);
  void close_socket() noexcept;

  Target target_;
  Timeouts timeouts_;
  boost::asio::ip::tcp::resolver resolver_;
  tls::SocketStream stream_;
  // Bytes received: [read_begin_, read_end_) not yet split into lines; no LF before scan_.
  std::vector<char> read_buffer_;
  std::size_t read_begin_ = 0;
  std::size_t read_end_ = 0;
  std::size_t scan_ = 0;
  bool last_read_filled_ = false;  // the last read used all free space: a fast stream
  bool too_long_ = false;
  std::function<void()> on_idle_;
  protocol::Mode mode_ = protocol::Mode::text;
  std::string greeting_;
  bool open_ = false;
  bool aborted_ = false;
  bool offered_session_ = false;  // open() offered a cached session
  std::chrono::steady_clock::time_point started_;
};

/// open(), command(line), close(): one command on one host. Never throws for network failures.
boost::asio::awaitable<HostResult> run_on_host(boost::asio::any_io_executor executor,
                                               boost::asio::ssl::context& tls, Target target,
                                               Timeouts timeouts, std::string line,
                                               LineHandler on_line);

}  // namespace opsagent::client
