#include "agent/server/server.hpp"

#include <algorithm>
#include <cassert>
#include <map>
#include <system_error>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <openssl/err.h>
#include <spdlog/spdlog.h>

#include "agent/exec/orphan_reaper.hpp"
#include "agent/metrics/registry.hpp"
#include "agent/server/blocking.hpp"
#include "agent/server/session.hpp"

namespace opsagent::server {
namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {
constexpr auto kUse = asio::as_tuple(asio::use_awaitable);

std::string endpoint_text(const tcp::endpoint& ep) {
  return ep.address().is_v6() ? fmt::format("[{}]:{}", ep.address().to_string(), ep.port())
                              : fmt::format("{}:{}", ep.address().to_string(), ep.port());
}
}  // namespace

Server::Server(asio::io_context& io, ServerContext& ctx,
               std::vector<asio::io_context*> session_contexts)
    : io_(io),
      ctx_(ctx),
      session_contexts_(std::move(session_contexts)),
      sweep_strand_(asio::make_strand(io)),
      sweep_timer_(sweep_strand_) {
  assert(!session_contexts_.empty());
}

asio::io_context& Server::next_session_context() noexcept {
  const std::size_t i = next_context_.fetch_add(1, std::memory_order_relaxed);
  return *session_contexts_[i % session_contexts_.size()];
}

void Server::start() {
  const auto config = ctx_.config.get();
  for (const auto& listen : config->listen) {
    const tcp::endpoint ep(asio::ip::make_address(listen.host), listen.port);
    // Each acceptor lives on its own strand: its accept loop and its close (stop()) never run
    // at the same time on two I/O threads.
    auto acceptor = std::make_unique<tcp::acceptor>(asio::make_strand(io_));
    error_code ec;
    acceptor->open(ep.protocol(), ec);
    if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && ep.address().is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
    if (!ec) acceptor->bind(ep, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      throw std::system_error(ec, "cannot listen on " + endpoint_text(ep));
    }
    spdlog::info("listening on {}", endpoint_text(acceptor->local_endpoint()));
    acceptors_.push_back(std::move(acceptor));
  }
  for (auto& acceptor : acceptors_) {
    asio::co_spawn(acceptor->get_executor(), accept_loop(*acceptor), asio::detached);
  }
  asio::co_spawn(sweep_strand_, sweep_loop(), asio::detached);
}

std::vector<tcp::endpoint> Server::endpoints() const {
  std::vector<tcp::endpoint> out;
  for (const auto& a : acceptors_) out.push_back(a->local_endpoint());
  return out;
}

void Server::stop() {
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard lock(sessions_mutex_);
    stopped_ = true;
    for (auto& weak : sessions_) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
    sessions_.clear();
  }
  for (auto& a : acceptors_) {
    asio::post(a->get_executor(), [acceptor = a.get()] {
      error_code ec;
      acceptor->close(ec);
    });
  }
  asio::post(sweep_strand_, [this] {
    sweep_stopped_ = true;  // the loop may be between waits: the flag, not the cancel, ends it
    sweep_timer_.cancel();
  });
  for (auto& s : live) s->stop();
}

void Server::recheck_sessions() noexcept {
  try {
    std::vector<std::shared_ptr<Session>> live;
    {
      std::lock_guard lock(sessions_mutex_);
      for (auto& weak : sessions_) {
        if (auto s = weak.lock()) live.push_back(std::move(s));
      }
    }
    const std::shared_ptr<boost::asio::ssl::context> tls = ctx_.tls.get();
    const std::shared_ptr<const policy::Policy> policy = ctx_.policy.get();
    for (auto& s : live) s->recheck(tls, policy);
  } catch (const std::exception& e) {  // std::bad_alloc: sessions keep running unchecked
    log_failure("session re-check", e);
  }
}

bool Server::evict_handshake() {
  std::lock_guard lock(sessions_mutex_);
  std::map<std::string, int> pending;  // per source address
  int most = 0;
  for (auto& weak : sessions_) {
    if (auto s = weak.lock(); s && s->evictable()) most = std::max(most, ++pending[s->source()]);
  }
  // In accept order, so the first match is the oldest: first the oldest handshake of the source
  // holding the most (on a tie, the one whose oldest is oldest), then, should those all finish
  // meanwhile, the oldest of any source. The weak references stay: an evicted session must
  // still be reachable by stop(). try_evict() acts: each search stops at the first it evicts.
  const auto evicted_from_busiest = [&](const std::weak_ptr<Session>& weak) {
    const auto s = weak.lock();
    return s && pending[s->source()] == most && s->try_evict();
  };
  const auto evicted = [](const std::weak_ptr<Session>& weak) {
    const auto s = weak.lock();
    return s && s->try_evict();
  };
  return std::ranges::any_of(sessions_, evicted_from_busiest) ||
         std::ranges::any_of(sessions_, evicted);
}

// An exception in one round (std::bad_alloc) skips that round; the loop goes on.
asio::awaitable<void> Server::sweep_loop() {
  while (!sweep_stopped_) {
    bool go_on = true;
    try {
      go_on = co_await sweep_once();
    } catch (const std::exception& e) {
      log_failure("orphan sweep", e);
    }
    if (!go_on) co_return;
  }
}

asio::awaitable<bool> Server::sweep_once() {
  sweep_timer_.expires_after(std::chrono::seconds(1));
  const auto waited = co_await sweep_timer_.async_wait(kUse);
  if (std::get<0>(waited) || sweep_stopped_) co_return false;  // stop()
  auto audit_check = [this] { return ctx_.audit.reopen_if_deleted(); };
  // Never on the client pool: hashes filling it must not hold up the checks (SECURITY-MATRIX I5).
  const Result<bool> reopened =
      co_await run_blocking(ctx_.housekeeping_pool, std::move(audit_check));
  if (sweep_stopped_) co_return false;
  report_audit_check(reopened);
  auto sweep = [] { return exec::sweep_orphans(); };
  const std::vector<pid_t> killed = co_await run_blocking(ctx_.housekeeping_pool, std::move(sweep));
  if (sweep_stopped_) co_return false;
  ctx_.preauth_audit.tick();
  if (!killed.empty()) {
    ctx_.audit.record("orphans_killed", {{"pids", killed}});
    spdlog::warn("killed {} process(es) that escaped their command's process group", killed.size());
  }
  co_return true;
}

// A deleted audit file is noticed within a second, not at the next SIGHUP (issue 8): the agent
// starts a new file at the configured path and says so in both logs.
void Server::report_audit_check(const Result<bool>& reopened) {
  if (!reopened) {
    spdlog::error("the audit log was deleted and cannot be recreated: {}; retrying every second",
                  reopened.error().message);
  } else if (reopened.value()) {
    spdlog::warn("the audit log {} was deleted; writing to a new file at that path",
                 ctx_.audit.path().string());
    ctx_.audit.record("audit_log_recreated",
                      {{"reason",
                        "the previous file was deleted (not rotated); records written "
                        "since its deletion were lost with it"}});
  }
}

void Server::log_failure(const char* what, const std::exception& e) noexcept {
  try {
    spdlog::error("{} failed: {}; carrying on", what, e.what());
  } catch (...) {  // out of memory for the message as well
  }
}

// One connection's failure (std::bad_alloc while taking it, SECURITY-MATRIX H5) drops that
// connection and never ends the loop: an accept loop that stopped would leave the agent alive
// but deaf.
asio::awaitable<void> Server::accept_loop(tcp::acceptor& acceptor) {
  asio::steady_timer backoff(acceptor.get_executor());
  while (acceptor.is_open()) {
    AcceptResult result = AcceptResult::retry_later;
    try {
      result = co_await accept_once(acceptor);
    } catch (const std::exception& e) {
      log_failure("taking a new connection", e);
    }
    if (result == AcceptResult::stop) break;
    if (result == AcceptResult::next) continue;
    // Out of descriptors or memory: wait a little instead of spinning, then accept again.
    try {
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(kUse);
    } catch (const std::exception& e) {
      log_failure("accept back-off", e);
    }
  }
}

asio::awaitable<Server::AcceptResult> Server::accept_once(tcp::acceptor& acceptor) {
  // The context's own executor is the connection's strand: one thread runs each session
  // context. An explicit strand on top cost every completion a second trip through the
  // context's queue (one more epoll_wait each: 6 instead of 3 per `ping` on one connection).
  auto accepted = co_await acceptor.async_accept(next_session_context().get_executor(), kUse);
  auto ec = std::get<0>(accepted);
  auto socket = std::get<1>(std::move(accepted));
  if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return AcceptResult::stop;
  if (ec) {
    // EMFILE and friends: keep accepting after a pause.
    spdlog::warn("accept on {} failed: {}; retrying", endpoint_text(acceptor.local_endpoint()),
                 ec.message());
    co_return AcceptResult::retry_later;
  }
  admit(std::move(socket));
  co_return AcceptResult::next;
}

// Throws (std::bad_alloc) only with nothing held: the socket closes with its local, and a
// handshake slot is returned by the Session that holds it or here when there is no Session yet.
void Server::admit(tcp::socket socket) {
  metrics::registry().connections.inc();
  const std::uint64_t id = ctx_.registry.next_connection_id();
  error_code peer_ec;
  const auto endpoint = socket.remote_endpoint(peer_ec);
  std::string peer = peer_ec ? std::string("unknown") : endpoint_text(endpoint);
  std::string source = peer_ec ? std::string("unknown") : endpoint.address().to_string();
  // At max_handshakes a pending handshake makes room: the oldest of the source holding the most
  // (SECURITY-MATRIX A14, I9). A flood of silent connections then churns through its own slots
  // instead of locking out everyone else. Evicted connections release their slots a moment
  // later, so the count may briefly exceed the limit; twice the limit is the hard ceiling.
  bool admitted = ctx_.registry.try_begin_handshake();
  if (!admitted &&
      ctx_.registry.counts().handshakes < 2 * ctx_.config.get()->limits.max_handshakes &&
      evict_handshake()) {
    ctx_.registry.force_begin_handshake();
    admitted = true;
  }
  if (!admitted) {
    socket.close(peer_ec);
    metrics::registry().refused(metrics::Refusal::max_handshakes);
    if (!ctx_.preauth_audit.failure(source)) return;  // counted only (I8)
    ctx_.audit.record(
        "connection_refused",
        {{"conn", id},
         {"peer", peer},
         {"reason", fmt::format("too many unauthenticated connections (max_handshakes {})",
                                ctx_.config.get()->limits.max_handshakes)}});
    return;
  }
  socket.set_option(tcp::no_delay(true), peer_ec);
  std::shared_ptr<Session> session;
  try {
    // SSL_new() reports a failure with the thread's first queued OpenSSL error: start clean.
    ERR_clear_error();
    session = std::make_shared<Session>(ctx_, std::move(socket), id, peer, source);
  } catch (...) {
    ctx_.registry.end_handshake();
    ERR_clear_error();
    throw;
  }
  {
    std::lock_guard lock(sessions_mutex_);
    if (stopped_) return;  // the session's destructor returns the handshake slot
    std::erase_if(sessions_, [](const std::weak_ptr<Session>& w) { return w.expired(); });
    sessions_.push_back(session);
  }
  // `connection_accepted` is written when the handshake ends (Session::handshake, I8).
  // A session pinned to this thread's context starts inline, up to its first wait (co_spawn
  // dispatches): no lock may be held here.
  session->start();
}

}  // namespace opsagent::server
