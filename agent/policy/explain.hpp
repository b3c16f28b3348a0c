#pragma once
// `opsagent explain`: what the agent would decide for one principal and one command line, and
// the exact rule (role, entry, file:line:column of the policy) that decides it, without running
// anything. Pure: the same gate sequence as a live session (look up, arity, authorise).

#include <string>
#include <vector>

#include "agent/policy/authorizer.hpp"
#include "agent/policy/policy.hpp"

namespace opsagent::policy {

struct Explanation {
  enum class Verdict {
    allow,   ///< the command would run
    deny,    ///< the policy refuses it (an explicit deny or the default deny)
    reject,  ///< the protocol refuses it before the policy: unknown verb, wrong arity
  };
  Verdict verdict = Verdict::deny;
  std::vector<std::string> lines;  ///< "key: value" lines for people, in gate order
};

/// Explains `words` (verb then arguments, as parsed from one protocol line) for `principal`,
/// whose mapping is described by `principal.rule` ("identities[N]").
Explanation explain(const Policy& policy, const Principal& principal,
                    const std::vector<std::string>& words);

/// "FILE:LINE:COLUMN" of `key` in Policy::locations, or "" when not recorded.
std::string location_of(const Policy& policy, const std::string& key);

}  // namespace opsagent::policy
