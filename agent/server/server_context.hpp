#pragma once
// What every session shares. Everything here is either immutable or thread-safe itself.

#include <string>

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "agent/audit/audit_log.hpp"
#include "agent/config/agent_config.hpp"
#include "agent/policy/policy.hpp"
#include "agent/server/session_registry.hpp"
#include "agent/server/snapshot.hpp"

namespace opsagent::server {

struct ServerContext {
  const config::AgentConfig& config;         ///< immutable after start-up
  Snapshot<boost::asio::ssl::context>& tls;  ///< swapped whole on SIGHUP
  Snapshot<const policy::Policy>& policy;    ///< swapped whole on SIGHUP
  audit::AuditLog& audit;
  SessionRegistry& registry;
  boost::asio::thread_pool& blocking_pool;  ///< hashing and file reads, never the I/O threads
  std::string hostname;
};

}  // namespace opsagent::server
