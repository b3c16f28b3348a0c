#include "agent/server/reply_stream.hpp"

#include "agent/server/held_replies.hpp"

namespace opsagent::server {

boost::asio::awaitable<bool> ReplySink::send_later(std::string bytes, audit::Receipt receipt,
                                                   bool fail_closed, protocol::Mode mode) {
  const boost::system::error_code written = co_await receipt.wait();
  if (written && fail_closed) bytes = audit_unavailable_line(mode);
  co_return co_await send_later(std::move(bytes));
}

boost::asio::awaitable<bool> ReplyStream::send(std::string bytes) {
  bytes_sent_ += bytes.size();
  co_return co_await sink_.send(std::move(bytes));
}

boost::asio::awaitable<bool> ReplyStream::send_final(std::string bytes) {
  bytes_sent_ += bytes.size();
  co_return co_await sink_.send_later(std::move(bytes));
}

boost::asio::awaitable<bool> ReplyStream::send_final(std::string bytes, audit::Receipt receipt,
                                                     bool fail_closed) {
  bytes_sent_ += bytes.size();
  co_return co_await sink_.send_later(std::move(bytes), std::move(receipt), fail_closed,
                                      fmt_.mode());
}

boost::asio::awaitable<bool> ReplyStream::send_lines(protocol::Channel channel,
                                                     const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) fmt_.data(out, channel, line);
  if (channel == protocol::Channel::out) out_lines_sent_ += lines.size();
  co_return co_await send(std::move(out));
}

boost::asio::awaitable<bool> ReplyStream::send_lines(protocol::Channel channel,
                                                     const LineBatch& lines) {
  std::string out;
  out.reserve(lines.bytes() + 3 * lines.size());  // "| " and LF; escapes may grow it
  for (std::size_t i = 0; i < lines.size(); ++i) fmt_.data(out, channel, lines[i]);
  if (channel == protocol::Channel::out) out_lines_sent_ += lines.size();
  co_return co_await send(std::move(out));
}

}  // namespace opsagent::server
