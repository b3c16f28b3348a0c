// common::with_deadline / until_timer: the operation's result when it wins, std::nullopt (and the
// operation cancelled and finished) when the timer wins, an exception at once, and an operation
// Asio loses (its handler destroyed unrun, SECURITY-MATRIX H5) ending the awaiting coroutine at
// once rather than at the deadline.

#include "agent/common/with_deadline.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>

namespace opsagent::common {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
constexpr auto kLongDeadline = 30s;  // never reached by a passing test

// What Asio does to an operation when an allocation inside its machinery fails: the handler is
// destroyed without being called.
template <typename Token>
auto async_lost(asio::any_io_executor ex, Token&& token) {
  return asio::async_initiate<Token, void(error_code)>(
      [ex](auto handler) { asio::post(ex, [lost = std::move(handler)]() mutable { (void)lost; }); },
      token);
}

asio::awaitable<std::tuple<error_code>> wait_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_return co_await t.async_wait(kUse);
}

// Runs `body` as a coroutine on a strand until nothing is left to do; returns the time it took.
template <typename Body>
Clock::duration run(asio::io_context& io, Body body) {
  const auto start = Clock::now();
  asio::co_spawn(asio::make_strand(io), std::move(body), asio::detached);
  io.run_for(kLongDeadline + 5s);
  return Clock::now() - start;
}

TEST(WithDeadline, ReturnsTheResultWhenTheOperationWins) {
  asio::io_context io;
  std::optional<std::tuple<error_code>> got;
  const auto took = run(io, [&]() -> asio::awaitable<void> {
    got = co_await with_deadline(wait_for(1ms), kLongDeadline);
  });
  ASSERT_TRUE(got.has_value());
  EXPECT_FALSE(std::get<0>(*got));
  EXPECT_LT(took, 5s);  // the deadline's timer went with the race
}

TEST(WithDeadline, CancelsTheOperationAndReturnsNulloptWhenTheDeadlineWins) {
  asio::io_context io;
  bool returned = false;
  bool nothing = false;
  const auto took = run(io, [&]() -> asio::awaitable<void> {
    auto got = co_await with_deadline(wait_for(60s), 20ms);
    returned = true;
    nothing = !got.has_value();
  });
  EXPECT_TRUE(returned);
  EXPECT_TRUE(nothing);
  EXPECT_LT(took, 5s);  // the 60 s wait was cancelled, not left pending
}

TEST(WithDeadline, UntilTimerTakesACancelOfItsTimerAsTheDeadline) {
  asio::io_context io;
  bool nothing = false;
  const auto took = run(io, [&]() -> asio::awaitable<void> {
    asio::steady_timer timer(co_await asio::this_coro::executor, 60s);
    asio::post(co_await asio::this_coro::executor, [&timer] { timer.cancel(); });
    auto got = co_await until_timer(wait_for(60s), timer);
    nothing = !got.has_value();
  });
  EXPECT_TRUE(nothing);
  EXPECT_LT(took, 5s);
}

TEST(WithDeadline, AnExceptionOfTheOperationReachesTheCallerAtOnce) {
  asio::io_context io;
  std::string caught;
  auto failing = []() -> asio::awaitable<int> {
    co_await wait_for(1ms);
    throw std::runtime_error("failed inside");
  };
  const auto took = run(io, [&]() -> asio::awaitable<void> {
    try {
      co_await with_deadline(failing(), kLongDeadline);
    } catch (const std::runtime_error& e) {
      caught = e.what();
    }
  });
  EXPECT_EQ(caught, "failed inside");
  EXPECT_LT(took, 5s);
}

TEST(WithDeadline, ALostOperationEndsTheAwaitingCoroutineAtOnce) {
  asio::io_context io;
  struct Marker {
    bool& destroyed;
    ~Marker() { destroyed = true; }
  };
  bool destroyed = false;
  bool resumed = false;
  const auto took = run(io, [&]() -> asio::awaitable<void> {
    const Marker marker{destroyed};
    auto ex = co_await asio::this_coro::executor;
    auto lost = [ex]() -> asio::awaitable<std::tuple<error_code>> {
      co_return co_await async_lost(ex, kUse);
    };
    co_await with_deadline(lost(), kLongDeadline);
    resumed = true;
  });
  EXPECT_TRUE(destroyed);
  EXPECT_FALSE(resumed);
  EXPECT_LT(took, 5s) << "the awaiting coroutine waited for the deadline";
}

}  // namespace
}  // namespace opsagent::common
