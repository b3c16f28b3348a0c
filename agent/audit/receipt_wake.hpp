#pragma once
// Wakes a session waiting for its audit record (Receipt::wait) as soon as the writer thread has
// written it, instead of leaving the session to poll a timer. One ReceiptWake per io_context,
// installed with install_receipt_wake(); on a context without one, Receipt::wait polls.
//
// The writer never touches the io_context or its sessions: it writes an eventfd
// (WakeSignal::notify: no allocation, SECURITY-MATRIX H5). The context reads that eventfd while
// someone waits and cancels the timer of each wait whose record is done. The eventfd's counter
// stays readable until it is read, and Asio tries a read before it waits for an edge, so a
// signal written before the context started reading is not lost.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

#include <boost/asio/execution_context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include "agent/common/unique_fd.hpp"

namespace opsagent::audit {

class SharedRecord;

/// The writer's end: an eventfd. Thread-safe. Shared by the context's ReceiptWake and every
/// record armed with it, so it outlives whichever of them goes last.
class WakeSignal {
 public:
  /// Throws std::system_error when no eventfd can be made.
  WakeSignal();

  /// Any thread: makes the reading side wake up. Signals that follow before the reader has
  /// cleared the last one cost nothing (one write(2) per wake-up, not per record).
  void notify() noexcept;
  /// The reader, before it looks at its waits: the next notify() writes again.
  /// (An exchange, not a store: it must be ordered before the reader's loads of the records.)
  void clear() noexcept { signalled_.exchange(false, std::memory_order_acq_rel); }
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }

 private:
  UniqueFd fd_;
  std::atomic<bool> signalled_{false};
};

/// One wait on the context, linked into its ReceiptWake while it waits.
struct ReceiptWaiter {
  const SharedRecord* record = nullptr;
  boost::asio::steady_timer* timer = nullptr;
  bool linked = false;  // in the list; the wake unlinks a wait when it wakes it
  ReceiptWaiter* prev = nullptr;
  ReceiptWaiter* next = nullptr;
};

/// Per io_context (an Asio service). Not thread-safe: only for a context run by one thread
/// (the agent's I/O contexts: one thread each), whose sessions call add() and remove().
class ReceiptWake final : public boost::asio::execution_context::service {
 public:
  // What Asio requires of a service, by these names.
  using key_type = ReceiptWake;  // NOLINT(readability-identifier-naming)
  static inline boost::asio::execution_context::id
      id;  // NOLINT(cert-err58-cpp,cppcoreguidelines-avoid-non-const-global-variables)

  /// Throws std::system_error when no eventfd can be made.
  explicit ReceiptWake(boost::asio::execution_context& owner);
  ReceiptWake(const ReceiptWake&) = delete;
  ReceiptWake& operator=(const ReceiptWake&) = delete;
  ~ReceiptWake() override = default;

  [[nodiscard]] const std::shared_ptr<WakeSignal>& signal() const noexcept { return signal_; }
  /// `w` waits until its record is done; then it is taken off the list (w.linked false) and
  /// its timer cancelled.
  void add(ReceiptWaiter& w) noexcept;
  /// `w` no longer waits (a no-op once it was woken).
  void remove(ReceiptWaiter& w) noexcept;
  /// False until install_receipt_wake() gave it its context to read on, and once reading the
  /// eventfd failed: the waits poll instead.
  [[nodiscard]] bool working() const noexcept { return reader_ && !broken_ && !stopped_; }

 private:
  friend void install_receipt_wake(boost::asio::io_context& io);
  void read_on(boost::asio::io_context& io);
  void unlink(ReceiptWaiter& w) noexcept;
  void shutdown() override;
  void start_reading() noexcept;
  void on_signal(const boost::system::error_code& ec) noexcept;

  std::shared_ptr<WakeSignal> signal_;
  std::optional<boost::asio::posix::stream_descriptor> reader_;  // a dup of signal_'s eventfd
  std::uint64_t count_ = 0;                                      // what a read takes
  ReceiptWaiter* head_ = nullptr;
  bool reading_ = false;
  bool broken_ = false;
  bool stopped_ = false;
};

/// Installs a ReceiptWake on `io`, which must be run by one thread only. Throws
/// std::system_error when no eventfd can be made.
void install_receipt_wake(boost::asio::io_context& io);

}  // namespace opsagent::audit
