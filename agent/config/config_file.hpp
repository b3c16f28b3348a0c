#pragma once
// Reading configuration files safely: one open, checks on that descriptor, a bounded read.
// Internal to the config and policy loaders.

#include <cstddef>
#include <filesystem>
#include <string>
#include <sys/stat.h>
#include <sys/types.h>

namespace opsagent::config {

/// The bytes of a configuration file and what fstat said about the descriptor they came from.
struct ConfigFile {
  std::string text;       ///< the whole file (at most the size limit)
  struct stat status {};  ///< fstat of the open descriptor (so checks and bytes agree)
};

/// Opens `path` once, requires a regular file of at most `max_bytes`, and reads it.
/// Throws ConfigError "FILE: what is wrong".
ConfigFile read_config_file(const std::filesystem::path& path, std::size_t max_bytes);

/// Refuses (ConfigError "FILE: problem") a file that group or others may write, or that is
/// owned by someone other than root or the effective user, and likewise the directory holding
/// it: whoever can write or replace it controls what the agent allows (sshd StrictModes). The
/// rule is opsagent::check_trusted_inode (common/trusted_file.hpp), shared by every trust file.
void check_not_writable_by_others(const std::filesystem::path& path, const struct stat& status);

/// Refuses (ConfigError naming the file and its mode) a private key that is not a readable
/// regular file or whose mode has any group or other bit (`mode & 077`): a key others can read
/// may already be copied. For re-checks after start-up (SIGHUP), where no YAML position exists.
void check_private_key_file(const std::filesystem::path& path);

}  // namespace opsagent::config
