#pragma once
// The `metrics:` section of agent.yaml -> MetricsSettings.

#include <vector>

#include "agent/config/agent_config.hpp"
#include "agent/config/yaml_reader.hpp"

namespace opsagent::config {

/// Reads `metrics: {listen: "127.0.0.1:9100", tls: false}`. Throws ConfigError for a bad or
/// non-loopback address without `tls: true`, or an address the agent's `listen` already uses.
MetricsSettings read_metrics(const YamlNode& node, const NodeContext& ctx,
                             const std::vector<ListenAddress>& agent_listen);

/// Whether `host` (as parse_listen_address gives it) is a loopback address.
bool is_loopback(const std::string& host);

}  // namespace opsagent::config
