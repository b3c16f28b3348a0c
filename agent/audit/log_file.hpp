#pragma once
// Opens the audit file safely: O_APPEND, created with mode 0640, never through a symbolic link,
// regular files only.

#include <filesystem>

#include "agent/common/error.hpp"
#include "agent/common/unique_fd.hpp"

namespace opsagent::audit {

/// Opens (creating with mode 0640) `path` for appending; refuses a symbolic link or anything
/// but a regular file at that path. Blocking.
Result<UniqueFd> open_log_file(const std::filesystem::path& path);

}  // namespace opsagent::audit
