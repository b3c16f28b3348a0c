#pragma once
// Listens on every configured address, applies the pre-authentication cap, and hands each
// connection to a Session on its own strand. Keeps weak references to live sessions so that
// stop() can end them all.

#include <atomic>
#include <exception>
#include <memory>
#include <mutex>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "agent/server/server_context.hpp"

namespace opsagent::server {

class Session;

class Server {
 public:
  /// Acceptors and housekeeping run on `io`. Each accepted connection is pinned to one of
  /// `session_contexts` (not empty; `io` among them or not) in turn, round robin, each run by
  /// one I/O thread, so that its handlers never hop between threads.
  Server(boost::asio::io_context& io, ServerContext& ctx,
         std::vector<boost::asio::io_context*> session_contexts);

  /// Binds and listens on every configured address (throws std::system_error naming the
  /// address on failure) and starts accepting. Logs "listening on ADDR:PORT" for each.
  void start();
  /// Stops accepting and ends every session (children are killed). Thread-safe.
  void stop();
  /// Checks every live session again against the current TLS context and policy (after a
  /// reload): ends those whose certificate no longer verifies or whose identity no longer maps,
  /// and gives the others their new roles (Session::recheck). Thread-safe.
  void recheck_sessions() noexcept;
  /// The bound endpoints (ports resolved when the config said 0).
  [[nodiscard]] std::vector<boost::asio::ip::tcp::endpoint> endpoints() const;

 private:
  enum class AcceptResult { next, retry_later, stop };

  boost::asio::awaitable<void> accept_loop(boost::asio::ip::tcp::acceptor& acceptor);
  boost::asio::awaitable<AcceptResult> accept_once(boost::asio::ip::tcp::acceptor& acceptor);
  /// Admits (or refuses) one accepted connection and starts its Session.
  void admit(boost::asio::ip::tcp::socket socket);
  /// Closes the oldest connection still in its TLS handshake from the source address holding
  /// the most of them (per-source fairness, SECURITY-MATRIX I9); false when there is none.
  bool evict_handshake();
  /// Once a second: notice a deleted audit log, kill and reap processes that escaped their
  /// command (exec/orphan_reaper.hpp).
  boost::asio::awaitable<void> sweep_loop();
  /// One round of sweep_loop(); false when the server stops.
  boost::asio::awaitable<bool> sweep_once();
  /// Logs and audits what AuditLog::reopen_if_deleted() found.
  void report_audit_check(const Result<bool>& reopened);
  /// Logs, best effort, that `what` failed with `e` and the loop goes on.
  static void log_failure(const char* what, const std::exception& e) noexcept;

  /// The context of the next connection.
  boost::asio::io_context& next_session_context() noexcept;

  boost::asio::io_context& io_;
  ServerContext& ctx_;
  std::vector<boost::asio::io_context*> session_contexts_;
  std::atomic<std::size_t> next_context_{0};
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  boost::asio::strand<boost::asio::io_context::executor_type> sweep_strand_;
  boost::asio::steady_timer sweep_timer_;  // used on sweep_strand_ only
  bool sweep_stopped_ = false;             // used on sweep_strand_ only
  std::mutex sessions_mutex_;
  std::vector<std::weak_ptr<Session>> sessions_;  // GUARDED_BY(sessions_mutex_)
  bool stopped_ = false;                          // GUARDED_BY(sessions_mutex_)
};

}  // namespace opsagent::server
