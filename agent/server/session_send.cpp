// What leaves a session for its client: send() with the write-stall limit, and the final lines of
// pipelined commands held back so that their replies leave in one write (one TLS record), after
// the audit records they depend on (HeldReplies).

#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "agent/common/with_deadline.hpp"
#include "agent/server/session.hpp"

namespace opsagent::server {
namespace asio = boost::asio;

namespace {
constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
}  // namespace

asio::awaitable<bool> Session::send_later(std::string bytes) {
  if (peer_gone_) co_return false;
  held_.add(bytes);
  if (!held_.full()) co_return true;
  co_return co_await flush();
}

asio::awaitable<bool> Session::send_later(std::string bytes, audit::Receipt receipt,
                                          bool fail_closed, protocol::Mode mode) {
  if (peer_gone_) co_return false;
  held_.add_checked(bytes, std::move(receipt), fail_closed, mode);
  if (!held_.full()) co_return true;
  co_return co_await flush();
}

asio::awaitable<bool> Session::flush() {
  if (held_.empty()) co_return !peer_gone_;
  std::string nothing_more;
  co_return co_await send(std::move(nothing_more));  // send() takes held_ first
}

asio::awaitable<bool> Session::send(std::string bytes) {
  if (peer_gone_) co_return false;
  // Held lines first, in one write, once their audit records are on disk.
  if (!held_.empty()) {
    std::string held = co_await held_.take();
    held += bytes;
    bytes = std::move(held);
  }
  write_timer_.expires_after(config_->timeouts.write_stall);
  const auto written = co_await common::until_timer(
      asio::async_write(stream_, asio::buffer(bytes), kUse), write_timer_);
  if (!written) {
    spdlog::warn("conn {}: client stopped reading for {} ms; dropping it", info_.id,
                 config_->timeouts.write_stall.count());
  } else if (!std::get<0>(*written)) {
    co_return true;
  }
  // Nothing more can reach this client (it left, stalled, or the write failed here: OpenSSL out
  // of memory). End the session now: waiting for its next line would leave a client that is
  // still there waiting for a reply that never comes (SECURITY-MATRIX H5).
  client_gone();
  interrupt(EndReason::client_closed);
  co_return false;
}

}  // namespace opsagent::server
