#pragma once
// One command on many hosts, at most N at a time, on one thread (one io_context, no blocking
// network calls): each host's lines go to a Reporter as they arrive.

#include <cstddef>
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
};

/// Runs `command_line` (one protocol line, no LF) on every target and returns the results in
/// target order. Blocks the calling thread until every host is done; the reporter is called on
/// this thread. `tls` must be a client context (make_client_context).
std::vector<HostResult> run_fan_out(boost::asio::ssl::context& tls,
                                    const std::vector<Target>& targets,
                                    const std::string& command_line, const FanOutOptions& options,
                                    Reporter& reporter);

}  // namespace opsagent::client
