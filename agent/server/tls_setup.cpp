#include "agent/server/tls_setup.hpp"

#include "agent/config/config_error.hpp"
#include "agent/tls/tls_context.hpp"

namespace opsagent::server {

tls::ServerSettings server_tls_settings(const config::TlsSettings& tls) {
  tls::ServerSettings settings;
  settings.certificate = tls.certificate;
  settings.private_key = tls.private_key;
  settings.client_ca = tls.client_ca;
  settings.crl = tls.crl;
  settings.allow_tls12 = tls.allow_tls12;
  settings.verify_depth = tls.verify_depth;
  settings.groups = tls.groups;
  return settings;
}

boost::asio::ssl::context make_agent_tls_context(const config::TlsSettings& tls) {
  try {
    return tls::make_server_context(server_tls_settings(tls));
  } catch (const tls::SetupError& e) {
    throw config::ConfigError(e.what());
  }
}

}  // namespace opsagent::server
