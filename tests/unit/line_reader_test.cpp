// The session's reader over a plain socket pair: framing into a bounded queue, overflow, EOF,
// idle, stop, and noticing a hang-up while the queue is full.

#include "agent/server/line_reader.hpp"

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

namespace opsagent::server {
namespace {

namespace asio = boost::asio;
using Socket = asio::local::stream_protocol::socket;
using namespace std::chrono_literals;

constexpr auto kIdle = std::chrono::milliseconds(10'000);

class LineReaderTest : public ::testing::Test {
 protected:
  void make_reader(std::size_t max_line, std::size_t max_queued) {
    asio::local::connect_pair(ours_, theirs_);
    reader_ = std::make_unique<LineReader<Socket>>(ours_, max_line, max_queued);
    reader_->start(
        owner_, [this] { ++gone_; }, [this](const std::exception_ptr&) { ++failures_; });
  }
  void send(const std::string& bytes) { asio::write(theirs_, asio::buffer(bytes)); }

  // Ends the reader coroutine before the sockets and the io_context go.
  void TearDown() override {
    if (!reader_) return;
    asio::post(strand_, [this] { reader_->stop(); });
    auto stopped = asio::co_spawn(strand_, reader_->stopped(), asio::use_future);
    drive(stopped);
  }

  // Runs the io_context on this thread until `f` is ready (at most 30 s).
  template <typename Future>
  void drive(Future& f) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (f.wait_for(0ms) != std::future_status::ready &&
           std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_for(10ms);
    }
  }

  // Runs the io_context until `count` events have arrived (or `idle` passed without one).
  std::vector<LineEvent> receive(std::size_t count, std::chrono::milliseconds idle = kIdle) {
    auto done = asio::co_spawn(strand_, collect(*reader_, count, idle), asio::use_future);
    drive(done);
    return done.get();
  }

  static asio::awaitable<std::vector<LineEvent>> collect(LineReader<Socket>& reader,
                                                         std::size_t count,
                                                         std::chrono::milliseconds idle) {
    std::vector<LineEvent> events;
    while (events.size() < count) {
      LineEvent ev = co_await reader.next(idle);
      events.push_back(std::move(ev));
    }
    co_return events;
  }

  asio::io_context io_;
  asio::strand<asio::io_context::executor_type> strand_ = asio::make_strand(io_);
  Socket ours_{strand_};
  Socket theirs_{io_};
  std::shared_ptr<void> owner_ = std::make_shared<int>(0);
  std::unique_ptr<LineReader<Socket>> reader_;
  int gone_ = 0;
  int failures_ = 0;
};

TEST_F(LineReaderTest, FramesLinesInOrder) {
  make_reader(64, 4);
  send("ping\nhelp\r\n");
  const auto events = receive(2);
  ASSERT_EQ(events.size(), 2U);
  EXPECT_EQ(events[0].kind, LineEvent::Kind::line);
  EXPECT_EQ(events[0].text, "ping");
  EXPECT_EQ(events[1].text, "help\r");  // the parser judges the CR
}

TEST_F(LineReaderTest, ReportsOverflowAndReadsNoMore) {
  make_reader(8, 4);
  send("0123456789abcdef\nping\n");
  const auto events = receive(1);
  EXPECT_EQ(events.at(0).kind, LineEvent::Kind::overflow);
}

TEST_F(LineReaderTest, ReportsEofAndTheClientLeavingWithItsPartialLine) {
  make_reader(64, 4);
  send("ping\nhal");
  theirs_.close();
  const auto events = receive(2);
  EXPECT_EQ(events.at(0).text, "ping");
  EXPECT_EQ(events.at(1).kind, LineEvent::Kind::eof);
  EXPECT_EQ(gone_, 1);
  EXPECT_EQ(reader_->partial_bytes(), 3U);
}

TEST_F(LineReaderTest, ReportsIdle) {
  make_reader(64, 4);
  const auto events = receive(1, 50ms);
  EXPECT_EQ(events.at(0).kind, LineEvent::Kind::idle);
}

TEST_F(LineReaderTest, StopWakesTheSessionWithEofAndEndsTheReader) {
  make_reader(64, 4);
  asio::post(strand_, [this] { reader_->stop(); });
  const auto events = receive(1);
  EXPECT_EQ(events.at(0).kind, LineEvent::Kind::eof);
  auto stopped = asio::co_spawn(strand_, reader_->stopped(), asio::use_future);
  drive(stopped);
  stopped.get();
  EXPECT_EQ(gone_, 0);  // stopping is not the client leaving
}

// With the queue full the reader reads nothing; the hang-up watch still sees the client go.
TEST_F(LineReaderTest, NoticesAHangUpWhileTheQueueIsFull) {
  make_reader(64, 1);
  send("one\ntwo\nthree\n");
  theirs_.shutdown(Socket::shutdown_both);
  theirs_.close();
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (gone_ == 0 && std::chrono::steady_clock::now() < deadline) {
    io_.restart();
    io_.run_for(50ms);
  }
  EXPECT_EQ(gone_, 1);
  EXPECT_EQ(failures_, 0);
}

// A socket whose reads Asio loses (an allocation failing inside Asio destroys the read's handler
// unrun, SECURITY-MATRIX H5): the reader's coroutine is destroyed, not resumed.
struct LosingStream {
  Socket& socket;
  [[nodiscard]] auto get_executor() { return socket.get_executor(); }
  Socket& lowest_layer() { return socket; }
  template <typename Token>
  auto async_wait_readable(Token&& token) {  // "something arrived": on to the read, which is lost
    return asio::async_initiate<Token, void(boost::system::error_code)>(
        [this](auto handler) {
          asio::post(socket.get_executor(), [ready = std::move(handler)]() mutable {
            std::move(ready)(boost::system::error_code{});
          });
        },
        token);
  }
  template <typename Buffers, typename Token>
  auto async_read_some(const Buffers& /*buffers*/, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler) {
          asio::post(socket.get_executor(), [lost = std::move(handler)]() mutable { (void)lost; });
        },
        token);
  }
};

TEST(LineReaderLostRead, TellsTheSessionAndStoppedReturns) {
  asio::io_context io;
  auto strand = asio::make_strand(io);
  Socket ours(strand);
  Socket theirs(io);
  asio::local::connect_pair(ours, theirs);
  LosingStream stream{ours};
  LineReader<LosingStream> reader(stream, 64, 4);
  int failures = 0;
  reader.start(
      std::make_shared<int>(0), [] {}, [&failures](const std::exception_ptr&) { ++failures; });
  auto next = asio::co_spawn(strand, reader.next(kIdle), asio::use_future);
  io.run_for(5s);  // returns once nothing is left to do: long before the idle timeout
  ASSERT_EQ(next.wait_for(0ms), std::future_status::ready);
  EXPECT_EQ(next.get().kind, LineEvent::Kind::eof);
  EXPECT_EQ(failures, 1);
  auto stopped = asio::co_spawn(strand, reader.stopped(), asio::use_future);
  io.restart();
  io.run_for(5s);
  ASSERT_EQ(stopped.wait_for(0ms), std::future_status::ready);
}

}  // namespace
}  // namespace opsagent::server
