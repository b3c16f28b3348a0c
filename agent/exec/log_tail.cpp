#include "agent/exec/log_tail.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string_view>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>

namespace opsagent::exec {
namespace {

constexpr std::size_t kChunkBytes = std::size_t{64} * 1024;

Error io_error(const char* what, int err) {
  return {ErrorCode::internal, std::string(what) + ": " + std::generic_category().message(err)};
}

// Reads exactly `size` bytes at `offset`. A short read means the file shrank after fstat
// (truncation or rotation by copytruncate); report it rather than return mixed content.
Status pread_exact(int fd, char* out, std::size_t size, off_t offset) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, out + done, size - done, offset + static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("read failed", errno);
    }
    if (n == 0) return Error{ErrorCode::internal, "file was truncated while reading"};
    done += static_cast<std::size_t>(n);
  }
  return ok_status();
}

}  // namespace

Result<std::vector<std::string>> tail_lines(int fd, std::size_t lines, std::size_t max_bytes) {
  std::vector<std::string> result;
  struct stat st {};
  if (::fstat(fd, &st) != 0) return io_error("fstat failed", errno);
  if (!S_ISREG(st.st_mode)) return Error{ErrorCode::denied, "not a regular file"};
  // The size is sampled once: lines appended while we read are not ours to return.
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (lines == 0 || size == 0 || max_bytes == 0) return result;

  const std::uint64_t window = std::min<std::uint64_t>(size, max_bytes);
  const std::uint64_t floor = size - window;
  // `text` holds [pos, size). Growing it at the front is quadratic only in the number of
  // chunks, which max_bytes bounds; the common case stops after one chunk.
  std::string text;
  std::uint64_t pos = size;
  std::size_t separators = 0;  // LFs seen that start a line (the file's final LF excluded)
  while (pos > floor && separators < lines) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunkBytes, pos - floor));
    pos -= n;
    std::string chunk(n, '\0');
    if (auto s = pread_exact(fd, chunk.data(), n, static_cast<off_t>(pos)); !s) return s.error();
    std::string_view counted = chunk;
    if (pos + n == size && counted.back() == '\n') counted.remove_suffix(1);
    separators += static_cast<std::size_t>(std::count(counted.begin(), counted.end(), '\n'));
    text.insert(0, chunk);
  }

  std::string_view body = text;
  if (body.back() == '\n') body.remove_suffix(1);  // terminator of the last line, not a line
  // Is the first piece a whole line? Yes at the start of the file or right after an LF; the
  // byte before the window is only peeked at, never returned.
  bool first_complete = pos == 0;
  if (!first_complete) {
    char before = '\0';
    if (auto s = pread_exact(fd, &before, 1, static_cast<off_t>(pos - 1)); !s) return s.error();
    first_complete = before == '\n';
  }

  std::vector<std::string_view> pieces;
  std::size_t start = 0;
  while (true) {
    const auto lf = body.find('\n', start);
    pieces.push_back(
        body.substr(start, lf == std::string_view::npos ? std::string_view::npos : lf - start));
    if (lf == std::string_view::npos) break;
    start = lf + 1;
  }
  // A partial first piece is dropped, unless it is all we have: a line longer than the
  // window is then returned cut to the window.
  std::size_t first = (!first_complete && pieces.size() > 1) ? 1 : 0;
  if (pieces.size() - first > lines) first = pieces.size() - lines;
  result.reserve(pieces.size() - first);
  for (std::size_t i = first; i < pieces.size(); ++i) result.emplace_back(pieces[i]);
  return result;
}

}  // namespace opsagent::exec
