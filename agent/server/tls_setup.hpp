#pragma once
// agent.yaml's `tls` section -> the agent's server TLS context. The one place that joins the
// configuration (config/) to the TLS layer (tls/), so that tls/ depends on no configuration format.

#include <boost/asio/ssl/context.hpp>

#include "agent/config/agent_config.hpp"
#include "agent/tls/tls_settings.hpp"

namespace opsagent::server {

/// The TLS layer's view of `tls`.
tls::ServerSettings server_tls_settings(const config::TlsSettings& tls);

/// tls::make_server_context for `tls`; what OpenSSL refuses is thrown as config::ConfigError
/// (naming the file), like every other start-up and reload error of the configuration.
boost::asio::ssl::context make_agent_tls_context(const config::TlsSettings& tls);

}  // namespace opsagent::server
