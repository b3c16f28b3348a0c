#pragma once
// What every session shares. Everything here is either immutable or thread-safe itself.

#include <string>

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "agent/audit/audit_log.hpp"
#include "agent/config/agent_config.hpp"
#include "agent/policy/policy.hpp"
#include "agent/server/admission.hpp"
#include "agent/server/preauth_audit.hpp"
#include "agent/server/snapshot.hpp"

namespace opsagent::server {

struct ServerContext {
  /// agent.yaml as loaded; swapped whole on SIGHUP. A session keeps the version it started with
  /// for its framing and timeouts; each command reads the current one.
  Snapshot<const config::AgentConfig>& config;
  Snapshot<boost::asio::ssl::context>& tls;  ///< swapped whole on SIGHUP
  Snapshot<const policy::Policy>& policy;    ///< swapped whole on SIGHUP
  audit::AuditLog& audit;
  Admission& registry;
  boost::asio::thread_pool& blocking_pool;  ///< hashing and file reads, never the I/O threads
  /// One thread for the agent's own upkeep (reload, orphan sweep): never client work, so a
  /// full blocking_pool cannot delay it (SECURITY-MATRIX I5).
  boost::asio::thread_pool& housekeeping_pool;
  PreAuthAudit& preauth_audit;  ///< what unauthenticated connections may write to the audit log
  std::string hostname;
};

}  // namespace opsagent::server
