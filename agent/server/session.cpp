#include "agent/server/session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "agent/common/best_effort.hpp"
#include "agent/common/with_deadline.hpp"
#include "agent/server/commands.hpp"
#include "agent/server/greeting.hpp"
#include "agent/server/handshake_failure.hpp"
#include "agent/tls/chain_check.hpp"
#include "agent/tls/peer_certificate.hpp"

namespace opsagent::server {
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using boost::system::error_code;

namespace {

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
// How long to wait for the client's close_notify after sending ours; short when the agent stops.
constexpr auto kShutdownTimeout = std::chrono::milliseconds(1000);
constexpr auto kStoppingShutdownTimeout = std::chrono::milliseconds(100);
}  // namespace

Session::Session(ServerContext& ctx, asio::ip::tcp::socket socket, std::uint64_t id,
                 std::string peer, std::string source)
    : ctx_(ctx),
      config_(ctx.config.get()),
      tls_(ctx.tls.get()),
      stream_(std::move(socket), *tls_),
      reader_(stream_, config_->limits.max_line_bytes,
              static_cast<std::size_t>(config_->limits.max_pipelined)),
      write_timer_(stream_.get_executor()),
      started_(std::chrono::steady_clock::now()),
      source_(std::move(source)) {
  info_.id = id;
  info_.peer = std::move(peer);
}

Session::~Session() {
  if (phase_ == Phase::handshake) ctx_.registry.end_handshake();  // never finished
}

void Session::start() {
  // run() handles its own exceptions; this handler is the last line of defence and must not
  // throw either, or the exception would leave io_context::run() and end the agent.
  asio::co_spawn(
      stream_.get_executor(), [self = shared_from_this()] { return self->run(); },
      [id = info_.id](const std::exception_ptr& e) noexcept {
        if (e) {
          log_noexcept(spdlog::level::err, "conn {}: session ended by an unexpected error: {}", id,
                       exception_text(e));
        }
      });
}

void Session::stop() {
  asio::post(stream_.get_executor(),
             [self = shared_from_this()] { self->interrupt(EndReason::server_shutdown); });
}

bool Session::try_evict() {
  if (!evictable_.exchange(false)) return false;
  asio::post(stream_.get_executor(), [self = shared_from_this()] {
    if (self->phase_ != Phase::handshake) return;  // finished meanwhile: nothing to make room for
    self->interrupt(EndReason::evicted);
  });
  return true;
}

void Session::end(EndReason reason) noexcept { end_ = end_.value_or(reason); }

// NOLINTNEXTLINE(bugprone-exception-escape): calls noexcept functions only
void Session::interrupt(EndReason reason) noexcept {
  end(reason);
  if (dispatcher_) dispatcher_->cancel_active();
  reader_.stop();  // also cancels a pending handshake or read on the socket
}

void Session::client_gone() noexcept {
  peer_gone_ = true;
  if (dispatcher_) dispatcher_->cancel_active();
}

void Session::abort_socket() noexcept {
  error_code ec;
  stream_.next_layer().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  stream_.next_layer().close(ec);
}

// NOLINTNEXTLINE(bugprone-exception-escape): calls noexcept functions only
void Session::note_failure(const std::exception_ptr& failure, const char* where) noexcept {
  const bool first = end_ != EndReason::internal_error;
  end_ = EndReason::internal_error;
  interrupt(EndReason::internal_error);
  if (!first) return;
  // Both reports need memory, which may be exactly what is missing: best effort only.
  const char* what = exception_text(failure);  // lives in the exception `failure` holds
  log_noexcept(spdlog::level::err, "conn {}: {} failed: {}; closing the connection", info_.id,
               where, what);
  audit_.session_error(what, admitted_.has_value());
}

// Everything a connection does runs inside this try: an exception (std::bad_alloc when an
// allocation fails, H5) ends this connection, never the agent. An allocation Asio makes outside
// any coroutine (operation objects, reactor state) throws out of io_context::run() instead and
// destroys the handler of the operation it belonged to; a coroutine awaiting that operation is
// then destroyed, not resumed. The guard below, destroyed with this frame, ends the connection
// then as a failure does: its socket, slots and child go now, not at some later deadline.
asio::awaitable<void> Session::run() {
  struct EndIfLost {
    Session& s;
    bool finished = false;
    explicit EndIfLost(Session& session) : s(session) {}
    EndIfLost(const EndIfLost&) = delete;
    EndIfLost& operator=(const EndIfLost&) = delete;
    // NOLINTNEXTLINE(bugprone-exception-escape): calls noexcept functions only
    ~EndIfLost() {
      if (finished) return;
      s.note_failure(lost_operation(), "session");
      s.abort_socket();
      if (s.admitted_) {
        s.audit_.disconnect(to_string(EndReason::internal_error),
                            s.dispatcher_ ? s.dispatcher_->commands() : 0U, s.age(), 0);
      }
    }
  } guard{*this};
  std::exception_ptr failure;
  try {
    co_await run_phases();
  } catch (...) {
    failure = std::current_exception();
  }
  if (!failure) {
    guard.finished = true;
    co_return;
  }
  const bool secured = phase_ == Phase::authenticating || phase_ == Phase::serving;
  note_failure(failure, "session");
  // Still try to end TLS politely (bounded by kShutdownTimeout); this needs memory too.
  try {
    co_await close_connection(secured && !peer_gone_);
  } catch (...) {
  }
  guard.finished = true;
  abort_socket();
  if (admitted_) {
    audit_.disconnect(to_string(EndReason::internal_error),
                      dispatcher_ ? dispatcher_->commands() : 0U, age(), 0);
  }
}

// The steps of a connection, in order.
asio::awaitable<void> Session::run_phases() {
  const bool secured = co_await handshake();
  if (!secured) co_return;
  const bool admitted = co_await authenticate();
  if (!admitted) co_return;

  reader_.start(
      shared_from_this(), [this] { client_gone(); },
      [this](const std::exception_ptr& e) { note_failure(e, "reader"); });
  co_await serve();
  co_await say_goodbye();
  co_await close_connection(!peer_gone_);

  const char* reason = to_string(end_.value_or(EndReason::internal_error));
  audit_.disconnect(reason, dispatcher_->commands(), age(), reader_.partial_bytes());
  spdlog::info("conn {}: {} disconnected ({})", info_.id, info_.principal.name, reason);
}

asio::awaitable<bool> Session::handshake() {
  const auto done = co_await common::with_deadline(
      stream_.async_handshake(ssl::stream_base::server, kUse), config_->timeouts.handshake);
  ctx_.registry.end_handshake();
  evictable_.store(false);

  const bool evicted = end_ == EndReason::evicted;
  std::optional<tls::VerifyFailure> stale;
  if (done && !std::get<0>(*done) && !evicted) {
    SSL* ssl = stream_.native_handle();
    info_.resumed = SSL_session_reused(ssl) == 1;
    // A ticket must never outlive a revocation, a CA change or an expiry: a resumed session is
    // verified again, against the trust of this connection's context, as a full handshake is.
    if (info_.resumed) {
      stale = tls::verify_peer_chain(ssl, tls_->native_handle(), &info_.resumed_cas);
    }
  }
  if (done && !std::get<0>(*done) && !evicted && !stale) {
    metrics::registry().handshake_done(info_.resumed);
    phase_ = Phase::authenticating;
    // Audited once the handshake has ended (PreAuthAudit): a secured connection always is.
    ctx_.audit.record("connection_accepted",
                      {{"conn", info_.id}, {"peer", info_.peer}, {"tls_resumed", info_.resumed}});
    co_return true;
  }
  phase_ = Phase::closing;
  const HandshakeEnd how{evicted, !done, done ? std::get<0>(*done) : error_code{}};
  report_handshake_failure(ctx_, audit_, info_, source_, stream_.native_handle(), how, stale);
  abort_socket();
  co_return false;
}

// Identity from the certificate, principal from the policy, a client slot, then the greeting.
asio::awaitable<bool> Session::authenticate() {
  auto identity = tls::identity_from_connection(stream_.native_handle(),
                                                info_.resumed ? &info_.resumed_cas : nullptr);
  if (!identity) {
    audit_.auth_denied(identity.error().message);
    std::string message = identity.error().message + "; bye";
    co_await refuse(ErrorCode::denied, std::move(message));
    co_return false;
  }
  info_.identity = std::move(identity.value());

  const auto policy = ctx_.policy.get();
  auto principal = policy::map_identity(*policy, info_.identity);
  if (!principal) {
    const std::string reason =
        fmt::format("certificate {} is not mapped to a principal", info_.identity.subject);
    audit_.auth_denied_unmapped(reason, policy->version);
    std::string message = reason + "; bye";
    co_await refuse(ErrorCode::denied, std::move(message));
    co_return false;
  }
  info_.principal = std::move(*principal);

  if (std::string refused = ctx_.registry.try_admit(info_.principal.name); !refused.empty()) {
    audit_.session_refused(refused);
    refused += "; bye";
    co_await refuse(ErrorCode::busy, std::move(refused));
    co_return false;
  }
  admitted_.emplace(ctx_.registry, info_.principal.name);
  phase_ = Phase::serving;

  audit_.auth_ok(policy->version);
  spdlog::info("conn {}: {} authenticated as {} from {}", info_.id, info_.identity.subject,
               info_.principal.name, info_.peer);
  dispatcher_.emplace(ctx_.audit, ctx_.policy, info_, *this,
                      std::make_unique<Commands>(ctx_, info_), ctx_.config.get()->audit_builtins,
                      &held_records_);

  std::string line = greeting(dispatcher_->formatter(), ctx_.hostname, info_.principal);
  co_return co_await send(std::move(line));
}

asio::awaitable<void> Session::refuse(ErrorCode code, std::string message) {
  phase_ = Phase::closing;
  std::string out;
  protocol::ReplyFormatter().error(out, code, message);
  co_await send(std::move(out));
  co_await close_connection(true);
}

// One command at a time until something ends the session. stop(), a revocation or a reader
// failure may come at any await; they set end_ and wake whatever is awaited.
// (Plain if/else around co_await: GCC 12 mishandles co_await inside switch and ?: bodies.)
asio::awaitable<void> Session::serve() {
  while (!end_) {
    // Lines the client pipelined are answered first; their replies leave in one write when
    // none is left to answer (or send_later's bound is reached).
    LineEvent ev;
    const bool queued = reader_.try_next(ev);
    if (!queued) {
      co_await flush();
      ev = co_await reader_.next(config_->timeouts.idle);
    }
    if (end_) break;
    if (peer_gone_ || ev.kind == LineEvent::Kind::eof) {
      end(EndReason::client_closed);
    } else if (ev.kind == LineEvent::Kind::idle) {
      end(EndReason::idle_timeout);
    } else if (ev.kind == LineEvent::Kind::overflow) {
      audit_.line_too_long(config_->limits.max_line_bytes);
      end(EndReason::line_too_long);
    } else {
      const Dispatcher::Next next = co_await dispatcher_->handle_line(ev.text);
      if (next == Dispatcher::Next::close) {
        end(peer_gone_ ? EndReason::client_closed : EndReason::exit);
      }
    }
  }
}

// The last line for the ends the client should be told about.
asio::awaitable<void> Session::say_goodbye() {
  phase_ = Phase::closing;
  const std::optional<Error> last = goodbye(end_.value_or(EndReason::internal_error), *config_);
  if (!last) co_return;
  std::string out;
  dispatcher_->formatter().error(out, last->code, last->message);
  co_await send(std::move(out));
}

asio::awaitable<void> Session::close_connection(bool graceful) {
  phase_ = Phase::closing;
  if (graceful) {
    co_await flush();  // e.g. "OK bye"
  }
  co_await reader_.stopped();  // a TLS shutdown must not run beside a pending read
  if (graceful && !peer_gone_) {
    const auto limit =
        end_ == EndReason::server_shutdown ? kStoppingShutdownTimeout : kShutdownTimeout;
    co_await common::with_deadline(stream_.async_shutdown(kUse), limit);
  }
  abort_socket();
}

}  // namespace opsagent::server
