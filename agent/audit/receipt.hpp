#pragma once
// A record queued for the audit writer whose result its caller checks later: the session queues
// the record of a command that runs nothing, holds the reply, and checks the receipt before the
// reply leaves. The record and its result are shared by the caller (Receipt) and the writer
// thread; whichever lets go last frees it, so neither waits for the other to let go.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

#include "agent/audit/audit_writer.hpp"
#include "agent/audit/receipt_wake.hpp"

namespace opsagent::audit {

/// The record behind a Receipt. The writer only stores the result, marks it done and, when a
/// session waits for it, writes that session's WakeSignal (an eventfd); it never posts to a
/// session's strand: a strand queues a function first and then allocates the operation that
/// schedules it, so a failed allocation there would leave the strand stuck and the session hung
/// (SECURITY-MATRIX H5).
class SharedRecord final : public PendingRecord {
 public:
  explicit SharedRecord(std::string body) noexcept : PendingRecord(std::move(body)) {}
  // From the thread's cache of record blocks (record_buffers.hpp).
  static void* operator new(std::size_t size) { return record_buffers::take_block(size); }
  static void operator delete(void* block) noexcept {
    record_buffers::give_block(block, sizeof(SharedRecord));  // final: always this size
  }

  /// Writer thread: stores the result, then lets go of its share.
  bool complete(boost::system::error_code ec) noexcept override;
  /// Not queued after all (`ec` says why): the writer's share is dropped at once.
  void fail_unqueued(boost::system::error_code ec) noexcept { complete(ec); }
  /// The caller's share is dropped.
  void release() noexcept;
  /// The caller is about to wait: complete() notifies `wake`. False when the record is done
  /// already (nothing will be notified).
  bool arm(std::shared_ptr<WakeSignal> wake) noexcept;

  [[nodiscard]] bool done() const noexcept {
    return state_.load(std::memory_order_acquire) == kDone;
  }
  [[nodiscard]] boost::system::error_code result() const noexcept { return ec_; }

 private:
  static constexpr std::uint8_t kQueued = 0;
  static constexpr std::uint8_t kArmed = 1;  // wake_ is set and is to be notified
  static constexpr std::uint8_t kDone = 2;

  boost::system::error_code ec_;      // written by the writer before state_ becomes kDone
  std::shared_ptr<WakeSignal> wake_;  // written by arm() before state_ becomes kArmed
  std::atomic<std::uint8_t> state_{kQueued};
  std::atomic<int> shares_{2};  // the caller's and the writer's
};

/// The caller's share of a queued record. Move-only; dropping it before the record was written
/// is fine (the writer frees the record then).
class Receipt {
 public:
  Receipt() = default;
  explicit Receipt(SharedRecord* record) noexcept : record_(record) {}
  Receipt(Receipt&& other) noexcept : record_(std::exchange(other.record_, nullptr)) {}
  Receipt& operator=(Receipt&& other) noexcept {
    if (this != &other) {
      reset();
      record_ = std::exchange(other.record_, nullptr);
    }
    return *this;
  }
  Receipt(const Receipt&) = delete;
  Receipt& operator=(const Receipt&) = delete;
  ~Receipt() { reset(); }

  [[nodiscard]] bool valid() const noexcept { return record_ != nullptr; }
  /// True once the record was written or failed (always true for an empty receipt).
  [[nodiscard]] bool done() const noexcept { return record_ == nullptr || record_->done(); }
  /// The write's result; meaningful once done().
  [[nodiscard]] boost::system::error_code result() const noexcept {
    return record_ == nullptr ? boost::system::error_code{} : record_->result();
  }
  /// Completes once the record was written (an empty error_code) or failed; on the caller's
  /// executor. After a few yields it waits to be woken by its context's ReceiptWake, looking
  /// again every `fallback` should no wake-up come; on a context without a ReceiptWake it polls
  /// with a timer backing off from 20 us to 1 ms.
  [[nodiscard]] boost::asio::awaitable<boost::system::error_code> wait(
      std::chrono::milliseconds fallback = std::chrono::milliseconds(1)) const;

 private:
  void reset() noexcept {
    if (record_ != nullptr) std::exchange(record_, nullptr)->release();
  }
  SharedRecord* record_ = nullptr;
};

}  // namespace opsagent::audit
