#pragma once
// The last N lines of a log file, read backwards from the end in bounded chunks.
// Blocking: run on the blocking-work pool.

#include <cstddef>
#include <string>
#include <vector>

#include "agent/common/error.hpp"

namespace opsagent::exec {

/// The window `tail` and `lastlog` read from the end of a log: a line up to 2 MiB long comes
/// back whole (the reply formatter then splits it into bounded data lines), a longer one cut.
inline constexpr std::size_t kTailWindowBytes = std::size_t{2} << 20;

/// Returns up to `lines` final lines of the regular file `fd` (without their LF; a final line
/// without LF counts). Reads at most `max_bytes` from the end: when the lines do not fit,
/// returns the complete lines within that window. Lines longer than that are cut.
Result<std::vector<std::string>> tail_lines(int fd, std::size_t lines, std::size_t max_bytes);

}  // namespace opsagent::exec
