#include "agent/server/session.hpp"

#include <array>
#include <poll.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include "agent/common/json_release.hpp"
#include "agent/protocol/line_framer.hpp"
#include "agent/tls/peer_certificate.hpp"

namespace opsagent::server {
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using namespace asio::experimental::awaitable_operators;
using boost::system::error_code;

namespace {
constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kReadChunk = 4096;
// How long to wait for the client's close_notify after sending ours; short when the agent stops.
constexpr auto kShutdownTimeout = std::chrono::seconds(1);
constexpr auto kStoppingShutdownTimeout = std::chrono::milliseconds(100);

// Built with operator[] and released on failure: see common/json_release.hpp.
nlohmann::json identity_json(const PeerIdentity& id) {
  nlohmann::json j = nlohmann::json::object();
  try {
    j["subject"] = id.subject;
    j["issuer"] = id.issuer;
    j["serial"] = id.serial;
    j["fingerprint_sha256"] = id.fingerprint_sha256;
    j["san_dns"] = id.san_dns;
    j["san_uri"] = id.san_uri;
    if (id.common_name) j["cn"] = *id.common_name;
  } catch (...) {
    release_json(j);
    throw;
  }
  return j;
}
}  // namespace

Session::Session(ServerContext& ctx, asio::ip::tcp::socket socket, std::uint64_t id,
                 std::string peer)
    : ctx_(ctx),
      tls_(ctx.tls.get()),
      stream_(std::move(socket), *tls_),
      lines_(stream_.get_executor(), static_cast<std::size_t>(ctx.config.limits.max_pipelined)),
      idle_timer_(stream_.get_executor()),
      write_timer_(stream_.get_executor()),
      reader_done_(stream_.get_executor()),
      hangup_watch_(stream_.get_executor()),
      started_(std::chrono::steady_clock::now()) {
  info_.id = id;
  info_.peer = std::move(peer);
}

Session::~Session() {
  if (in_handshake_) ctx_.registry.end_handshake();
  if (admitted_) ctx_.registry.release(info_.principal.name);
}

void Session::start() {
  // run() handles its own exceptions; this handler is the last line of defence and must not
  // throw either, or the exception would leave io_context::run() and end the agent.
  asio::co_spawn(
      stream_.get_executor(), [self = shared_from_this()] { return self->run(); },
      [id = info_.id](const std::exception_ptr& e) noexcept {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          try {
            spdlog::error("conn {}: session ended by an unexpected error: {}", id, ex.what());
          } catch (...) {  // nothing left to report it with
          }
        } catch (...) {
          try {
            spdlog::error("conn {}: session ended by an unexpected error", id);
          } catch (...) {  // nothing left to report it with
          }
        }
      });
}

void Session::stop() {
  asio::post(stream_.get_executor(), [self = shared_from_this()] {
    self->stopping_ = true;
    self->close_now();
  });
}

bool Session::try_evict() {
  bool already = false;
  if (!handshaking_.load() || !eviction_requested_.compare_exchange_strong(already, true))
    return false;
  asio::post(stream_.get_executor(), [self = shared_from_this()] {
    if (!self->in_handshake_) return;  // finished meanwhile: nothing to make room for
    self->evicted_ = true;
    self->close_now();
  });
  return true;
}

void Session::recheck_certificate(std::shared_ptr<asio::ssl::context> tls) {
  asio::post(stream_.get_executor(), [self = shared_from_this(), tls = std::move(tls)] {
    if (!self->admitted_ || self->stop_reading_ || self->stopping_ || self->failed_ ||
        self->peer_gone_ || self->revoked_) {
      return;
    }
    SSL* ssl = self->stream_.native_handle();
    SSL_CTX* raw = tls->native_handle();
    X509* leaf = SSL_get0_peer_certificate(ssl);
    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);  // server side: without the leaf
    const std::unique_ptr<X509_STORE_CTX, void (*)(X509_STORE_CTX*)> check(X509_STORE_CTX_new(),
                                                                           &X509_STORE_CTX_free);
    // The same store (CA bundle, CRL) and parameters (purpose, depth, CRL flags) as a handshake.
    bool valid = leaf != nullptr && check != nullptr &&
                 X509_STORE_CTX_init(check.get(), SSL_CTX_get_cert_store(raw), leaf, chain) == 1 &&
                 X509_VERIFY_PARAM_set1(X509_STORE_CTX_get0_param(check.get()),
                                        SSL_CTX_get0_param(raw)) == 1;
    valid = valid && X509_verify_cert(check.get()) == 1;
    const int code = check ? X509_STORE_CTX_get_error(check.get()) : X509_V_ERR_UNSPECIFIED;
    ERR_clear_error();
    if (valid) return;
    self->revoked_ = true;
    const char* reason = X509_verify_cert_error_string(code);
    self->ctx_.audit.record("session_revoked", {{"conn", self->info_.id},
                                                {"peer", self->info_.peer},
                                                {"principal", self->info_.principal.name},
                                                {"verify_code", code},
                                                {"verify_error", reason}});
    spdlog::warn("conn {}: {}'s certificate no longer verifies after the reload ({}); closing",
                 self->info_.id, self->info_.principal.name, reason);
    self->close_now();
  });
}

void Session::close_now() noexcept {
  stop_reading_ = true;
  if (dispatcher_) dispatcher_->cancel_active();
  try {
    lines_.cancel();  // completes a waiting coroutine through its executor: may allocate
  } catch (...) {     // the socket cancel below still ends the reader
  }
  idle_timer_.cancel();
  error_code ec;
  stream_.next_layer().cancel(ec);
}

void Session::abort_socket() noexcept {
  error_code ec;
  stream_.next_layer().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  stream_.next_layer().close(ec);
}

void Session::note_failure(const std::exception_ptr& failure, const char* where) noexcept {
  const bool first = !failed_;
  failed_ = true;
  close_now();  // kills a running child; wakes serve() and the reader
  if (!first) return;
  // `what` points into the exception object, which `failure` keeps alive.
  const char* what = "unknown exception";
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  // Both reports need memory, which may be exactly what is missing: best effort only.
  try {
    spdlog::error("conn {}: {} failed: {}; closing the connection", info_.id, where, what);
  } catch (...) {
  }
  try {
    nlohmann::json rec = nlohmann::json::object();
    const JsonReleaser release(rec);
    rec["conn"] = info_.id;
    rec["peer"] = info_.peer;
    rec["error"] = what;
    if (admitted_) rec["principal"] = info_.principal.name;
    ctx_.audit.record("session_error", std::move(rec));
  } catch (...) {
  }
}

// Everything a connection does runs inside this try: an exception (std::bad_alloc when an
// allocation fails, H5) ends this connection, never the agent. What this cannot cover are
// allocations Asio makes outside any coroutine (operation objects, reactor state), whose
// exceptions leave io_context::run() in the thread that runs it.
asio::awaitable<void> Session::run() {
  std::exception_ptr failure;
  try {
    co_await run_connection();
  } catch (...) {
    failure = std::current_exception();
  }
  if (!failure) co_return;
  note_failure(failure, "session");
  // Still try to end TLS politely (bounded by kShutdownTimeout); this needs memory too.
  try {
    co_await close_connection(secured_ && !peer_gone_);
  } catch (...) {
  }
  abort_socket();
  if (admitted_) {
    try {
      const auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - started_);
      ctx_.audit.record("disconnect", {{"conn", info_.id},
                                       {"peer", info_.peer},
                                       {"principal", info_.principal.name},
                                       {"reason", "internal_error"},
                                       {"commands", dispatcher_ ? dispatcher_->commands() : 0U},
                                       {"duration_ms", duration.count()}});
    } catch (...) {
    }
  }
}

asio::awaitable<void> Session::run_connection() {
  const bool secured = co_await handshake();
  if (!secured) co_return;
  secured_ = true;
  const bool authenticated = co_await authenticate();
  if (!authenticated) co_return;

  // Set before co_spawn: the reader starts inside it (dispatch on our own strand), and after a
  // stop() it may even finish there, clearing the flag again.
  reader_running_ = true;
  try {
    asio::co_spawn(
        stream_.get_executor(), [self = shared_from_this()] { return self->read_loop(); },
        asio::detached);
  } catch (...) {
    reader_running_ = false;  // no reader to wait for
    throw;
  }
  const std::string reason = co_await serve();
  co_await close_connection(!peer_gone_);

  const auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started_);
  nlohmann::json rec = nlohmann::json::object();
  const JsonReleaser release(rec);
  rec["conn"] = info_.id;
  rec["peer"] = info_.peer;
  rec["principal"] = info_.principal.name;
  rec["reason"] = reason;
  rec["commands"] = dispatcher_->commands();
  rec["duration_ms"] = duration.count();
  if (partial_bytes_ > 0) rec["partial_line_bytes"] = partial_bytes_;
  ctx_.audit.record("disconnect", std::move(rec));
  spdlog::info("conn {}: {} disconnected ({})", info_.id, info_.principal.name, reason);
}

asio::awaitable<bool> Session::handshake() {
  asio::steady_timer timer(stream_.get_executor());
  timer.expires_after(ctx_.config.timeouts.handshake);
  auto result =
      co_await (stream_.async_handshake(ssl::stream_base::server, kUse) || timer.async_wait(kUse));
  ctx_.registry.end_handshake();
  in_handshake_ = false;
  handshaking_.store(false);

  std::string reason;
  if (evicted_) {
    reason = "evicted: max_handshakes reached and this was the oldest pending handshake";
  } else if (result.index() == 1) {
    reason = "handshake_timeout";
  } else if (const error_code ec = std::get<0>(std::get<0>(result)); ec) {
    reason = ec.message();
  } else {
    co_return true;
  }
  nlohmann::json rec = nlohmann::json::object();
  const JsonReleaser release(rec);
  rec["conn"] = info_.id;
  rec["peer"] = info_.peer;
  rec["reason"] = reason;
  const long verify = SSL_get_verify_result(stream_.native_handle());
  if (verify != X509_V_OK) {
    rec["verify_code"] = verify;
    rec["verify_error"] = X509_verify_cert_error_string(verify);
  }
  // The failed handshake may leave more entries on this thread's OpenSSL error queue than the
  // one Asio took; none of them may be seen by the next connection served on this thread.
  ERR_clear_error();
  ctx_.audit.record("tls_failure", std::move(rec));
  spdlog::info("conn {}: TLS handshake with {} failed: {}", info_.id, info_.peer, reason);
  error_code ec;
  stream_.next_layer().close(ec);
  co_return false;
}

asio::awaitable<void> Session::refuse(ErrorCode code, const std::string& message) {
  std::string out;
  protocol::ReplyFormatter().error(out, code, message);
  co_await send(std::move(out));
  co_await close_connection(true);
}

asio::awaitable<bool> Session::authenticate() {
  auto identity = tls::identity_from_connection(stream_.native_handle());
  if (!identity) {
    ctx_.audit.record(
        "auth_denied",
        {{"conn", info_.id}, {"peer", info_.peer}, {"reason", identity.error().message}});
    co_await refuse(ErrorCode::denied, identity.error().message + "; bye");
    co_return false;
  }
  info_.identity = std::move(identity.value());

  const auto policy = ctx_.policy.get();
  auto principal = policy::map_identity(*policy, info_.identity);
  if (!principal) {
    const std::string reason =
        fmt::format("certificate {} is not mapped to a principal", info_.identity.subject);
    ctx_.audit.record("auth_denied", {{"conn", info_.id},
                                      {"peer", info_.peer},
                                      {"identity", identity_json(info_.identity)},
                                      {"reason", reason},
                                      {"policy_version", policy->version}});
    co_await refuse(ErrorCode::denied, reason + "; bye");
    co_return false;
  }
  info_.principal = std::move(*principal);

  if (const std::string refused = ctx_.registry.try_admit(info_.principal.name); !refused.empty()) {
    ctx_.audit.record("session_refused", {{"conn", info_.id},
                                          {"peer", info_.peer},
                                          {"principal", info_.principal.name},
                                          {"reason", refused}});
    co_await refuse(ErrorCode::busy, refused + "; bye");
    co_return false;
  }
  admitted_ = true;

  ctx_.audit.record("auth_ok", {{"conn", info_.id},
                                {"peer", info_.peer},
                                {"identity", identity_json(info_.identity)},
                                {"principal", info_.principal.name},
                                {"roles", info_.principal.roles},
                                {"rule", info_.principal.rule},
                                {"policy_version", policy->version}});
  spdlog::info("conn {}: {} authenticated as {} from {}", info_.id, info_.identity.subject,
               info_.principal.name, info_.peer);
  dispatcher_.emplace(ctx_, info_, *this);

  std::string roles;
  for (const auto& r : info_.principal.roles) roles += (roles.empty() ? "" : ",") + r;
  std::string greeting;
  dispatcher_->formatter().ok(
      greeting, fmt::format("opsagent {} ready", OPSAGENT_VERSION),
      {{"host", ctx_.hostname}, {"principal", info_.principal.name}, {"roles", roles}});
  co_return co_await send(std::move(greeting));
}

asio::awaitable<Session::LineEvent> Session::next_event() {
  idle_timer_.expires_after(ctx_.config.timeouts.idle);
  auto next = co_await (lines_.async_receive(kUse) || idle_timer_.async_wait(kUse));
  LineEvent ev;
  if (next.index() == 1) {
    ev.kind = std::get<0>(std::get<1>(next)) ? LineEvent::Kind::eof : LineEvent::Kind::idle;
  } else if (std::get<0>(std::get<0>(next))) {
    ev.kind = LineEvent::Kind::eof;  // the queue was cancelled: the session is ending
  } else {
    ev = std::move(std::get<1>(std::get<0>(next)));
  }
  co_return ev;
}

// (Plain if/else around co_await: GCC 12 mishandles co_await inside switch and ?: bodies.)
asio::awaitable<std::string> Session::serve() {
  while (true) {
    if (stopping_) co_return "server_shutdown";  // stop() may have come while a command ran
    if (failed_) co_return "internal_error";     // the reader failed while a command ran
    if (revoked_) {  // recheck_certificate(), while a command ran or a line was awaited
      std::string out;
      dispatcher_->formatter().error(out, ErrorCode::denied,
                                     "certificate no longer valid after a reload (revoked?); bye");
      co_await send(std::move(out));
      co_return "certificate_revoked";
    }
    LineEvent ev = co_await next_event();
    if (stopping_) co_return "server_shutdown";
    if (failed_) co_return "internal_error";  // the reader failed
    if (revoked_) continue;                   // said and ended at the top of the loop
    if (peer_gone_ || ev.kind == LineEvent::Kind::eof) co_return "client_closed";
    if (ev.kind == LineEvent::Kind::idle) {
      std::string out;
      dispatcher_->formatter().error(
          out, ErrorCode::timeout,
          fmt::format("idle for {} s; bye", ctx_.config.timeouts.idle.count() / 1000));
      co_await send(std::move(out));
      co_return "idle_timeout";
    }
    if (ev.kind == LineEvent::Kind::overflow) {
      ctx_.audit.record("line_too_long", {{"conn", info_.id},
                                          {"principal", info_.principal.name},
                                          {"limit", ctx_.config.limits.max_line_bytes}});
      std::string out;
      dispatcher_->formatter().error(
          out, ErrorCode::limit,
          fmt::format("line longer than {} bytes; bye", ctx_.config.limits.max_line_bytes));
      co_await send(std::move(out));
      co_return "line_too_long";
    }
    const Dispatcher::Next next = co_await dispatcher_->handle_line(ev.text);
    if (next == Dispatcher::Next::close) co_return peer_gone_ ? "client_closed" : "exit";
  }
}

// Whatever ends the reader, close_connection() is told (reader_done_); an exception ends the
// session the way it does in run().
asio::awaitable<void> Session::read_loop() {
  std::exception_ptr failure;
  try {
    co_await read_lines();
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) note_failure(failure, "reader");
  reader_running_ = false;
  reader_done_.cancel();
}

// Frames lines and queues them for serve(). The queue is bounded (limits.max_pipelined): when it
// is full this coroutine stops reading and TCP flow control pushes back on the client.
// Events are built as named locals before each co_await (GCC 12 mishandles temporaries there).
asio::awaitable<void> Session::read_lines() {
  protocol::LineFramer framer(ctx_.config.limits.max_line_bytes);
  std::array<char, kReadChunk> buf{};
  bool more = true;
  while (more && !stop_reading_) {
    const auto read = co_await stream_.async_read_some(asio::buffer(buf), kUse);
    const error_code ec = std::get<0>(read);
    // stop_reading_: the session is closing. The socket cancel that goes with it misses a read
    // that had already completed and was waiting for the strand, so the flag, checked before
    // every read, is what ends the reader.
    if (ec || stop_reading_) {
      ERR_clear_error();  // e.g. a corrupt record: leave nothing for the thread's next SSL call
      partial_bytes_ = framer.pending_bytes();
      if (ec && !stopping_ && !stop_reading_ && ec != asio::error::operation_aborted) {
        // The client is gone: whatever runs for it is killed now, queued lines are dropped.
        peer_gone_ = true;
        if (dispatcher_) dispatcher_->cancel_active();
      }
      LineEvent eof{LineEvent::Kind::eof, {}};
      lines_.try_send(error_code{}, std::move(eof));
      break;
    }
    std::string_view data(buf.data(), std::get<1>(read));
    while (more && !data.empty()) {
      data.remove_prefix(framer.feed(data));
      LineEvent ev;
      std::optional<std::string> line = framer.next_line();
      if (line) {
        ev.text = std::move(*line);
      } else if (framer.overflowed()) {
        ev.kind = LineEvent::Kind::overflow;
        more = false;
      } else {
        continue;
      }
      // The fast path copies the line in; a full queue blocks this reader, which then cannot
      // see the client leave, so a watch polls the socket for a hang-up meanwhile.
      if (lines_.try_send(error_code{}, ev)) continue;
      watch_for_hangup();
      const auto sent = co_await lines_.async_send(error_code{}, std::move(ev), kUse);
      hangup_watch_.cancel();
      if (std::get<0>(sent)) more = false;
    }
  }
}

bool Session::peer_hung_up() noexcept {
  pollfd p{stream_.lowest_layer().native_handle(), POLLRDHUP, 0};
  if (::poll(&p, 1, 0) != 1) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

void Session::watch_for_hangup() {
  hangup_watch_.expires_after(std::chrono::milliseconds(200));
  hangup_watch_.async_wait([self = shared_from_this()](const error_code& ec) {
    if (ec) return;  // cancelled: the queue has room again, or the session is ending
    if (self->stopping_ || self->stop_reading_ || self->peer_gone_) return;
    if (!self->peer_hung_up()) {
      self->watch_for_hangup();
      return;
    }
    // The queued lines will not be answered: nobody is there to read the answers.
    self->peer_gone_ = true;
    if (self->dispatcher_) self->dispatcher_->cancel_active();
    self->lines_.cancel();
  });
}

asio::awaitable<void> Session::close_connection(bool graceful) {
  stop_reading_ = true;
  if (reader_running_) {
    // Stop the reader first: a TLS shutdown must not run beside a pending read.
    error_code ec;
    stream_.next_layer().cancel(ec);
    lines_.cancel();
    reader_done_.expires_at(asio::steady_timer::time_point::max());
    if (reader_running_) co_await reader_done_.async_wait(kUse);
  }
  if (graceful && !peer_gone_) {
    asio::steady_timer timer(stream_.get_executor());
    timer.expires_after(stopping_ ? std::chrono::milliseconds(kStoppingShutdownTimeout)
                                  : kShutdownTimeout);
    co_await (stream_.async_shutdown(kUse) || timer.async_wait(kUse));
  }
  error_code ec;
  stream_.next_layer().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  stream_.next_layer().close(ec);
}

asio::awaitable<bool> Session::send(std::string bytes) {
  if (peer_gone_) co_return false;
  write_timer_.expires_after(ctx_.config.timeouts.write_stall);
  auto result = co_await (asio::async_write(stream_, asio::buffer(bytes), kUse) ||
                          write_timer_.async_wait(kUse));
  if (result.index() == 1) {
    spdlog::warn("conn {}: client stopped reading for {} ms; dropping it", info_.id,
                 ctx_.config.timeouts.write_stall.count());
  } else if (!std::get<0>(std::get<0>(result))) {
    co_return true;
  }
  peer_gone_ = true;
  if (dispatcher_) dispatcher_->cancel_active();
  co_return false;
}

}  // namespace opsagent::server
