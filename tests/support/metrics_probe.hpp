#pragma once
// Reading the real agent's Prometheus endpoint from a test: where it listens, one plain HTTP
// exchange with it, and the value of one sample.

#include <chrono>
#include <cstdint>
#include <string>

#include "tests/support/agent_process.hpp"

namespace opsagent::testing {

/// The port of "metrics endpoint on http(s)://127.0.0.1:PORT/metrics" in the agent's log, or 0
/// when the line does not appear within `wait` (or the agent is not running).
std::uint16_t metrics_port(const AgentProcess& agent,
                           std::chrono::milliseconds wait = std::chrono::seconds(10));

/// Sends `request` over plain TCP to 127.0.0.1:`port` and returns all the agent sends back
/// until it closes (bounded in time and to 4 MiB).
std::string http_exchange(std::uint16_t port, const std::string& request);

/// GET /metrics on 127.0.0.1:`port`: the whole HTTP response.
std::string scrape(std::uint16_t port);

/// The value of the sample `series` (name and labels exactly as exposed), or -1 when absent.
double sample(const std::string& body, const std::string& series);

}  // namespace opsagent::testing
