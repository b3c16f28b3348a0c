#pragma once
// The first line an authenticated client reads: `OK opsagent VERSION ready host=… principal=…
// roles=…` (docs/protocol.md), in the session's reply mode.

#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "agent/policy/policy.hpp"
#include "agent/protocol/reply_formatter.hpp"

namespace opsagent::server {

/// The greeting for `principal` on `hostname`, formatted by `formatter`.
inline std::string greeting(const protocol::ReplyFormatter& formatter, const std::string& hostname,
                            const policy::Principal& principal) {
  std::string line;
  formatter.ok(line, fmt::format("opsagent {} ready", OPSAGENT_VERSION),
               {{"host", hostname},
                {"principal", principal.name},
                {"roles", fmt::format("{}", fmt::join(principal.roles, ","))}});
  return line;
}

}  // namespace opsagent::server
