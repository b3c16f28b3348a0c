#include "agent/audit/chain_tail.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/common/unique_fd.hpp"

namespace opsagent::audit {
namespace {

constexpr std::size_t kMaxTail = std::size_t{1} << 20;

bool read_at(int fd, char* buf, std::size_t n, off_t offset) {
  std::size_t done = 0;
  while (done < n) {
    const ssize_t got = ::pread(fd, buf + done, n - done, offset + static_cast<off_t>(done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    done += static_cast<std::size_t>(got);
  }
  return true;
}

}  // namespace

std::uint64_t leading_seq(std::string_view line) noexcept {
  constexpr std::string_view kStart = "{\"seq\":";
  if (line.substr(0, kStart.size()) != kStart) return 0;
  std::uint64_t seq = 0;
  const char* first = line.data() + kStart.size();
  const auto res = std::from_chars(first, line.data() + line.size(), seq);
  if (res.ec != std::errc{} || res.ptr == first || res.ptr == line.data() + line.size() ||
      *res.ptr != ',') {
    return 0;
  }
  return seq;
}

ChainTail read_chain_tail(const std::filesystem::path& path, HashChain& chain) {
  ChainTail tail;
  const int raw = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (raw < 0) return tail;
  const UniqueFd fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) return tail;
  const auto size = static_cast<std::size_t>(st.st_size);
  // Small first: a record is rarely more than a few KiB; grow only while no line start is seen.
  for (std::size_t want = 8192;; want *= 4) {
    tail.torn = false;
    const std::size_t n = std::min({want, size, kMaxTail});
    std::string buf(n, '\0');
    if (!read_at(fd.get(), buf.data(), n, static_cast<off_t>(size - n))) return tail;
    std::size_t end = n;  // one past the last whole line's LF
    if (buf.back() != '\n') {
      tail.torn = true;
      const auto lf = buf.rfind('\n');
      if (lf == std::string::npos) {
        if (n == size) return tail;  // one torn line and nothing else
        if (n == kMaxTail) return tail;
        continue;
      }
      end = lf + 1;
    }
    // The last whole line is buf[start, end - 1).
    const auto prev_lf = end >= 2 ? buf.rfind('\n', end - 2) : std::string::npos;
    if (prev_lf == std::string::npos && n < size) {
      if (n == kMaxTail) return ChainTail{.torn = tail.torn};
      continue;
    }
    const std::size_t start = prev_lf == std::string::npos ? 0 : prev_lf + 1;
    const std::string_view line(buf.data() + start, end - 1 - start);
    if (!chain.hash(line, tail.hash)) return ChainTail{.torn = tail.torn};
    tail.found = true;
    tail.seq = leading_seq(line);
    return tail;
  }
}

}  // namespace opsagent::audit
