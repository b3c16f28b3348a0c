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
/// its bytes as they are. With `owner` >= 0 (the agent), also: no access for group or others
/// (mode 0600 or stricter) and owned by `owner` or the effective user. Error "PATH: problem".
Result<std::string> read_chain_key_file(const std::filesystem::path& path, long owner);

}  // namespace opsagent::audit
