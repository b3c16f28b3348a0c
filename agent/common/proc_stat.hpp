#pragma once
// Reads the state, parent, process group and dying marks of a process from /proc/PID/stat.
// Header-only and allocation-free: opsagent-guard (a static, dependency-free binary) and the
// agent's orphan sweep (which runs when memory may be short) both use it.

#include <array>
#include <cstdio>
#include <fcntl.h>
#include <optional>
#include <string_view>
#include <sys/types.h>
#include <unistd.h>

#include "agent/common/parse_number.hpp"

namespace opsagent {

/// Fields 3-5, 9 and 31 of /proc/PID/stat.
struct ProcStat {
  char state = '?';  ///< R, S, D, Z, T, ...
  pid_t parent = 0;
  pid_t group = 0;
  unsigned long flags = 0;    ///< the kernel's PF_* flags (0 when the line was cut short)
  unsigned long pending = 0;  ///< signals pending for the (main) thread, bit N-1 = signal N

  /// True when the process is already on its way out: a zombie, exiting (PF_EXITING), or with
  /// SIGKILL pending, which nothing can block or catch. A group SIGKILL marks every member at
  /// once, but each one exits when it is next scheduled.
  [[nodiscard]] bool dying() const noexcept {
    constexpr unsigned long kPfExiting = 0x4;
    constexpr unsigned long kSigkillBit = 1UL << (9 - 1);
    return state == 'Z' || state == 'X' || (flags & kPfExiting) != 0 ||
           (pending & kSigkillBit) != 0;
  }
};

namespace detail {
/// Drops `count` space-separated fields (and the space after each) from the front of `text`.
inline bool skip_fields(std::string_view& text, int count) noexcept {
  for (int i = 0; i < count; ++i) {
    const auto space = text.find(' ');
    if (space == std::string_view::npos) return false;
    text.remove_prefix(space + 1);
  }
  return true;
}
}  // namespace detail

/// The stat of process `pid_text` (a /proc directory name); nullopt when it is gone or the file
/// cannot be parsed. "PID (COMM) S PPID PGRP ...": COMM may hold spaces and parentheses, so the
/// fields are read after the last ')'.
inline std::optional<ProcStat> read_proc_stat(const char* pid_text) noexcept {
  std::array<char, 64> path{};
  if (std::snprintf(path.data(), path.size(), "/proc/%s/stat", pid_text) >=
      static_cast<int>(path.size())) {
    return std::nullopt;
  }
  const int fd = ::open(path.data(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::array<char, 1024> buffer{};
  const ssize_t n = ::read(fd, buffer.data(), buffer.size());
  ::close(fd);
  if (n <= 0) return std::nullopt;
  std::string_view text(buffer.data(), static_cast<std::size_t>(n));
  const auto close_paren = text.rfind(')');
  if (close_paren == std::string_view::npos || close_paren + 4 >= text.size()) return std::nullopt;
  ProcStat stat;
  stat.state = text[close_paren + 2];
  text.remove_prefix(close_paren + 4);  // ") S "
  const auto parent = take_decimal<pid_t>(text);
  if (!parent || text.empty() || text.front() != ' ') return std::nullopt;
  text.remove_prefix(1);
  const auto group = take_decimal<pid_t>(text);
  if (!group) return std::nullopt;
  stat.parent = *parent;
  stat.group = *group;
  // Field 9 (flags) follows session, tty_nr and tpgid; field 31 (signal) follows 21 more.
  if (!detail::skip_fields(text, 4)) return stat;
  if (const auto flags = take_decimal<unsigned long>(text)) stat.flags = *flags;
  if (!detail::skip_fields(text, 22)) return stat;
  if (const auto pending = take_decimal<unsigned long>(text)) stat.pending = *pending;
  return stat;
}

}  // namespace opsagent
