#pragma once
// The narrow channel through which a command answers: data lines and the final line, framed as
// text or JSON, with the bytes of the current command counted for its audit record.

#include <cstdint>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "agent/audit/receipt.hpp"
#include "agent/common/line_batch.hpp"
#include "agent/protocol/reply_formatter.hpp"

namespace opsagent::server {

/// Where replies go. Implemented by the session, which owns the only writer of the stream.
class ReplySink {
 public:
  virtual ~ReplySink() = default;
  /// Writes `bytes` (after whatever send_later() holds) to the client; false when the client
  /// is gone or stalled.
  virtual boost::asio::awaitable<bool> send(std::string bytes) = 0;
  /// Queues `bytes` to go out with the next write (flush(), send(), or when enough is queued),
  /// so that the replies to pipelined commands leave in one TLS write. False when the client
  /// is known to be gone. By default the same as send().
  virtual boost::asio::awaitable<bool> send_later(std::string bytes) {
    co_return co_await send(std::move(bytes));
  }
  /// send_later() for the final line of a command whose audit record was queued without
  /// waiting (`receipt`): the line leaves only once the record was written. If the write
  /// failed and `fail_closed`, the "audit log unavailable" error (framed in `mode`) leaves
  /// instead. By default the sink waits for the record here.
  virtual boost::asio::awaitable<bool> send_later(std::string bytes, audit::Receipt receipt,
                                                  bool fail_closed, protocol::Mode mode);
  /// Writes what send_later() queued; false when the client is gone or stalled.
  virtual boost::asio::awaitable<bool> flush() { co_return true; }
};

/// One per session, used only on its strand.
class ReplyStream {
 public:
  explicit ReplyStream(ReplySink& sink) : sink_(sink) {}

  /// Writes already framed bytes; false when the client is gone.
  boost::asio::awaitable<bool> send(std::string bytes);
  /// Queues a command's final line (ReplySink::send_later); false when the client is gone.
  boost::asio::awaitable<bool> send_final(std::string bytes);
  /// The same for the final line of a command whose audit record `receipt` stands for.
  boost::asio::awaitable<bool> send_final(std::string bytes, audit::Receipt receipt,
                                          bool fail_closed);
  /// Writes the queued final lines now: before a command that may take a while.
  boost::asio::awaitable<bool> flush() { co_return co_await sink_.flush(); }
  /// Frames and writes data lines; false when the client is gone. Awaiting it is the
  /// back-pressure on whatever produces the lines.
  boost::asio::awaitable<bool> send_lines(protocol::Channel channel,
                                          const std::vector<std::string>& lines);
  /// The same for a batch of lines in one buffer (a child's output): one write per batch.
  boost::asio::awaitable<bool> send_lines(protocol::Channel channel, const LineBatch& lines);

  /// Reply framing (text or JSON) in force on this session.
  [[nodiscard]] const protocol::ReplyFormatter& formatter() const noexcept { return fmt_; }
  void set_mode(protocol::Mode mode) noexcept { fmt_.set_mode(mode); }

  /// Bytes written since the last start_command().
  [[nodiscard]] std::uint64_t bytes_sent() const noexcept { return bytes_sent_; }
  /// Data lines on Channel::out framed since the last start_command().
  [[nodiscard]] std::uint64_t out_lines_sent() const noexcept { return out_lines_sent_; }
  void start_command() noexcept {
    bytes_sent_ = 0;
    out_lines_sent_ = 0;
  }

 private:
  ReplySink& sink_;
  protocol::ReplyFormatter fmt_;
  std::uint64_t bytes_sent_ = 0;
  std::uint64_t out_lines_sent_ = 0;
};

}  // namespace opsagent::server
