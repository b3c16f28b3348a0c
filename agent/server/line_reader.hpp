#pragma once
// The reading half of a connection (the reader/writer split of Asio's chat_server): a coroutine
// beside the session's own that frames the client's bytes into lines and queues them, so that a
// client leaving is noticed even while a command runs.
//
// The queue is bounded (max_pipelined): when it is full the reader stops reading and TCP flow
// control pushes back on the client. A reader blocked on a full queue reads nothing and so would
// not see the client leave; a watch polls the socket for a hang-up meanwhile.
//
// A class template over the stream so that it runs over TLS in the agent and over a plain socket
// pair in unit tests. Everything happens on the stream's executor, which must be a strand
// (explicit, or a context run by one thread).

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <poll.h>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <openssl/err.h>

#include "agent/common/best_effort.hpp"
#include "agent/common/with_deadline.hpp"
#include "agent/protocol/line_framer.hpp"

namespace opsagent::server {

/// What the session receives from its reader.
struct LineEvent {
  enum class Kind {
    line,      ///< `text` holds one line, without its LF
    overflow,  ///< a line exceeded max_line_bytes; nothing more is read
    eof,       ///< the client closed, the connection failed, or the reader was stopped
    idle,      ///< nothing arrived within the idle timeout
  };
  Kind kind = Kind::line;
  std::string text;
};

template <typename Stream>
class LineReader {
 public:
  /// Called (on the strand) once, when the client is seen to leave: EOF, a read error, or a
  /// hang-up while the queue is full. Queued lines will not be answered.
  using GoneHandler = std::function<void()>;
  /// Called (on the strand) when an exception (std::bad_alloc, H5) ends the reader, or a
  /// LostOperation when Asio lost its read. Must not throw.
  using FailureHandler = std::function<void(const std::exception_ptr&)>;

  /// `stream` must outlive the reader. At most `max_queued` lines wait for the session.
  LineReader(Stream& stream, std::size_t max_line_bytes, std::size_t max_queued)
      : stream_(stream),
        max_line_bytes_(max_line_bytes),
        lines_(stream.get_executor(), max_queued),
        idle_timer_(stream.get_executor()),
        done_(stream.get_executor()),
        hangup_watch_(stream.get_executor()) {}

  /// Starts the reader coroutine; `owner` (the session) is kept alive until it ends.
  void start(std::shared_ptr<void> owner, GoneHandler on_gone, FailureHandler on_failure) {
    on_gone_ = std::move(on_gone);
    on_failure_ = std::move(on_failure);
    // Set before co_spawn: the reader starts inside it (dispatch on our own strand), and after a
    // stop() it may even finish there, clearing the flag again.
    running_ = true;
    try {
      boost::asio::co_spawn(stream_.get_executor(), read_loop(std::move(owner)),
                            boost::asio::detached);
    } catch (...) {
      running_ = false;  // no reader to wait for
      throw;
    }
  }

  /// The next event if one is queued already (pipelined lines): true and `ev` set, without
  /// waiting and without arming the idle timer.
  bool try_next(LineEvent& ev) {
    return lines_.try_receive([&ev](boost::system::error_code ec, LineEvent queued) {
      if (ec) {
        ev.kind = LineEvent::Kind::eof;  // the queue was cancelled: the session is ending
      } else {
        ev = std::move(queued);
      }
    });
  }

  /// The next event; `idle` after the last one without a line, an idle event.
  boost::asio::awaitable<LineEvent> next(std::chrono::milliseconds idle) {
    LineEvent ready;
    if (try_next(ready)) co_return ready;
    idle_timer_.expires_after(idle);
    auto next = co_await common::until_timer(lines_.async_receive(kUse), idle_timer_);
    LineEvent ev;
    if (!next) {
      // The timer ended first: idle, unless it was cancelled by stop() (the session is ending).
      ev.kind = stop_ ? LineEvent::Kind::eof : LineEvent::Kind::idle;
    } else if (std::get<0>(*next)) {
      ev.kind = LineEvent::Kind::eof;  // the queue was cancelled: the session is ending
    } else {
      ev = std::move(std::get<1>(*next));
    }
    co_return ev;
  }

  /// Starts no further read, ends a pending read and wakes a waiting next(). Does not wait for
  /// the reader coroutine to finish (see stopped()).
  // NOLINTNEXTLINE(bugprone-exception-escape): cancel(): see the catch below
  void stop() noexcept {
    stop_ = true;
    try {
      lines_.cancel();  // completes a waiting coroutine through its executor: may allocate
    } catch (...) {     // the socket cancel below still ends the reader
    }
    idle_timer_.cancel();
    boost::system::error_code ec;
    stream_.lowest_layer().cancel(ec);
  }

  /// stop(), then waits until the reader coroutine has ended: a TLS shutdown must not run beside
  /// a pending read.
  boost::asio::awaitable<void> stopped() {
    stop();
    if (!running_) co_return;
    done_.expires_at(boost::asio::steady_timer::time_point::max());
    if (running_) co_await done_.async_wait(kUse);
  }

  /// Bytes of an unterminated line left when the reader ended.
  [[nodiscard]] std::size_t partial_bytes() const noexcept { return partial_bytes_; }

 private:
  static constexpr auto kUse = boost::asio::as_tuple(boost::asio::use_awaitable);
  static constexpr std::size_t kReadChunk = 4096;
  static constexpr std::chrono::milliseconds kHangupPoll{200};
  using Channel = boost::asio::experimental::channel<void(boost::system::error_code, LineEvent)>;

  // Whatever ends the reader, stopped() is told (done_); an exception is reported to the session.
  // `owner` lives in the coroutine frame: it keeps the session, and so this reader, alive.
  boost::asio::awaitable<void> read_loop(std::shared_ptr<void> owner) {
    EndGuard guard{*this};
    std::exception_ptr failure;
    try {
      co_await read_lines(owner);
    } catch (...) {
      failure = std::current_exception();
    }
    if (failure) on_failure_(failure);
    guard.finished = true;
  }

  // Destroyed with read_loop's frame, also when Asio loses the read it awaits and destroys the
  // coroutine instead of resuming it (H5): then the session hears of it as a failure, and
  // stopped() returns either way. Locals go before the frame's `owner`: the reader is alive.
  struct EndGuard {
    LineReader& reader;
    bool finished = false;
    explicit EndGuard(LineReader& r) : reader(r) {}
    EndGuard(const EndGuard&) = delete;
    EndGuard& operator=(const EndGuard&) = delete;
    // NOLINTNEXTLINE(bugprone-exception-escape): calls noexcept functions only
    ~EndGuard() {
      if (!finished) {
        reader.on_failure_(lost_operation());
        reader.stop();  // wakes a session waiting in next(), should on_failure_ not have
      }
      reader.running_ = false;
      reader.done_.cancel();
    }
  };

  // Waits until the stream has something to read: over TLS, until OpenSSL holds received bytes
  // or the socket is readable; over a plain socket, until it is readable.
  auto wait_readable() {
    if constexpr (requires(Stream & s) { s.async_wait_readable(kUse); }) {
      return stream_.async_wait_readable(kUse);
    } else {
      return stream_.async_wait(Stream::wait_read, kUse);
    }
  }

  // Events are built as named locals before each co_await (GCC 12 mishandles temporaries there).
  // The read buffer is taken once bytes have arrived and given back once they are framed: an
  // idle session holds none (issue 13, memory per idle session). After a read that filled it,
  // the next read goes ahead without the wait: more is likely to be there already.
  boost::asio::awaitable<void> read_lines(const std::shared_ptr<void>& owner) {
    protocol::LineFramer framer(max_line_bytes_);
    std::unique_ptr<char[]> buf;
    bool drained = true;  // the last read left the buffer room: wait before the next one
    bool more = true;
    while (more && !stop_) {
      std::tuple<boost::system::error_code, std::size_t> read;
      if (drained) {
        const auto waited = co_await wait_readable();
        std::get<0>(read) = std::get<0>(waited);
      }
      if (!std::get<0>(read) && !stop_) {
        if (!buf) buf = std::make_unique_for_overwrite<char[]>(kReadChunk);
        read = co_await stream_.async_read_some(boost::asio::buffer(buf.get(), kReadChunk), kUse);
      }
      const boost::system::error_code ec = std::get<0>(read);
      // stop_: the session is closing. The socket cancel that goes with it misses a read that had
      // already completed and was waiting for the strand, so the flag, checked before every read,
      // is what ends the reader.
      if (ec || stop_) {
        ERR_clear_error();  // e.g. a corrupt record: leave nothing for the thread's next SSL call
        partial_bytes_ = framer.pending_bytes();
        if (ec && !stop_ && ec != boost::asio::error::operation_aborted) client_gone();
        LineEvent eof{LineEvent::Kind::eof, {}};
        lines_.try_send(boost::system::error_code{}, std::move(eof));
        break;
      }
      drained = std::get<1>(read) < kReadChunk;
      std::string_view data(buf.get(), std::get<1>(read));
      while (more && !data.empty()) {
        data.remove_prefix(framer.feed(data));
        LineEvent ev;
        std::optional<std::string> line = framer.next_line();
        if (line) {
          ev.text = std::move(*line);
        } else if (framer.overflowed()) {
          ev.kind = LineEvent::Kind::overflow;
          more = false;
        } else {
          continue;
        }
        // The fast path copies the line in; a full queue blocks this reader until there is room.
        if (lines_.try_send(boost::system::error_code{}, ev)) continue;
        watch_for_hangup(owner);
        const auto sent =
            co_await lines_.async_send(boost::system::error_code{}, std::move(ev), kUse);
        hangup_watch_.cancel();
        if (std::get<0>(sent)) more = false;
      }
      if (drained) buf.reset();
    }
  }

  void client_gone() {
    if (gone_) return;
    gone_ = true;
    on_gone_();
  }

  [[nodiscard]] bool peer_hung_up() noexcept {
    pollfd p{stream_.lowest_layer().native_handle(), POLLRDHUP, 0};
    if (::poll(&p, 1, 0) != 1) return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }

  // Polls every kHangupPoll until hangup_watch_ is cancelled (the queue has room again, or the
  // session is ending); a hang-up (FIN or RST) means the client is gone.
  void watch_for_hangup(std::shared_ptr<void> owner) {
    hangup_watch_.expires_after(kHangupPoll);
    hangup_watch_.async_wait([this, owner = std::move(owner)](const boost::system::error_code& ec) {
      if (ec || stop_ || gone_) return;
      if (!peer_hung_up()) {
        watch_for_hangup(owner);
        return;
      }
      client_gone();
      lines_.cancel();  // ends the blocked send: the queued lines will not be answered
    });
  }

  Stream& stream_;
  const std::size_t max_line_bytes_;
  Channel lines_;
  boost::asio::steady_timer idle_timer_;
  boost::asio::steady_timer done_;          // cancelled (= signalled) when the reader ends
  boost::asio::steady_timer hangup_watch_;  // while the queue is full
  GoneHandler on_gone_;
  FailureHandler on_failure_;
  bool running_ = false;  // the reader coroutine has not ended
  bool stop_ = false;     // stop() was called: start no further read
  bool gone_ = false;     // client_gone() was reported
  std::size_t partial_bytes_ = 0;
};

}  // namespace opsagent::server
