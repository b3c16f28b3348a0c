#pragma once
// Opening files named by clients without being fooled by links, devices or races. The caller
// hashes or reads the returned descriptor, never the path again (no TOCTOU).
// Blocking: call from the blocking-work pool, never from an I/O thread.

#include <filesystem>

#include "agent/common/error.hpp"
#include "agent/common/unique_fd.hpp"

namespace opsagent::exec {

/// Opens `relative` beneath the directory `root` for reading. `root` (absolute, from the policy)
/// is itself opened without following a symbolic link in any component (denied otherwise:
/// a root swapped for a link must not move the grant). Then openat2 with RESOLVE_BENEATH |
/// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV (per-component O_NOFOLLOW walk
/// where openat2 is unavailable), O_NONBLOCK so a FIFO never blocks, then fstat: regular files
/// only, and a link count of 1 (a hard link could alias a secret). Errors: notfound, denied (link,
/// not regular, outside root), internal.
Result<UniqueFd> open_beneath(const std::filesystem::path& root,
                              const std::filesystem::path& relative);

namespace detail {
/// The per-component O_NOFOLLOW walk that open_beneath falls back to when openat2 is missing
/// (ENOSYS). Same contract and errors; exposed only so tests can exercise it on new kernels.
Result<UniqueFd> open_beneath_by_walk(const std::filesystem::path& root,
                                      const std::filesystem::path& relative);
}  // namespace detail

/// Opens an operator-configured log file (absolute path from the policy or config):
/// O_NOFOLLOW on the last component, O_NONBLOCK, then the same descriptor checks as
/// open_beneath: regular files only (not on /proc, /sys and other pseudo file systems), a link
/// count of 1 (a log that is a hard link to a secret is refused, as `hash` refuses it).
Result<UniqueFd> open_log_file(const std::filesystem::path& path);

}  // namespace opsagent::exec
