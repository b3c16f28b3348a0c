#pragma once
// One asynchronous operation raced against a deadline: the shape of every network step that
// must not wait forever (handshake, write, read, shutdown, connect).
//
// The operation runs in a coroutine of its own whose cancellation slot the timer's handler
// signals, and the caller awaits that coroutine directly. Two properties follow:
// - the operation has always finished (completed or been cancelled) when the race returns, so
//   nothing it started is left running;
// - an operation that Asio loses (an allocation failing inside Asio's own machinery, outside any
//   coroutine, destroys the operation's handler without calling it: SECURITY-MATRIX H5) takes the
//   awaiting coroutine down with it at once, so whoever owns that coroutine cleans up now. A
//   parallel group (`op || timer`) would instead hold the caller until the deadline, because the
//   group waits for every branch and learns of the lost one only when the timer's branch ends.

#include <chrono>
#include <memory>
#include <optional>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>

namespace opsagent::common {

namespace detail {

// Shared by a race's coroutine and its timer handler, which may run after the race has returned.
struct DeadlineRace {
  boost::asio::cancellation_signal cancel_op;
  bool finished = false;  // the race returned, or its coroutine was destroyed
  bool timer_won = false;

  // Set on every way out of the race's coroutine, including its destruction.
  struct FinishOnExit {
    std::shared_ptr<DeadlineRace> race;
    explicit FinishOnExit(std::shared_ptr<DeadlineRace> r) : race(std::move(r)) {}
    FinishOnExit(const FinishOnExit&) = delete;
    FinishOnExit& operator=(const FinishOnExit&) = delete;
    ~FinishOnExit() { race->finished = true; }
  };
};

}  // namespace detail

/// Awaits `op` until `timer` completes (its expiry as the caller set it, or a cancel()).
/// Returns the operation's result, or std::nullopt when the timer completed first; then `op`
/// has been cancelled and has finished. One member timer can thus serve a whole flow. The
/// timer's executor must be the caller's (a strand): its handler and the race share state.
/// An exception thrown by `op` reaches the caller as soon as it is thrown.
template <typename Result>
boost::asio::awaitable<std::optional<Result>> until_timer(boost::asio::awaitable<Result> op,
                                                          boost::asio::steady_timer& timer) {
  auto race = std::make_shared<detail::DeadlineRace>();
  const detail::DeadlineRace::FinishOnExit finish{race};
  timer.async_wait([race](const boost::system::error_code&) {
    if (race->finished) return;  // the operation won; this is the race's own cancel below
    race->timer_won = true;
    race->cancel_op.emit(boost::asio::cancellation_type::all);
  });
  const auto executor = co_await boost::asio::this_coro::executor;
  Result result = co_await boost::asio::co_spawn(
      executor, std::move(op),
      boost::asio::bind_cancellation_slot(race->cancel_op.slot(), boost::asio::use_awaitable));
  race->finished = true;
  timer.cancel();
  if (race->timer_won) co_return std::nullopt;
  co_return std::optional<Result>(std::move(result));
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
