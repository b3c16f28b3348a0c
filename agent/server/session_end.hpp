#pragma once
// Why an authenticated session ended: the `reason` of its disconnect record (docs/audit.md).

#include <array>
#include <cstddef>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "agent/common/error.hpp"
#include "agent/config/agent_config.hpp"

namespace opsagent::server {

enum class EndReason {
  client_closed,        ///< the client closed or reset the connection, or stopped reading
  exit,                 ///< the client said exit or quit
  idle_timeout,         ///< timeouts.idle without a line
  line_too_long,        ///< a line over limits.max_line_bytes
  server_shutdown,      ///< the agent is stopping
  evicted,              ///< closed in its handshake to admit a newer connection
  certificate_revoked,  ///< the certificate no longer verifies after a reload
  identity_unmapped,    ///< the reloaded policy no longer maps the certificate to the principal
  internal_error,       ///< an exception (std::bad_alloc) ended the session
};

constexpr const char* to_string(EndReason reason) noexcept {
  constexpr std::array<const char*, 9> kNames = {
      "client_closed",   "exit",    "idle_timeout",        "line_too_long",
      "server_shutdown", "evicted", "certificate_revoked", "identity_unmapped",
      "internal_error"};
  return kNames[static_cast<std::size_t>(reason)];
}

/// The last line a client is sent when its session ends for `reason`, if it is told at all
/// (`config`: the limits and timeouts the session ran with).
inline std::optional<Error> goodbye(EndReason reason, const config::AgentConfig& config) {
  switch (reason) {
    case EndReason::idle_timeout:
      return Error{ErrorCode::timeout,
                   fmt::format("idle for {} s; bye", config.timeouts.idle.count() / 1000)};
    case EndReason::line_too_long:
      return Error{ErrorCode::limit,
                   fmt::format("line longer than {} bytes; bye", config.limits.max_line_bytes)};
    case EndReason::certificate_revoked:
      return Error{ErrorCode::denied, "certificate no longer valid after a reload (revoked?); bye"};
    case EndReason::identity_unmapped:
      return Error{ErrorCode::denied,
                   "certificate no longer mapped to this principal after a policy reload; bye"};
    default:
      return std::nullopt;
  }
}

}  // namespace opsagent::server
