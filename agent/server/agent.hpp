#pragma once
// The running agent: the I/O threads, the blocking-work pool, what every session shares, the
// listener, and the lifecycle around them:
//   start (bind, `agent_start`) -> serve -> SIGHUP: reload (coalesced) -> SIGINT/SIGTERM: stop
//   every session, with a deadline -> final orphan sweep, `agent_stop`.
// main() loads the configuration and hands it here; nothing in this class reads flags.

#include <memory>
#include <string>

#include <boost/asio/ssl/context.hpp>

#include "agent/config/agent_config.hpp"
#include "agent/policy/policy.hpp"

namespace opsagent::server {

class Agent {
 public:
  /// The configuration, policy and TLS context must already be loaded and validated. Sets the
  /// process umask (exec.umask), makes the agent the subreaper of escaped descendants and opens
  /// the audit log (throws std::runtime_error naming it when that fails).
  Agent(config::AgentConfig config, std::shared_ptr<const policy::Policy> policy,
        std::shared_ptr<boost::asio::ssl::context> tls);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  /// Binds every listener (throws std::exception naming the address when
  /// one cannot be bound), installs the signal handlers, logs "listening on ..." and audits
  /// `agent_start`.
  void start();
  /// Serves on this thread and limits.io_threads - 1 more until SIGINT or SIGTERM, then returns
  /// once every session has ended. Should sessions still be open kShutdownDeadline after the
  /// signal, it leaves the process at once (std::_Exit(0)): their frames refer to this object.
  void run();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// This host's name as gethostname(2) gives it, or "unknown".
std::string host_name();

}  // namespace opsagent::server
