#pragma once
// What SIGHUP does: re-read the policy and the TLS files (certificate, key, CA, CRL) and reopen
// the audit log (for rename-based rotation). Each part is all-or-nothing: a file that fails to
// load leaves the old version in force, and the failure is audited and logged.

#include "agent/server/server_context.hpp"

namespace opsagent::server {

/// Blocking (reads files): call from the blocking-work pool, never an I/O thread.
/// Thread-safe with respect to sessions: new versions are swapped in whole.
/// Never throws: an exception escaping a thread_pool handler would terminate the agent, so any
/// other failure (std::bad_alloc) also leaves the old version in force, logged best-effort.
void reload(ServerContext& ctx) noexcept;

}  // namespace opsagent::server
