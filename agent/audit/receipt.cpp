#include "agent/audit/receipt.hpp"

#include <algorithm>
#include <chrono>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace opsagent::audit {
namespace asio = boost::asio;

bool SharedRecord::complete(boost::system::error_code ec) noexcept {
  ec_ = ec;
  done_.store(true, std::memory_order_release);
  release();
  return true;
}

void SharedRecord::release() noexcept {
  if (shares_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

asio::awaitable<boost::system::error_code> Receipt::wait() const {
  if (done()) co_return result();
  const auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex);
  auto pause = std::chrono::microseconds(20);
  for (int yields = 0; !done(); ++yields) {
    if (yields < 4) {
      co_await asio::post(ex, asio::use_awaitable);  // from the strand itself: no new schedule
    } else {
      timer.expires_after(pause);
      co_await timer.async_wait(asio::use_awaitable);
      pause = std::min(pause * 2, std::chrono::microseconds(1000));
    }
  }
  co_return result();
}

}  // namespace opsagent::audit
