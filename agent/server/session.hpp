#pragma once
// One client connection, from TCP accept to close. Everything runs on the connection's strand:
// the main coroutine (handshake, identity, admission, then one command at a time) is the only
// writer of the stream; a reader coroutine frames lines into a small bounded queue so that a
// disconnect is noticed even while a command runs.
//
// An exception escaping either coroutine (above all std::bad_alloc from a failed allocation,
// SECURITY-MATRIX H5) ends this connection only: it is logged and audited as far as memory
// allows (`session_error`), a running child is killed, the socket is closed and the session's
// slots are released. It never reaches io_context::run().

#include <atomic>
#include <exception>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>

#include "agent/server/dispatcher.hpp"
#include "agent/server/server_context.hpp"

namespace opsagent::server {

class Session : public std::enable_shared_from_this<Session>, public ReplySink {
 public:
  /// `socket` must already use a strand executor (accept with make_strand). The caller has
  /// reserved a handshake slot in the registry; the session releases it. `peer` is the client's
  /// address as text, for logs and audit records.
  Session(ServerContext& ctx, boost::asio::ip::tcp::socket socket, std::uint64_t id,
          std::string peer);
  ~Session() override;

  /// Starts the session coroutines; the session keeps itself alive until it is done.
  void start();
  /// Asks the session to end (agent shutdown): kills its child, closes the connection.
  /// Thread-safe: posts to the session's strand.
  void stop();
  /// Ends the session if it is still in its TLS handshake (to make room under max_handshakes).
  /// False when it is past its handshake or already being evicted, so no session is picked
  /// twice. Thread-safe: posts the close to the session's strand.
  bool try_evict();
  /// Verifies the client's certificate chain again, against `tls` (the context after a reload:
  /// a new CRL or CA bundle, and the current time). A session that no longer verifies is ended:
  /// its command killed, audit `session_revoked`, disconnect reason `certificate_revoked`.
  /// Thread-safe: posts to the session's strand.
  void recheck_certificate(std::shared_ptr<boost::asio::ssl::context> tls);

 private:
  struct LineEvent {
    enum class Kind { line, overflow, eof, idle } kind = Kind::line;
    std::string text;
  };
  using LineChannel =
      boost::asio::experimental::channel<void(boost::system::error_code, LineEvent)>;

  boost::asio::awaitable<void> run();
  boost::asio::awaitable<void> run_connection();
  boost::asio::awaitable<bool> handshake();
  boost::asio::awaitable<bool> authenticate();
  boost::asio::awaitable<std::string> serve();
  boost::asio::awaitable<LineEvent> next_event();
  boost::asio::awaitable<void> read_loop();
  boost::asio::awaitable<void> read_lines();
  boost::asio::awaitable<void> close_connection(bool graceful);
  boost::asio::awaitable<bool> send(std::string bytes) override;  // ReplySink
  boost::asio::awaitable<void> refuse(ErrorCode code, const std::string& message);
  void close_now() noexcept;
  /// Records that an exception ended the session (`where`: "session" or "reader"): logs and
  /// audits it best-effort, kills a running child and wakes the other coroutine.
  void note_failure(const std::exception_ptr& failure, const char* where) noexcept;
  /// Closes the TCP connection at once (no TLS close_notify).
  void abort_socket() noexcept;
  /// While the reader is blocked on a full line queue it reads nothing, so it would not see the
  /// client leave. This polls the socket for a hang-up (FIN or RST) every 200 ms until
  /// `hangup_watch_` is cancelled, and then treats the client as gone (kills its command).
  void watch_for_hangup();
  [[nodiscard]] bool peer_hung_up() noexcept;

  ServerContext& ctx_;
  std::shared_ptr<boost::asio::ssl::context> tls_;  // the context this connection was made with
  boost::asio::ssl::stream<boost::asio::ip::tcp::socket> stream_;
  LineChannel lines_;
  boost::asio::steady_timer idle_timer_;
  boost::asio::steady_timer write_timer_;
  boost::asio::steady_timer reader_done_;   // cancelled (= signalled) when read_loop ends
  boost::asio::steady_timer hangup_watch_;  // watch_for_hangup(), while the line queue is full
  SessionInfo info_;
  std::optional<Dispatcher> dispatcher_;
  bool in_handshake_ = true;  // holds a pre-authentication slot
  bool secured_ = false;      // the TLS handshake succeeded
  bool admitted_ = false;     // holds a client slot
  bool reader_running_ = false;
  bool stop_reading_ = false;  // the reader starts no further read (close_now, close_connection)
  bool peer_gone_ = false;     // EOF/error from the client, or a failed write
  bool stopping_ = false;      // agent shutdown
  bool evicted_ = false;       // closed during its handshake to admit a newer connection
  bool failed_ = false;        // an exception (e.g. std::bad_alloc) ends the session
  bool revoked_ = false;       // the certificate failed a re-check after a reload
  std::atomic<bool> handshaking_{true};  // until the handshake ends, either way
  std::atomic<bool> eviction_requested_{false};
  std::size_t partial_bytes_ = 0;  // unterminated line left when the client went away
  std::chrono::steady_clock::time_point started_;
};

}  // namespace opsagent::server
