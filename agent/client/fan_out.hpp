#pragma once
// One command on many hosts, at most N at a time, on one thread (one io_context, no blocking
// network calls): each host's lines go to a Reporter as they arrive. SIGINT and SIGTERM stop
// the fan-out cleanly (docs/opsctl.md "Interrupting").

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "agent/client/host_result.hpp"
#include "agent/client/output.hpp"
#include "agent/client/target.hpp"

namespace opsagent::client {

/// Connections open at once, whatever --concurrency asks: each costs about 100 KiB (Asio's
/// SSL stream and BIO buffers, OpenSSL's state), and opsctl stays within 64 MiB
/// (scripts/bench-fleet.sh measures it).
inline constexpr std::size_t kMaxConnections = 320;

struct FanOutOptions {
  Timeouts timeouts;
  std::size_t concurrency = 256;  ///< hosts in flight at once (at least 1, at most kMaxConnections)
  /// Connection attempts after the first when connecting fails (host unreachable), with a
  /// growing pause (250 ms, 500 ms, ... 4 s). A command that was sent is never sent again.
  int retries = 0;
  /// Hosts per batch (--serial): a batch starts when the previous one is done. 0: one batch.
  std::size_t serial = 0;
  /// No new host starts once more than this many hosts failed (--max-fail). Unset: no limit.
  std::optional<std::size_t> max_fail;
  /// Catch SIGINT and SIGTERM while the fan-out runs (opsctl does; tests of the library don't).
  bool handle_signals = false;
  /// Called on the fan-out's thread for each signal caught: `count` is 1 for the first (the
  /// fan-out then stops), 2 for the next one (opsctl exits at once from here).
  std::function<void(int signal, int count)> on_signal;
};

/// What a fan-out produced.
struct FanOutOutcome {
  std::vector<HostResult> results;   ///< one per target, in target order
  int signal = 0;                    ///< the signal that interrupted it, 0 if none
  std::size_t batches = 0;           ///< batches started (--serial)
  bool stopped_by_max_fail = false;  ///< --max-fail left hosts not started
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
