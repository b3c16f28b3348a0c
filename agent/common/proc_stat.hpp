#pragma once
// Reads the state, parent and process group of a process from /proc/PID/stat. Header-only and
// allocation-free: opsagent-guard (a static, dependency-free binary) and the agent's orphan sweep
// (which runs when memory may be short) both use it.

#include <array>
#include <cstdio>
#include <fcntl.h>
#include <optional>
#include <string_view>
#include <sys/types.h>
#include <unistd.h>

#include "agent/common/parse_number.hpp"

namespace opsagent {

/// Fields 3-5 of /proc/PID/stat.
struct ProcStat {
  char state = '?';  ///< R, S, D, Z, T, ...
  pid_t parent = 0;
  pid_t group = 0;
};

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
  return stat;
}

}  // namespace opsagent
