#include "agent/config/metrics_config.hpp"

#include <stdexcept>

namespace opsagent::config {

bool is_loopback(const std::string& host) { return host.rfind("127.", 0) == 0 || host == "::1"; }

MetricsSettings read_metrics(const YamlNode& node, const NodeContext& ctx,
                             const std::vector<ListenAddress>& agent_listen) {
  MapReader map(node, ctx);
  for (const auto* const key : {"listen", "tls"}) map.find(key);
  map.finish();
  MetricsSettings m;
  if (const YamlNode* v = map.find("tls")) m.tls = as_bool(*v, map.ctx("tls"));
  const YamlNode* listen = map.find("listen");
  if (listen == nullptr) return m;  // off
  const std::string text = as_string(*listen, map.ctx("listen"));
  try {
    m.listen = parse_listen_address(text);
  } catch (const std::invalid_argument& e) {
    fail(map.ctx("listen"), *listen, e.what());
  }
  // Metrics say how busy the agent is and which policy it runs: like node_exporter behind a
  // firewall, only local scrapers may read them in the clear.
  if (!m.tls && !is_loopback(m.listen->host)) {
    fail(map.ctx("listen"), *listen,
         m.listen->host +
             " is not a loopback address: serve metrics on 127.0.0.1 or [::1], or set "
             "metrics.tls: true (mutual TLS with the agent's certificate and client CA)");
  }
  for (const auto& agent : agent_listen) {
    if (agent == *m.listen && m.listen->port != 0) {
      fail(map.ctx("listen"), *listen, "the agent's own listen already uses " + text);
    }
  }
  return m;
}

}  // namespace opsagent::config
