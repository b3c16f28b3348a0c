#pragma once
// What SIGHUP does, in order: reopen the audit log (for rename-based rotation), re-read agent.yaml,
// the policy and the TLS files (certificate, key, CA, CRL). Each part is all-or-nothing: a file
// that fails to load, or an agent.yaml that changes a key that needs a restart (listen,
// limits.io_threads, limits.blocking_threads, exec.umask, audit.path, metrics), leaves the old
// version in force, and the failure is audited and logged. The policy and TLS files are read from
// the paths of the configuration in force after the first step.

#include "agent/server/server_context.hpp"

namespace opsagent::server {

/// Blocking (reads files): call from the blocking-work pool, never an I/O thread.
/// Thread-safe with respect to sessions: new versions are swapped in whole.
/// Never throws: an exception escaping a thread_pool handler would terminate the agent, so any
/// other failure (std::bad_alloc) also leaves the old version in force, logged best-effort.
void reload(ServerContext& ctx) noexcept;

}  // namespace opsagent::server
