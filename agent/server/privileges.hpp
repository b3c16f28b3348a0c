#pragma once
// Who the agent is once it serves. Started as root, it binds its listeners and opens its files
// (audit log; the TLS key is already loaded), then becomes run_as.user for good, before the first
// connection is accepted: a flaw in the TLS or protocol code then yields an unprivileged process.
// Every function here runs on the start-up thread, except command_refusal() and command_user(),
// which only read the configuration and the process's effective uid (thread-safe).

#include <cstdint>
#include <filesystem>
#include <string>
#include <sys/types.h>
#include <vector>

#include "agent/common/error.hpp"
#include "agent/config/agent_config.hpp"

namespace opsagent::server {

/// What /proc/PID/status says about a process's credentials.
struct Credentials {
  uid_t uid[4] = {};          ///< real, effective, saved, filesystem
  gid_t gid[4] = {};          ///< real, effective, saved, filesystem
  std::vector<gid_t> groups;  ///< supplementary groups
  std::uint64_t cap_effective = 0;
  std::uint64_t cap_permitted = 0;
  std::uint64_t cap_inheritable = 0;
  std::uint64_t cap_ambient = 0;
};

/// Parses the Uid, Gid, Groups and Cap* lines of a /proc/PID/status text; error (internal)
/// naming the first line that is missing or malformed.
Result<Credentials> parse_credentials(const std::string& status_text);

/// Reads /proc/self/status (or /proc/PID/status) and parses it.
Result<Credentials> read_credentials(const std::string& pid = "self");

/// When run_as.user is set and the agent is root: makes the audit log at `audit_path` owned by
/// that user (so that a SIGHUP reopen after the drop can append to it), sets the supplementary
/// groups (initgroups: the user's groups in /etc/group, e.g. adm to read logs), then the real,
/// effective and saved gid and uid. Then checks that it worked: setuid(0) must fail, and
/// /proc/self/status must show the user and group in all four slots, no group 0 and no
/// capability left. Throws std::runtime_error naming what failed (the agent must not serve
/// then). Does nothing without run_as.user, or when the agent already is that user.
void drop_privileges(const config::RunAs& run_as, const std::filesystem::path& audit_path);

/// Why a `run` must be refused: its command would run as root (the agent is still root and
/// neither exec.user nor run_as.user names another user) and run_as.allow_root is not true.
/// Empty when the command may run.
std::string command_refusal(const config::AgentConfig& config);

/// The uid and gid opsagent-guard should switch the command to: exec.uid/gid, or -1/-1 when the
/// agent already runs as that user (after the drop) or exec.user is not set.
struct CommandUser {
  long uid = -1;
  long gid = -1;
};
CommandUser command_user(const config::AgentConfig& config);

/// One log line on the start-up thread when commands would run as root and that is refused,
/// so the operator learns it before the first client does.
void warn_about_root_commands(const config::AgentConfig& config);

}  // namespace opsagent::server
