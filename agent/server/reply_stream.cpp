#include "agent/server/reply_stream.hpp"

namespace opsagent::server {

boost::asio::awaitable<bool> ReplyStream::send(std::string bytes) {
  bytes_sent_ += bytes.size();
  co_return co_await sink_.send(std::move(bytes));
}

boost::asio::awaitable<bool> ReplyStream::send_final(std::string bytes) {
  bytes_sent_ += bytes.size();
  co_return co_await sink_.send_later(std::move(bytes));
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
