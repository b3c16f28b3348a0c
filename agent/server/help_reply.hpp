#pragma once
// What `help` and `help <command>` answer: the verbs this identity may use, or for one verb what
// the policy lets it pass (run: commands and their arguments; tail: logs; hash and comphash:
// algorithms and path patterns). Pure: built from one policy snapshot, no I/O.

#include <string>
#include <vector>

#include "agent/policy/authorizer.hpp"
#include "agent/policy/policy.hpp"
#include "agent/server/outcome.hpp"

namespace opsagent::server {

struct HelpReply {
  std::vector<std::string> lines;  ///< data lines (stdout channel)
  Outcome outcome;                 ///< the final line
};

/// The reply to `help [args...]` for `principal` under `policy`. A verb that does not exist is
/// `unknown`; one this principal may not use is `denied`.
HelpReply help_reply(const policy::Policy& policy, const policy::Principal& principal,
                     const std::vector<std::string>& args);

}  // namespace opsagent::server
