#pragma once
// A batch of text lines held in one buffer: the lines' bytes back to back (without their LF)
// and where each ends. Streaming a child's output moves thousands of short lines per read; one
// buffer for all of them costs two allocations per batch instead of one per line.
// Not thread-safe; a plain value.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace opsagent {

class LineBatch {
 public:
  /// Appends one line (it must not contain an LF; the batch does not check).
  void push(std::string_view line) {
    bytes_.append(line);
    ends_.push_back(bytes_.size());
  }
  /// Reserves room for about `bytes` bytes of lines.
  void reserve(std::size_t bytes) { bytes_.reserve(bytes); }

  /// The number of lines.
  [[nodiscard]] std::size_t size() const noexcept { return ends_.size(); }
  [[nodiscard]] bool empty() const noexcept { return ends_.empty(); }
  /// The bytes of all lines together.
  [[nodiscard]] std::size_t bytes() const noexcept { return bytes_.size(); }
  /// Line `i` (0-based, < size()); valid until the batch changes.
  [[nodiscard]] std::string_view operator[](std::size_t i) const noexcept {
    const std::size_t begin = i == 0 ? 0 : ends_[i - 1];
    return std::string_view(bytes_).substr(begin, ends_[i] - begin);
  }
  /// All lines as owned strings (tests, and callers that keep lines one by one).
  [[nodiscard]] std::vector<std::string> to_strings() const {
    std::vector<std::string> out;
    out.reserve(size());
    for (std::size_t i = 0; i < size(); ++i) out.emplace_back((*this)[i]);
    return out;
  }

 private:
  std::string bytes_;
  std::vector<std::size_t> ends_;
};

}  // namespace opsagent
