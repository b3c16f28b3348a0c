#pragma once
// The last N lines of a log file, read backwards from the end in bounded chunks.
// Blocking: run on the blocking-work pool.

#include <cstddef>
#include <string>
#include <vector>

#include "agent/common/error.hpp"

namespace opsagent::exec {

/// Returns up to `lines` final lines of the regular file `fd` (without their LF; a final line
/// without LF counts). Reads at most `max_bytes` from the end: when the lines do not fit,
/// returns the complete lines within that window. Lines longer than that are cut.
Result<std::vector<std::string>> tail_lines(int fd, std::size_t lines, std::size_t max_bytes);

}  // namespace opsagent::exec
