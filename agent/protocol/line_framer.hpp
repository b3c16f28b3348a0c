#pragma once
// Splits a byte stream into LF-terminated lines with a hard size bound. Pure, no I/O.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace opsagent::protocol {

/// Accumulates bytes and yields complete lines (without the LF; a CR before it is kept for the
/// parser to judge). Never holds more than `max_line_bytes` + 1 bytes of an unfinished line.
/// Not thread-safe; owned by one session.
class LineFramer {
 public:
  explicit LineFramer(std::size_t max_line_bytes) : max_(max_line_bytes) {}

  /// Appends bytes; returns how many were consumed. Stops consuming after a complete line is
  /// buffered (call next_line() then feed the rest) or when the line limit is exceeded.
  std::size_t feed(std::string_view bytes);
  /// The next complete line, if one is buffered.
  std::optional<std::string> next_line();
  /// True once an unterminated line has grown beyond the limit; the stream is then unusable.
  [[nodiscard]] bool overflowed() const noexcept { return overflowed_; }
  /// Bytes of an unfinished line held (for "disconnect with partial line" auditing).
  [[nodiscard]] std::size_t pending_bytes() const noexcept { return partial_.size(); }

 private:
  std::size_t max_;
  std::string partial_;
  std::optional<std::string> ready_;
  bool overflowed_ = false;
};

}  // namespace opsagent::protocol
