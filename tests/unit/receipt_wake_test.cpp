// ReceiptWake: a session waiting for its audit record is woken by the writer's eventfd, not by
// its fallback timer. Each wait here has a fallback of an hour: it completes within the bounded
// run only if the wake-up works.

#include "agent/audit/receipt_wake.hpp"

#include <chrono>
#include <exception>
#include <future>
#include <thread>
#include <vector>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include "agent/audit/receipt.hpp"

namespace opsagent::audit {
namespace {

namespace asio = boost::asio;
using std::chrono::hours;

const boost::system::error_code kNoSpace(ENOSPC, boost::system::system_category());

// A record as AuditLog::queue makes one, which the test completes in the writer's place.
struct Queued {
  SharedRecord* record = new SharedRecord("\"event\":\"test\"");
  Receipt receipt{record};
};

// Runs `io` until `done` is ready, for at most 10 s; the waits' fallback is an hour.
template <typename T>
bool run_until_ready(asio::io_context& io, std::future<T>& done) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (done.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    io.restart();
    io.run_for(std::chrono::milliseconds(50));
  }
  return true;
}

TEST(ReceiptWake, WakesAWaitWhenTheWriterThreadCompletesItsRecord) {
  asio::io_context io(1);
  install_receipt_wake(io);
  ASSERT_TRUE(asio::use_service<ReceiptWake>(io).working());  // not the polling fallback
  Queued q;
  auto waited = asio::co_spawn(io, q.receipt.wait(hours(1)), asio::use_future);
  io.poll();  // the wait yields, arms its record and sleeps on its timer
  ASSERT_NE(waited.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  std::thread writer([&] { q.record->complete(kNoSpace); });
  writer.join();
  io.restart();
  io.run_for(std::chrono::seconds(10));
  ASSERT_EQ(waited.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_EQ(waited.get(), kNoSpace);
  // Nobody waits any more: no read of the eventfd is left pending, so run() ran out of work
  // (an agent's I/O thread must be able to stop).
  EXPECT_TRUE(io.stopped());
}

TEST(ReceiptWake, WakesEachOfManyWaitsWhicheverOrderTheirRecordsComeIn) {
  asio::io_context io(1);
  install_receipt_wake(io);
  std::vector<Queued> records(8);
  std::vector<std::future<boost::system::error_code>> waits;
  for (auto& q : records) {
    waits.push_back(asio::co_spawn(io, q.receipt.wait(hours(1)), asio::use_future));
  }
  io.poll();
  // Completed in two batches, the later records first, from another thread.
  for (const auto& half : {std::vector<int>{7, 5, 3, 1}, std::vector<int>{6, 4, 2, 0}}) {
    std::thread writer([&] {
      for (int i : half) records[static_cast<std::size_t>(i)].record->complete({});
    });
    writer.join();
    for (int i : half) {
      ASSERT_TRUE(run_until_ready(io, waits[static_cast<std::size_t>(i)])) << "wait " << i;
      EXPECT_FALSE(waits[static_cast<std::size_t>(i)].get());
    }
  }
}

TEST(ReceiptWake, ARecordCompletedBeforeTheWaitSleepsIsNotMissed) {
  asio::io_context io(1);
  install_receipt_wake(io);
  // Signalled once by an earlier record nobody waits for any more: the eventfd is readable
  // before the next wait starts reading it.
  {
    Queued early;
    auto waited = asio::co_spawn(io, early.receipt.wait(hours(1)), asio::use_future);
    io.poll();
    early.record->complete({});
    ASSERT_TRUE(run_until_ready(io, waited));
  }
  Queued q;
  q.record->complete(kNoSpace);  // done before the wait is even started
  auto waited = asio::co_spawn(io, q.receipt.wait(hours(1)), asio::use_future);
  ASSERT_TRUE(run_until_ready(io, waited));
  EXPECT_EQ(waited.get(), kNoSpace);
}

TEST(ReceiptWake, AWriterCompletingAfterTheContextIsGoneTouchesNothingFreed) {
  Queued q;
  {
    asio::io_context io(1);
    install_receipt_wake(io);
    auto waited = asio::co_spawn(io, q.receipt.wait(hours(1)), asio::use_future);
    io.poll();
    ASSERT_NE(waited.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  }  // the context, its ReceiptWake and the waiting frame are destroyed; the record is armed
  std::thread writer([&] { q.record->complete({}); });  // notifies the signal the record holds
  writer.join();
  EXPECT_TRUE(q.receipt.done());
}

TEST(ReceiptWake, AWaitArrivingWhileTheLastOnesReadIsBeingCancelledIsStillWoken) {
  asio::io_context io(1);
  install_receipt_wake(io);
  auto& wake = asio::use_service<ReceiptWake>(io);
  Queued first;
  Queued second;
  asio::steady_timer first_timer(io);
  asio::steady_timer second_timer(io);
  ReceiptWaiter a;
  a.record = first.record;
  a.timer = &first_timer;
  wake.add(a);     // starts reading the eventfd
  wake.remove(a);  // the last wait leaves: the read is cancelled, its completion not run yet
  ReceiptWaiter b;
  b.record = second.record;
  b.timer = &second_timer;
  ASSERT_TRUE(second.record->arm(wake.signal()));
  wake.add(b);  // before that completion ran
  bool fired = false;
  boost::system::error_code woke;
  second_timer.expires_after(hours(1));
  second_timer.async_wait([&](const boost::system::error_code& ec) {
    fired = true;
    woke = ec;
  });
  std::thread writer([&] { second.record->complete({}); });
  writer.join();
  io.run_for(std::chrono::seconds(10));
  ASSERT_TRUE(fired);
  EXPECT_EQ(woke, asio::error::operation_aborted);  // cancelled by the wake, not expired
  EXPECT_FALSE(b.linked);
  first.record->complete({});
}

TEST(ReceiptWake, AWaitCancelledByItsSessionEndsAsBeforeAndLeavesNoReadPending) {
  asio::io_context io(1);
  install_receipt_wake(io);
  Queued q;
  asio::cancellation_signal cancel;
  bool finished = false;
  std::exception_ptr failure;
  asio::co_spawn(io, q.receipt.wait(hours(1)),
                 asio::bind_cancellation_slot(
                     cancel.slot(), [&](std::exception_ptr e, boost::system::error_code /*ec*/) {
                       failure = std::move(e);
                       finished = true;
                     }));
  io.poll();
  ASSERT_FALSE(finished);
  cancel.emit(asio::cancellation_type::terminal);
  io.restart();
  io.run_for(std::chrono::seconds(10));
  ASSERT_TRUE(finished);
  EXPECT_TRUE(failure);  // operation_aborted, as a cancelled timer wait always threw
  EXPECT_TRUE(io.stopped());
  q.record->complete({});  // the writer, later: the wait is gone, nothing is touched
}

TEST(ReceiptWake, AContextWithoutOneStillCompletesTheWaitByPolling) {
  asio::io_context io(1);
  Queued q;
  auto waited = asio::co_spawn(io, q.receipt.wait(), asio::use_future);
  io.poll();
  std::thread writer([&] { q.record->complete(kNoSpace); });
  writer.join();
  ASSERT_TRUE(run_until_ready(io, waited));
  EXPECT_EQ(waited.get(), kNoSpace);
}

}  // namespace
}  // namespace opsagent::audit
