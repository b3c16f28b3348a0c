#pragma once
// (identity, command) -> Decision. Pure and deterministic: the same policy snapshot and request
// always give the same answer, and every answer names the rule that made it.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/identity/peer_identity.hpp"
#include "agent/policy/policy.hpp"
#include "agent/protocol/verbs.hpp"

namespace opsagent::policy {

/// Who the certificate holder is in policy terms.
struct Principal {
  std::string name;
  std::vector<std::string> roles;
  std::string rule;  ///< the identity rule that matched, e.g. "identities[0]"
};

/// Maps a verified identity to a principal: the first identity rule whose field equals the
/// certificate's value. nullopt when none matches (the connection is then refused).
std::optional<Principal> map_identity(const Policy& policy, const PeerIdentity& identity);

/// The principal's roles that exist in `policy`, in name order, each once: decisions and the
/// rules they name never depend on the order roles were listed in.
std::vector<const Role*> roles_of(const Policy& policy, const Principal& principal);

/// What a reloaded policy says about an open session's principal.
struct Remapping {
  enum class Kind {
    same,           ///< same principal, same roles: nothing to do
    roles_changed,  ///< same principal, other roles or rule: `principal` holds the new mapping
    unmapped,       ///< no longer this principal: the session must end; `reason` says why
  };
  Kind kind = Kind::same;
  Principal principal;
  std::string reason;
};

/// Maps `identity` again under `policy` and compares with the principal it was admitted as.
Remapping remap_identity(const Policy& policy, const PeerIdentity& identity,
                         const Principal& current);

/// A file a hash command may open: beneath `root`, at `relative` (no "..", no links followed).
struct PathGrant {
  std::filesystem::path root;
  std::filesystem::path relative;
  std::string pattern;  ///< the pattern that allowed it
};

/// The outcome of one authorisation. When allowed, carries what the executor needs.
struct Decision {
  bool allowed = false;
  std::string rule;    ///< "roles.ops.commands", "roles.ops.deny", "builtin", "default-deny", ...
  std::string reason;  ///< human-readable, for ERR denied and the audit log
  // Filled only when allowed:
  std::optional<PathGrant> path;    ///< hash, comphash
  std::string algorithm;            ///< hash, comphash
  std::filesystem::path log_path;   ///< tail
  int lines = 0;                    ///< tail
  const RunCommand* run = nullptr;  ///< run (points into the policy it was decided with)
  std::vector<std::string> argv;    ///< run: full argv, fixed part + "--" + client args
};

/// The rule of the decision authorize() gives when it could not decide (out of memory): denied.
inline constexpr std::string_view kInternalErrorRule = "internal-error";

/// Decides whether `principal` may run `verb args...` under `policy`. Arity has been checked
/// by the caller; anything unexpected is denied. Rules, in order: builtin verbs
/// (protocol/verbs.hpp) are allowed; unknown verbs are denied; a verb in any role's `deny` is
/// denied; a verb in no role's `commands` is denied (default); a wrong argument count is denied
/// as malformed; then per verb: tail needs the log in a role's `logs` (and lines <=
/// tail_max_lines); hash and comphash need the algorithm and a matching path pattern in the same
/// role; run needs the command in a role's `run` and every argument to full-match its pattern.
Decision authorize(const Policy& policy, const Principal& principal, std::string_view verb,
                   const std::vector<std::string>& args);

/// The verbs `principal` may use at all (for `help`): the built-in ones and those a role grants
/// and none denies, sorted by name.
std::vector<const protocol::VerbSpec*> allowed_verbs(const Policy& policy,
                                                     const Principal& principal);

}  // namespace opsagent::policy
