#pragma once
// One client connection, from TCP accept to close, as a sequence of phases:
//   handshake -> authenticating -> serving -> closing
// Everything runs on the connection's strand: the executor of the context it is pinned to, which
// one thread runs (an implicit strand: no two of its handlers ever run at the same time, and no
// strand object has to be crossed on each completion). The session's coroutine is the only writer
// of the stream; a LineReader beside it frames lines into a small bounded queue, so that a
// disconnect is noticed even while a command runs. Commands themselves go through the Dispatcher.
//
// An exception escaping either coroutine (above all std::bad_alloc from a failed allocation,
// SECURITY-MATRIX H5) ends this connection only: it is logged and audited as far as memory
// allows (`session_error`), a running child is killed, the socket is closed and the session's
// slots are released. It never reaches io_context::run().

#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "agent/server/dispatcher.hpp"
#include "agent/server/held_replies.hpp"
#include "agent/server/line_reader.hpp"
#include "agent/server/server_context.hpp"
#include "agent/server/session_audit.hpp"
#include "agent/server/session_end.hpp"
#include "agent/server/session_info.hpp"
#include "agent/tls/socket_stream.hpp"

namespace opsagent::server {

class Session : public std::enable_shared_from_this<Session>, public ReplySink {
 public:
  /// `socket`'s executor must never run two handlers at once: an io_context run by one thread
  /// (as in the agent) or a strand (accept with make_strand). The caller has
  /// reserved a handshake slot in the registry; the session releases it. `peer` is the client's
  /// address as text, for logs and audit records; `source` its address without the port (for
  /// per-source eviction and the audit budget of failed handshakes, PreAuthAudit).
  Session(ServerContext& ctx, boost::asio::ip::tcp::socket socket, std::uint64_t id,
          std::string peer, std::string source = {});
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  Session(Session&&) = delete;
  Session& operator=(Session&&) = delete;
  ~Session() override;

  /// Starts the session coroutine; the session keeps itself alive until it is done.
  void start();
  /// Asks the session to end (agent shutdown): kills its child, closes the connection.
  /// Thread-safe: posts to the session's strand.
  void stop();
  /// Ends the session if it is still in its TLS handshake (to make room under max_handshakes).
  /// False when it is past its handshake or already being evicted, so no session is picked
  /// twice. Thread-safe: posts the close to the session's strand.
  bool try_evict();
  /// True while the session is in its TLS handshake and not yet picked by try_evict().
  /// Thread-safe.
  [[nodiscard]] bool evictable() const { return evictable_.load(); }
  /// The client's address without the port. Immutable.
  [[nodiscard]] const std::string& source() const { return source_; }
  /// Checks the session again after a reload. Its certificate chain is verified against `tls`
  /// (a new CRL or CA bundle, and the current time) and its identity mapped again with `policy`.
  /// A session that fails either is ended: its command killed, audit `session_revoked`,
  /// disconnect reason `certificate_revoked` or `identity_unmapped`. A principal whose roles
  /// changed keeps its session; the new roles apply from its next command. Thread-safe: posts
  /// to the session's strand.
  void recheck(std::shared_ptr<boost::asio::ssl::context> tls,
               std::shared_ptr<const policy::Policy> policy);

 private:
  using Stream = tls::SocketStream;
  enum class Phase { handshake, authenticating, serving, closing };

  void apply_recheck(boost::asio::ssl::context& tls, const policy::Policy& policy);
  boost::asio::awaitable<void> run();
  boost::asio::awaitable<void> run_phases();
  boost::asio::awaitable<bool> handshake();
  boost::asio::awaitable<bool> authenticate();
  boost::asio::awaitable<void> serve();
  boost::asio::awaitable<void> say_goodbye();
  boost::asio::awaitable<void> close_connection(bool graceful);
  boost::asio::awaitable<bool> send(std::string bytes) override;        // ReplySink
  boost::asio::awaitable<bool> send_later(std::string bytes) override;  // ReplySink
  boost::asio::awaitable<bool> send_later(std::string bytes, audit::Receipt receipt,
                                          bool fail_closed,
                                          protocol::Mode mode) override;  // ReplySink
  boost::asio::awaitable<bool> flush() override;                          // ReplySink
  boost::asio::awaitable<void> refuse(ErrorCode code, std::string message);

  /// Records why the session ends; the first reason stays.
  void end(EndReason reason) noexcept;
  /// end(), and interrupts whatever the session waits for: kills a running child, stops the
  /// reader. For ends that come from outside the session's own flow (stop, evict, revoke).
  // NOLINTNEXTLINE(bugprone-exception-escape): calls noexcept functions only
  void interrupt(EndReason reason) noexcept;
  /// The client is gone (read or write failed, hang-up): kill its command, write nothing more.
  void client_gone() noexcept;
  /// Records that an exception ended the session (`where`: "session" or "reader"): logs and
  /// audits it best-effort, and interrupts the session.
  // NOLINTNEXTLINE(bugprone-exception-escape): calls noexcept functions only
  void note_failure(const std::exception_ptr& failure, const char* where) noexcept;
  /// Closes the TCP connection at once (no TLS close_notify).
  void abort_socket() noexcept;
  [[nodiscard]] std::chrono::milliseconds age() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 started_);
  }

  /// Holds the principal's client slot from admission to the end of the session.
  class ClientSlot {
   public:
    ClientSlot(Admission& registry, std::string principal)
        : registry_(registry), principal_(std::move(principal)) {}
    ClientSlot(const ClientSlot&) = delete;
    ClientSlot& operator=(const ClientSlot&) = delete;
    ~ClientSlot() { registry_.release(principal_); }

   private:
    Admission& registry_;
    std::string principal_;
  };

  ServerContext& ctx_;
  std::shared_ptr<const config::AgentConfig> config_;  // the version this session started with
  std::shared_ptr<boost::asio::ssl::context> tls_;     // the context this connection was made with
  Stream stream_;
  LineReader<Stream> reader_;
  boost::asio::steady_timer write_timer_;
  SessionInfo info_;
  // The audit records of pipelined built-ins, held with their replies (held_) and queued as one
  // batch; every other record of the session queues it first (audit_, dispatcher_).
  audit::RecordBatch held_records_{ctx_.audit};
  SessionAudit audit_{ctx_.audit, info_, &held_records_};
  std::optional<ClientSlot> admitted_;
  std::optional<Dispatcher> dispatcher_;
  Phase phase_ = Phase::handshake;  // holds a handshake slot while in Phase::handshake
  std::optional<EndReason> end_;
  // Final lines held by send_later() until the pipelined lines are answered (or enough is held),
  // with the audit records they wait for.
  HeldReplies held_{&held_records_};
  bool peer_gone_ = false;             // the client left or stopped reading: write nothing more
  std::atomic<bool> evictable_{true};  // in its handshake and not yet picked by try_evict()
  std::chrono::steady_clock::time_point started_;
  const std::string source_;
};

}  // namespace opsagent::server
