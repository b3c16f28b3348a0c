#include "agent/protocol/line_framer.hpp"

namespace opsagent::protocol {

std::size_t LineFramer::feed(std::string_view bytes) {
  if (overflowed_ || ready_) return 0;
  const auto lf = bytes.find('\n');
  const std::size_t take = (lf == std::string_view::npos) ? bytes.size() : lf;
  if (partial_.size() + take > max_) {
    // Keep nothing more: the line is already too long and will be refused whole.
    overflowed_ = true;
    return 0;
  }
  partial_.append(bytes.substr(0, take));
  if (lf == std::string_view::npos) return take;
  ready_ = std::move(partial_);
  partial_.clear();
  return take + 1;
}

std::optional<std::string> LineFramer::next_line() {
  std::optional<std::string> line;
  line.swap(ready_);
  return line;
}

}  // namespace opsagent::protocol
