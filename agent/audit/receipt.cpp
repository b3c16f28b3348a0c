#include "agent/audit/receipt.hpp"

#include <algorithm>
#include <chrono>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

namespace opsagent::audit {
namespace asio = boost::asio;

bool SharedRecord::complete(boost::system::error_code ec) noexcept {
  ec_ = ec;
  if (state_.exchange(kDone, std::memory_order_acq_rel) == kArmed) wake_->notify();
  release();
  return true;
}

void SharedRecord::release() noexcept {
  if (shares_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

bool SharedRecord::arm(std::shared_ptr<WakeSignal> wake) noexcept {
  // Only the caller arms, so state_ moves on its own only from kQueued to kDone, and wake_ is
  // read by the writer only after it saw kArmed.
  const std::uint8_t now = state_.load(std::memory_order_acquire);
  if (now != kQueued) return now == kArmed;
  wake_ = std::move(wake);
  std::uint8_t expected = kQueued;
  return state_.compare_exchange_strong(expected, kArmed, std::memory_order_acq_rel);
}

namespace {

// Unlinks the wait from its ReceiptWake however the coroutine ends (also when its frame is
// destroyed with the context).
class LinkedWaiter {
 public:
  LinkedWaiter(ReceiptWake& wake, const SharedRecord& record, asio::steady_timer& timer) noexcept
      : wake_(wake) {
    waiter_.record = &record;
    waiter_.timer = &timer;
    wake_.add(waiter_);
  }
  LinkedWaiter(const LinkedWaiter&) = delete;
  LinkedWaiter& operator=(const LinkedWaiter&) = delete;
  ~LinkedWaiter() { wake_.remove(waiter_); }
  /// True after the wake took the wait off its list and cancelled the timer.
  [[nodiscard]] bool woken() const noexcept { return !waiter_.linked; }

 private:
  ReceiptWake& wake_;
  ReceiptWaiter waiter_;
};

ReceiptWake* wake_of(const asio::any_io_executor& ex) {
  auto& context = asio::query(ex, asio::execution::context);
  if (!asio::has_service<ReceiptWake>(context)) return nullptr;
  auto& wake = asio::use_service<ReceiptWake>(context);
  return wake.working() ? &wake : nullptr;
}

}  // namespace

asio::awaitable<boost::system::error_code> Receipt::wait(std::chrono::milliseconds fallback) const {
  if (done()) co_return result();
  const auto ex = co_await asio::this_coro::executor;
  // The writer is usually quick: a few turns of the strand first, from the strand itself (no
  // new schedule, no sleep).
  for (int yields = 0; yields < 4 && !done(); ++yields) {
    co_await asio::post(ex, asio::use_awaitable);
  }
  if (done()) co_return result();
  asio::steady_timer timer(ex);
  ReceiptWake* wake = wake_of(ex);
  if (wake != nullptr && record_->arm(wake->signal())) {
    LinkedWaiter waiter(*wake, *record_, timer);
    while (!done()) {
      // A wake-up that never comes costs `fallback`, not the session.
      timer.expires_after(fallback);
      const auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      if (ec == asio::error::operation_aborted && !waiter.woken()) {
        throw boost::system::system_error(ec);  // the session's own cancellation
      }
    }
    co_return result();
  }
  auto pause = std::chrono::microseconds(20);
  while (!done()) {
    timer.expires_after(pause);
    co_await timer.async_wait(asio::use_awaitable);
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
  co_return result();
}

}  // namespace opsagent::audit
