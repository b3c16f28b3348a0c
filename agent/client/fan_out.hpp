#pragma once
// One command on many hosts, at most N at a time, on one thread (one io_context, no blocking
// network calls): each host's lines go to a Reporter as they arrive. SIGINT and SIGTERM stop
// the fan-out cleanly (docs/opsctl.md "Interrupting").

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "agent/client/host_result.hpp"
#include "agent/client/output.hpp"
#include "agent/client/target.hpp"

namespace opsagent::client {

struct FanOutOptions {
  Timeouts timeouts;
  std::size_t concurrency = 64;  ///< hosts in flight at once (at least 1)
  /// Catch SIGINT and SIGTERM while the fan-out runs (opsctl does; tests of the library don't).
  bool handle_signals = false;
  /// Called on the fan-out's thread for each signal caught: `count` is 1 for the first (the
  /// fan-out then stops), 2 for the next one (opsctl exits at once from here).
  std::function<void(int signal, int count)> on_signal;
};

/// What a fan-out produced.
struct FanOutOutcome {
  std::vector<HostResult> results;  ///< one per target, in target order
  int signal = 0;                   ///< the signal that interrupted it, 0 if none
};

/// Runs `command_line` (one protocol line, no LF) on every target. Blocks the calling thread
/// until every host is done or, after a signal, until the running connections are closed;
/// hosts then end as `cancelled` (they were running) or `not_started`. The reporter is called
/// on this thread, once per host for results (also for cancelled and not started hosts).
/// `tls` must be a client context (make_client_context).
FanOutOutcome run_fan_out(boost::asio::ssl::context& tls, const std::vector<Target>& targets,
                          const std::string& command_line, const FanOutOptions& options,
                          Reporter& reporter);

}  // namespace opsagent::client
