#pragma once
// One asynchronous operation raced against a deadline: the shape of every network step that
// must not wait forever (handshake, write, read, shutdown, connect). Both sides are always
// awaited to completion, so nothing the loser started is left running.

#include <chrono>
#include <optional>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace opsagent::common {

/// Awaits `op` until `timer` completes (its expiry as the caller set it, or a cancel()).
/// Returns the operation's result, or std::nullopt when the timer completed first; then `op`
/// has been cancelled and has finished. One member timer can thus serve a whole flow.
template <typename Result>
boost::asio::awaitable<std::optional<Result>> until_timer(boost::asio::awaitable<Result> op,
                                                          boost::asio::steady_timer& timer) {
  using namespace boost::asio::experimental::awaitable_operators;
  auto raced = co_await (std::move(op) ||
                         timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable)));
  if (raced.index() == 1) co_return std::nullopt;
  co_return std::move(std::get<0>(raced));
}

/// Awaits `op` until `deadline`, with a timer of its own; std::nullopt when the deadline came
/// first.
template <typename Result>
boost::asio::awaitable<std::optional<Result>> with_deadline(
    boost::asio::awaitable<Result> op, std::chrono::steady_clock::time_point deadline) {
  const auto executor = co_await boost::asio::this_coro::executor;
  boost::asio::steady_timer timer(executor, deadline);
  co_return co_await until_timer(std::move(op), timer);
}

/// Awaits `op` for at most `limit`; std::nullopt when the time ran out first.
template <typename Result>
boost::asio::awaitable<std::optional<Result>> with_deadline(boost::asio::awaitable<Result> op,
                                                            std::chrono::nanoseconds limit) {
  const auto executor = co_await boost::asio::this_coro::executor;
  boost::asio::steady_timer timer(executor, limit);
  co_return co_await until_timer(std::move(op), timer);
}

}  // namespace opsagent::common
