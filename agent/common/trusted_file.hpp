#pragma once
// The one rule for every file the agent trusts to decide what it does: agent.yaml, the policy,
// the TLS certificate, key, client CA and CRL, opsagent-guard and the audit log. Whoever may
// write such a file, or replace it in its directory, controls the agent (sshd StrictModes).
// Thread-safe (stateless).

#include <filesystem>
#include <string>
#include <sys/stat.h>

#include "agent/common/error.hpp"

namespace opsagent {

/// The rule on what stat(2) said about `path`: refused when group or others may write it (a
/// directory: unless it is sticky, like /tmp, where nobody else can rename or remove an entry
/// they do not own), or when it is owned by a user other than root, the effective user or the
/// user set with trust_owner(). Error (denied) "PATH: problem".
Status check_trusted_inode(const std::filesystem::path& path, const struct stat& status);

/// The rule for the directory holding `path` as written and, when `path` goes through a
/// symbolic link, for the directory holding the file it resolves to. `path` need not exist
/// (a file the agent will create); its directory must.
Status check_trusted_directory_of(const std::filesystem::path& path);

/// Also trusts files owned by `uid`: the run_as user an agent started as root drops to, which
/// must own the key (and may own the rest) so that a reload after the drop can read them.
/// Called once at start-up, before any check; -1 trusts nobody more.
void trust_owner(long uid) noexcept;

/// A private key's own, stricter rule (sshd StrictModes): no access at all for group or others,
/// since a key others can read may already be copied. Error (denied) "PATH has mode 0640; a
/// private key must not be accessible by group or others (chmod 600)".
Status check_private_key_mode(const std::filesystem::path& path, const struct stat& status);

/// A file mode's permission bits as four octal digits: "0644".
std::string mode_text(mode_t mode);

/// stat(2) of `path` (following links, as the agent will open it), check_trusted_inode, then
/// check_trusted_directory_of. A missing file is an error (notfound).
Status check_trusted_file(const std::filesystem::path& path);

}  // namespace opsagent
