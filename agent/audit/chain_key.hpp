#pragma once
// The optional key of a keyed (HMAC-SHA-256) audit chain: audit.chain_key_file for the agent,
// `--key-file` for `opsagent audit verify`. Blocking; read once at start.

#include <filesystem>
#include <string>
#include <sys/types.h>

#include "agent/common/error.hpp"

namespace opsagent::audit {

/// The largest key file accepted.
constexpr std::size_t kMaxChainKeyBytes = 4096;

/// Reads a key file: a regular file (no symbolic link), not empty, at most 4 KiB; the key is
/// its bytes as they are. With `strict` (the agent), also: no access for group or others (mode
/// 0600 or stricter) and owned by `owner` (run_as.user's uid, which must be able to read it
/// again at a reload after the privilege drop) or, when `owner` is -1, by the effective user.
/// Error "PATH: problem".
Result<std::string> read_chain_key_file(const std::filesystem::path& path, bool strict,
                                        long owner = -1);

}  // namespace opsagent::audit
