#pragma once
// The trust check (common/trusted_file.hpp) for every file agent.yaml names besides the policy,
// whose loader checks it: at start-up and again at every reload (SECURITY-MATRIX I4).

#include <filesystem>

#include "agent/config/agent_config.hpp"

namespace opsagent::config {

/// The certificate, the private key (also: no access at all for group or others), the client
/// CA and the CRL when one is set, and their directories. Throws ConfigError "FILE: problem".
void check_tls_files(const TlsSettings& tls);

/// The audit log when it exists (never left writable by group or others: refused, not
/// re-moded), and always its directory. Throws ConfigError "FILE: problem".
void check_audit_file(const std::filesystem::path& path);

/// opsagent-guard, which runs every command as the agent's user, and its directory. Throws
/// ConfigError "FILE: problem".
void check_guard_file(const std::filesystem::path& path);

/// All of the above for `cfg` (exec.guard must be resolved; an empty one is skipped).
void check_trust_files(const AgentConfig& cfg);

}  // namespace opsagent::config
