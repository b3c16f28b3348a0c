#include "agent/client/agent_connection.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "agent/client/session_cache.hpp"
#include "agent/common/duration_text.hpp"
#include "agent/common/with_deadline.hpp"
#include "agent/protocol/reply_formatter.hpp"
#include "agent/tls/chain_check.hpp"
#include "agent/tls/peer_certificate.hpp"

namespace opsagent::client {
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using boost::system::error_code;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
// The agent's formatter keeps every line within protocol::kMaxReplyLineBytes (64 KiB); older
// agents sent data lines of up to 16 KiB of output, 4x that once escaped. Room for both.
constexpr std::size_t kMaxReplyLine = std::size_t{1} << 20;
static_assert(kMaxReplyLine >= protocol::kMaxReplyLineBytes,
              "opsctl must read any line the agent can send");
// The read buffer starts small (a fleet of `ping`s holds thousands of connections) and grows
// for long lines, or up to kStreamChunk while reads keep filling it (`run cat bigfile`).
constexpr std::size_t kFirstRead = 4096;
constexpr std::size_t kStreamChunk = std::size_t{64} * 1024;
constexpr std::size_t kMinFree = 1024;
constexpr auto kShutdownWait = std::chrono::seconds(1);
constexpr auto kNoDeadline = std::chrono::hours(24 * 365);

bool is_ip_literal(const std::string& name) {
  error_code ec;
  asio::ip::make_address(name, ec);
  return !ec;
}

// Text lines never start with '{' ("| ", "! ", "OK", "ERR"), so each line says its own mode;
// this follows `json on` / `json off` without knowing whether the switch succeeded.
protocol::Mode mode_of(std::string_view line) {
  return (!line.empty() && line.front() == '{') ? protocol::Mode::json : protocol::Mode::text;
}

bool is_tls_error(const error_code& ec) {
  return ec.category() == asio::error::get_ssl_category() && ec != ssl::error::stream_truncated;
}

}  // namespace

AgentConnection::AgentConnection(const asio::any_io_executor& executor, ssl::context& tls,
                                 Target target, Timeouts timeouts)
    : target_(std::move(target)),
      timeouts_(timeouts),
      resolver_(executor),
      stream_(executor, tls),
      started_(steady_clock::now()) {
  if (target_.server_name.empty()) target_.server_name = target_.address;
}

bool AgentConnection::resumed() noexcept {
  return SSL_session_reused(stream_.native_handle()) == 1;
}

HostResult AgentConnection::fail(HostStatus status, std::string code, std::string message) {
  // A session that led to a failure is not offered again.
  if (offered_session_ && !open_) {
    if (SessionCache* sessions = SessionCache::of(SSL_get_SSL_CTX(stream_.native_handle()))) {
      sessions->forget(target_);
    }
    offered_session_ = false;
  }
  HostResult r;
  r.status = status;
  r.code = std::move(code);
  r.message = std::move(message);
  r.duration = std::chrono::duration_cast<milliseconds>(steady_clock::now() - started_);
  open_ = false;
  close_socket();
  return r;
}

void AgentConnection::abort() noexcept {
  aborted_ = true;
  open_ = false;
  resolver_.cancel();
  close_socket();
}

void AgentConnection::close_socket() noexcept {
  error_code ec;
  stream_.next_layer().close(ec);
}

asio::awaitable<HostResult> AgentConnection::open() {
  started_ = steady_clock::now();
  asio::steady_timer timer(stream_.get_executor(), timeouts_.connect);

  // 1. Resolve and connect, under one deadline.
  const std::string port = std::to_string(target_.port);
  const auto resolved =
      co_await common::until_timer(resolver_.async_resolve(target_.address, port, kUse), timer);
  if (!resolved) {
    co_return fail(HostStatus::unreachable, "connect",
                   fmt::format("resolving {} timed out after {}", target_.address,
                               format_duration(timeouts_.connect)));
  }
  const error_code resolve_ec = std::get<0>(*resolved);
  if (resolve_ec) {
    co_return fail(HostStatus::unreachable, "connect",
                   fmt::format("cannot resolve {}: {}", target_.address, resolve_ec.message()));
  }
  const asio::ip::tcp::resolver::results_type endpoints = std::get<1>(*resolved);
  const auto connected = co_await common::until_timer(
      asio::async_connect(stream_.next_layer(), endpoints, kUse), timer);
  if (!connected) {
    co_return fail(HostStatus::unreachable, "connect",
                   fmt::format("connecting to {}:{} timed out after {}", target_.address,
                               target_.port, format_duration(timeouts_.connect)));
  }
  const error_code connect_ec = std::get<0>(*connected);
  if (connect_ec) {
    co_return fail(HostStatus::unreachable, "connect",
                   fmt::format("cannot connect to {}:{}: {}", target_.address, target_.port,
                               connect_ec.message()));
  }

  // 2. TLS. OpenSSL checks the name itself (DNS SAN, or IP SAN for an address) so a mismatch is
  // reported as "Hostname mismatch" / "IP address mismatch" rather than a bare verify failure.
  SSL* ssl_handle = stream_.native_handle();
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl_handle);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  const std::string& name = target_.server_name;
  int name_set = 0;
  if (is_ip_literal(name)) {
    name_set = X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
  } else {
    // SNI only for DNS names (RFC 6066 forbids IP literals).
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-const-cast): SSL_ctrl takes void*, reads only
    char* host = const_cast<char*>(name.c_str());
    name_set = static_cast<int>(SSL_ctrl(ssl_handle, SSL_CTRL_SET_TLSEXT_HOSTNAME,
                                         TLSEXT_NAMETYPE_host_name, host)) &
               X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
  }
  if (name_set != 1) {
    co_return fail(HostStatus::tls_error, "tls",
                   fmt::format("cannot verify against server name '{}'", name));
  }
  // Resume a session of an earlier verified connection to this target when there is one.
  SessionCache* sessions = SessionCache::of(SSL_get_SSL_CTX(ssl_handle));
  if (sessions != nullptr) {
    if (const SessionPtr offered = sessions->find(target_)) {
      offered_session_ = SSL_set_session(ssl_handle, offered.get()) == 1;
    }
  }
  const auto handshake_deadline = steady_clock::now() + timeouts_.handshake;
  const auto shaken = co_await common::with_deadline(
      stream_.async_handshake(ssl::stream_base::client, kUse), handshake_deadline);
  if (!shaken) {
    co_return fail(
        HostStatus::timeout, "timeout",
        fmt::format("TLS handshake timed out after {}", format_duration(timeouts_.handshake)));
  }
  const error_code handshake_ec = std::get<0>(*shaken);
  if (handshake_ec) {
    std::string message = "TLS handshake failed: " + handshake_ec.message();
    if (const auto failure = tls::handshake_verify_failure(ssl_handle)) {
      message += fmt::format(" ({}; expected {} signed by the configured CA)", failure->text, name);
    }
    co_return fail(HostStatus::tls_error, "tls", std::move(message));
  }

  // 2b. A pinned certificate (inventory `fingerprint` / `opsagent_fingerprint`), checked in
  // addition to the CA and the name.
  if (!target_.pin_sha256.empty()) {
    std::unique_ptr<X509, decltype(&X509_free)> peer(SSL_get1_peer_certificate(ssl_handle),
                                                     &X509_free);
    const std::string seen = peer ? tls::fingerprint_sha256(peer.get()) : std::string();
    if (seen != target_.pin_sha256) {
      co_return fail(HostStatus::tls_error, "tls",
                     fmt::format("agent certificate SHA-256 fingerprint {} is not the pinned {}",
                                 seen.empty() ? "(none)" : seen, target_.pin_sha256));
    }
  }

  // 3. Greeting. In TLS 1.3 the agent judges our certificate after our side of the handshake
  // is done, so a refused client certificate shows up here as a TLS alert.
  const LineRead greeting = co_await read_line(handshake_deadline);
  if (greeting.end == ReadEnd::timed_out) {
    co_return fail(HostStatus::timeout, "timeout",
                   fmt::format("no greeting within {}", format_duration(timeouts_.handshake)));
  }
  if (greeting.end == ReadEnd::failed && is_tls_error(greeting.ec)) {
    co_return fail(HostStatus::tls_error, "tls",
                   "the agent refused the TLS session: " + greeting.ec.message());
  }
  if (greeting.end != ReadEnd::line) {
    co_return fail(HostStatus::error, "protocol",
                   "connection closed before the greeting" +
                       (greeting.ec ? ": " + greeting.ec.message() : std::string()));
  }
  const protocol::ReplyLine parsed =
      protocol::parse_reply_line(greeting.line, protocol::Mode::text);
  if (parsed.kind == protocol::ReplyKind::error) {
    HostResult refused = result_from_final_line(parsed);
    HostResult r = fail(refused.status, refused.code, refused.message);
    co_return r;
  }
  if (parsed.kind != protocol::ReplyKind::ok) {
    co_return fail(HostStatus::error, "protocol", "not an opsagent greeting: " + parsed.text);
  }
  greeting_ = greeting.line;
  open_ = true;
  // Verified (CA, name, pin) and greeted: the agent's ticket (sent before the greeting) may be
  // offered next time.
  if (sessions != nullptr) sessions->store(target_, SSL_get0_session(ssl_handle));
  HostResult ok;
  ok.status = HostStatus::ok;
  ok.message = parsed.text;
  ok.duration = std::chrono::duration_cast<milliseconds>(steady_clock::now() - started_);
  co_return ok;
}

asio::awaitable<HostResult> AgentConnection::command(std::string line, LineHandler on_line) {
  if (!open_) co_return fail(HostStatus::error, "protocol", "not connected");
  const auto deadline =
      steady_clock::now() + (timeouts_.command.count() > 0 ? timeouts_.command : kNoDeadline);
  const std::string limit_text = format_duration(timeouts_.command);
  line.push_back('\n');
  const auto written = co_await common::with_deadline(
      asio::async_write(stream_, asio::buffer(line), kUse), deadline);
  if (!written) {
    co_return fail(HostStatus::timeout, "timeout",
                   "sending the command timed out after " + limit_text);
  }
  const error_code write_ec = std::get<0>(*written);
  if (write_ec) {
    co_return fail(HostStatus::error, "connection",
                   "cannot send the command: " + write_ec.message());
  }

  protocol::ReplyLine parsed;  // one for every line: a streamed line reuses its storage
  while (true) {
    const std::optional<std::string_view> reply = buffered_line();
    if (!reply) {
      if (too_long_) {
        co_return fail(HostStatus::error, "protocol",
                       fmt::format("reply line longer than {} bytes", kMaxReplyLine));
      }
      if (on_idle_) on_idle_();
      const FillResult filled = co_await fill(deadline);
      if (filled.end == ReadEnd::timed_out) {
        co_return fail(HostStatus::timeout, "timeout", "no complete reply within " + limit_text);
      }
      if (filled.end != ReadEnd::line) {
        std::string why = filled.ec ? filled.ec.message() : std::string("closed");
        co_return fail(HostStatus::error, "connection",
                       "connection lost before the reply was complete: " + why);
      }
      continue;
    }
    const protocol::Mode mode = mode_of(*reply);
    protocol::parse_reply_line(*reply, mode, parsed);
    if (on_line) on_line(parsed, *reply);
    if (!parsed.is_final()) continue;
    HostResult r = result_from_final_line(parsed);
    if (parsed.kind == protocol::ReplyKind::ok) {
      r.reply_text = mode == protocol::Mode::text
                         ? std::string(reply->substr(std::min<std::size_t>(3, reply->size())))
                         : parsed.text;
    }
    r.duration = std::chrono::duration_cast<milliseconds>(steady_clock::now() - started_);
    co_return r;
  }
}

std::optional<std::string_view> AgentConnection::buffered_line() noexcept {
  const char* data = read_buffer_.data();
  const void* lf = scan_ < read_end_ ? std::memchr(data + scan_, '\n', read_end_ - scan_) : nullptr;
  if (lf == nullptr) {
    scan_ = read_end_;
    if (read_end_ - read_begin_ > kMaxReplyLine) too_long_ = true;
    return std::nullopt;
  }
  const auto at = static_cast<std::size_t>(static_cast<const char*>(lf) - data);
  const std::string_view line(data + read_begin_, at - read_begin_);
  if (line.size() > kMaxReplyLine) {
    too_long_ = true;
    return std::nullopt;
  }
  read_begin_ = scan_ = at + 1;
  return line;
}

asio::awaitable<AgentConnection::FillResult> AgentConnection::fill(
    steady_clock::time_point deadline) {
  // Keep the unfinished line at the front; grow when little room is left or reads keep
  // filling the buffer, never beyond one maximal line.
  if (read_begin_ > 0) {
    std::memmove(read_buffer_.data(), read_buffer_.data() + read_begin_, read_end_ - read_begin_);
    read_end_ -= read_begin_;
    scan_ -= read_begin_;
    read_begin_ = 0;
  }
  std::size_t size = std::max(read_buffer_.size(), kFirstRead);
  if (size - read_end_ < kMinFree || (last_read_filled_ && size < kStreamChunk)) size *= 2;
  size = std::min(size, kMaxReplyLine + kMinFree);
  if (size != read_buffer_.size()) read_buffer_.resize(size);
  const asio::mutable_buffer free_space(read_buffer_.data() + read_end_, size - read_end_);
  const auto got =
      co_await common::with_deadline(stream_.async_read_some(free_space, kUse), deadline);
  FillResult out;
  if (!got) {
    out.end = ReadEnd::timed_out;
    co_return out;
  }
  const error_code ec = std::get<0>(*got);
  const std::size_t n = std::get<1>(*got);
  read_end_ += n;
  last_read_filled_ = n == free_space.size();
  if (n > 0) {
    out.end = ReadEnd::line;
  } else {
    out.ec = ec;
    out.end = (ec == asio::error::eof || ec == ssl::error::stream_truncated) ? ReadEnd::closed
                                                                             : ReadEnd::failed;
  }
  co_return out;
}

asio::awaitable<AgentConnection::LineRead> AgentConnection::read_line(
    steady_clock::time_point deadline) {
  while (true) {
    const std::optional<std::string_view> line = buffered_line();
    LineRead out;
    if (line) {
      out.end = ReadEnd::line;
      out.line = std::string(*line);
      co_return out;
    }
    if (too_long_) {
      out.end = ReadEnd::too_long;
      co_return out;
    }
    const FillResult filled = co_await fill(deadline);
    if (filled.end != ReadEnd::line) {
      out.end = filled.end;
      out.ec = filled.ec;
      co_return out;
    }
  }
}

asio::awaitable<void> AgentConnection::close() {
  if (!stream_.next_layer().is_open()) co_return;
  if (open_) {
    open_ = false;
    // Say goodbye properly so the agent records a clean disconnect, but never wait long.
    co_await common::with_deadline(stream_.async_shutdown(kUse), kShutdownWait);
  }
  close_socket();
}

asio::awaitable<HostResult> run_on_host(asio::any_io_executor executor, ssl::context& tls,
                                        Target target, Timeouts timeouts, std::string line,
                                        LineHandler on_line) {
  AgentConnection connection(executor, tls, std::move(target), timeouts);
  HostResult opened = co_await connection.open();
  if (opened.status != HostStatus::ok) co_return opened;
  HostResult result = co_await connection.command(std::move(line), std::move(on_line));
  co_await connection.close();
  co_return result;
}

}  // namespace opsagent::client
