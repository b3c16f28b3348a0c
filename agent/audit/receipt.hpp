#pragma once
// A record queued for the audit writer whose result its caller checks later: the session queues
// the record of a command that runs nothing, holds the reply, and checks the receipt before the
// reply leaves. The record and its result are shared by the caller (Receipt) and the writer
// thread; whichever lets go last frees it, so neither waits for the other to let go.

#include <atomic>
#include <memory>
#include <string>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

#include "agent/audit/audit_writer.hpp"

namespace opsagent::audit {

/// The record behind a Receipt. The writer only stores the result and sets `done`; it never
/// posts to a session's strand: a strand queues a function first and then allocates the
/// operation that schedules it, so a failed allocation there would leave the strand stuck and
/// the session hung (SECURITY-MATRIX H5). The session polls instead (Receipt::wait).
class SharedRecord final : public PendingRecord {
 public:
  explicit SharedRecord(std::string body) noexcept : PendingRecord(std::move(body)) {}

  /// Writer thread: stores the result, then lets go of its share.
  bool complete(boost::system::error_code ec) noexcept override;
  /// Not queued after all (`ec` says why): the writer's share is dropped at once.
  void fail_unqueued(boost::system::error_code ec) noexcept { complete(ec); }
  /// The caller's share is dropped.
  void release() noexcept;

  [[nodiscard]] bool done() const noexcept { return done_.load(std::memory_order_acquire); }
  [[nodiscard]] boost::system::error_code result() const noexcept { return ec_; }

 private:
  boost::system::error_code ec_;  // written by the writer before done_ is set
  std::atomic<bool> done_{false};
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
  /// executor, which it polls (a few yields, then a timer backing off from 20 us to 1 ms).
  boost::asio::awaitable<boost::system::error_code> wait() const;

 private:
  void reset() noexcept {
    if (record_ != nullptr) std::exchange(record_, nullptr)->release();
  }
  SharedRecord* record_ = nullptr;
};

}  // namespace opsagent::audit
