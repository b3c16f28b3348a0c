#pragma once
// Runs a blocking function on the blocking-work pool and resumes the caller on its own executor
// (its strand), so files and digests never stall an I/O thread.

#include <optional>
#include <type_traits>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "agent/metrics/registry.hpp"

namespace opsagent::server {
namespace detail {

// A coroutine function, not a capturing coroutine lambda: parameters are copied into the
// coroutine frame, lambda captures are not (and would dangle).
template <typename F>
boost::asio::awaitable<std::optional<std::invoke_result_t<F&>>> invoke_on_pool(
    F fn, metrics::Gauge* queued) {
  if (queued != nullptr) queued->add(-1);  // started: no longer waiting
  co_return fn();
}

}  // namespace detail

/// Runs `fn` on `pool`; `queued`, when given, counts the jobs posted and not yet started.
template <typename F>
boost::asio::awaitable<std::invoke_result_t<F&>> run_blocking(boost::asio::thread_pool& pool, F fn,
                                                              metrics::Gauge* queued = nullptr) {
  if (queued != nullptr) queued->add(1);
  // co_spawn needs a default-constructible result; optional<R> is one whatever R is.
  auto result = co_await boost::asio::co_spawn(pool, detail::invoke_on_pool(std::move(fn), queued),
                                               boost::asio::use_awaitable);
  co_return std::move(*result);
}

}  // namespace opsagent::server
