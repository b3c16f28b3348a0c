#pragma once
// The narrow channel through which a command answers: data lines and the final line, framed as
// text or JSON, with the bytes of the current command counted for its audit record.

#include <cstdint>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "agent/protocol/reply_formatter.hpp"

namespace opsagent::server {

/// Where replies go. Implemented by the session, which owns the only writer of the stream.
class ReplySink {
 public:
  virtual ~ReplySink() = default;
  /// Writes `bytes` to the client; false when the client is gone or stalled.
  virtual boost::asio::awaitable<bool> send(std::string bytes) = 0;
};

/// One per session, used only on its strand.
class ReplyStream {
 public:
  explicit ReplyStream(ReplySink& sink) : sink_(sink) {}

  /// Writes already framed bytes; false when the client is gone.
  boost::asio::awaitable<bool> send(std::string bytes);
  /// Frames and writes data lines; false when the client is gone. Awaiting it is the
  /// back-pressure on whatever produces the lines.
  boost::asio::awaitable<bool> send_lines(protocol::Channel channel,
                                          const std::vector<std::string>& lines);

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
