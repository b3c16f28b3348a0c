#pragma once
// What a principal may do, listed rather than decided: the details behind `help run`,
// `help tail` and `help hash`. Pure, and consistent with authorize(): everything listed here is
// something authorize() allows (given matching arguments), and nothing else.

#include <filesystem>
#include <string>
#include <vector>

#include "agent/policy/authorizer.hpp"
#include "agent/policy/policy.hpp"
#include "agent/protocol/verbs.hpp"

namespace opsagent::policy {

/// The roles through which `principal` may use `verb`: those whose `commands` list it, or none at
/// all when any of the principal's roles denies it. In name order.
std::vector<const Role*> roles_granting(const Policy& policy, const Principal& principal,
                                        protocol::Verb verb);

/// The commands `run` may start for `principal`, sorted by name (pointers into `policy`).
std::vector<const RunCommand*> runnable_commands(const Policy& policy, const Principal& principal);

/// A log `tail` may read for `principal`.
struct TailableLog {
  std::string name;
  std::filesystem::path path;
};
/// The logs `tail` may read for `principal`, sorted by name.
std::vector<TailableLog> tailable_logs(const Policy& policy, const Principal& principal);

/// What one role lets `hash` (or `comphash`) read: the algorithm and the path must be granted by
/// the same role, so grants are listed per role.
struct HashListing {
  std::string role;
  std::vector<std::string> algorithms;  ///< sorted; comphash: only "sha1"
  std::vector<std::string> paths;       ///< patterns as written
};
/// The hash grants of `principal` for `verb` (Verb::hash or Verb::comphash), one per role that
/// grants at least one algorithm and one path.
std::vector<HashListing> hash_grants(const Policy& policy, const Principal& principal,
                                     protocol::Verb verb);

/// "<name> [optional]...": how to call a command, e.g. "disk-usage [mountpoint]".
std::string run_usage(const RunCommand& command);

}  // namespace opsagent::policy
