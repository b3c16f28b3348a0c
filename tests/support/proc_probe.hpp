#pragma once
// Reading a process's state from /proc, for tests that bound the agent's memory and descriptors.

#include <cstddef>
#include <filesystem>
#include <string>
#include <sys/types.h>

namespace opsagent::testing {

/// The whole file, bytes as they are ("" when it cannot be read).
std::string slurp(const std::filesystem::path& p);
/// A "VmHWM:"-style field of /proc/PID/status, in KiB (-1 when missing).
long status_kib(pid_t pid, const std::string& field);
/// How many descriptors `pid` has open.
std::size_t fd_count(pid_t pid);
/// CPU time `pid` has used, user + system (fields 14 and 15 of /proc/PID/stat), in clock ticks
/// (sysconf(_SC_CLK_TCK) per second); -1 when it cannot be read.
long long cpu_ticks(pid_t pid);

}  // namespace opsagent::testing
