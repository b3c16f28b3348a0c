#include "agent/audit/receipt_wake.hpp"

#include <cerrno>
#include <exception>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <system_error>
#include <unistd.h>

#include <boost/asio/buffer.hpp>
#include <boost/system/system_error.hpp>

#include "agent/audit/receipt.hpp"
#include "agent/common/best_effort.hpp"

namespace opsagent::audit {
namespace asio = boost::asio;

namespace {

int make_eventfd() {
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd for audit wake-ups");
  return fd;
}

int duplicate(int fd) {
  const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) throw std::system_error(errno, std::generic_category(), "dup of the audit eventfd");
  return copy;
}

}  // namespace

WakeSignal::WakeSignal() : fd_(make_eventfd()) {}

void WakeSignal::notify() noexcept {
  if (signalled_.exchange(true, std::memory_order_acq_rel)) return;  // not read yet
  const std::uint64_t one = 1;
  // Fails only when the counter would overflow (it is read long before) or the descriptor is
  // gone: the wait's fallback timer finds the record done then.
  while (::write(fd_.get(), &one, sizeof one) < 0 && errno == EINTR) {
  }
}

ReceiptWake::ReceiptWake(asio::execution_context& owner)
    : asio::execution_context::service(owner), signal_(std::make_shared<WakeSignal>()) {}

void ReceiptWake::read_on(asio::io_context& io) {
  // The reader owns a duplicate, so the writer's descriptor stays valid for the records that
  // still hold the signal after this context is gone.
  UniqueFd copy(duplicate(signal_->fd()));
  reader_.emplace(io, copy.get());
  copy.release();
}

// The context is going: waits still linked are destroyed after this (with the rest of the
// context's work) and only unlink themselves.
void ReceiptWake::shutdown() {
  stopped_ = true;
  reading_ = false;
  reader_.reset();  // the pending read (if any) is abandoned with the context's other work
}

void ReceiptWake::add(ReceiptWaiter& w) noexcept {
  w.prev = nullptr;
  w.next = head_;
  if (head_ != nullptr) head_->prev = &w;
  head_ = &w;
  w.linked = true;
  if (!reading_) start_reading();
}

void ReceiptWake::unlink(ReceiptWaiter& w) noexcept {
  if (w.prev != nullptr) {
    w.prev->next = w.next;
  } else {
    head_ = w.next;
  }
  if (w.next != nullptr) w.next->prev = w.prev;
  w.prev = w.next = nullptr;
  w.linked = false;
}

void ReceiptWake::remove(ReceiptWaiter& w) noexcept {
  if (!w.linked) return;  // the wake took it off already
  unlink(w);
  // Nobody waits: stop reading, so that the context can run out of work and its run() return.
  if (head_ == nullptr && reading_ && reader_) {
    boost::system::error_code ignored;
    reader_->cancel(ignored);  // no system call: the read completes with operation_aborted
  }
}

// Reads only while someone waits (remove() cancels the read when the last one leaves): an
// outstanding read is work that would keep the context's run() from returning.
void ReceiptWake::start_reading() noexcept {
  if (stopped_ || broken_) return;
  try {
    reader_->async_read_some(
        asio::buffer(&count_, sizeof count_),
        [this](const boost::system::error_code& ec, std::size_t /*n*/) { on_signal(ec); });
    reading_ = true;
  } catch (const std::exception& e) {  // no memory for the operation: the waits poll
    log_noexcept(spdlog::level::warn, "audit wake-ups: cannot read the eventfd ({}); polling",
                 e.what());
  }
}

void ReceiptWake::on_signal(const boost::system::error_code& ec) noexcept {
  reading_ = false;
  if (stopped_) return;
  if (ec == asio::error::operation_aborted) {
    // remove() cancelled the read; a wait that came after that (while the cancelled read was
    // still reading_) needs it started again.
    if (head_ != nullptr) start_reading();
    return;
  }
  if (ec) {
    broken_ = true;
    // The error's number, not its message: making the text could throw here.
    log_noexcept(spdlog::level::err,
                 "audit wake-ups: reading the eventfd failed (error {}); polling", ec.value());
    return;
  }
  // Cleared before the records are looked at: a record done after this point signals again.
  signal_->clear();
  // A woken wait leaves the list at once: when it was the last, no read is started again.
  for (ReceiptWaiter* w = head_; w != nullptr;) {
    ReceiptWaiter* next = w->next;
    if (w->record->done()) {
      unlink(*w);
      try {
        w->timer->cancel();
      } catch (const boost::system::system_error& e) {  // not seen: the wait's fallback timer
        log_noexcept(spdlog::level::warn, "audit wake-ups: cannot cancel a timer: {}", e.what());
      }
    }
    w = next;
  }
  if (head_ != nullptr) start_reading();
}

void install_receipt_wake(asio::io_context& io) { asio::make_service<ReceiptWake>(io).read_on(io); }

}  // namespace opsagent::audit
