#include "agent/server/tls_setup.hpp"

#include <chrono>
#include <memory>

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
  if (tls.session_tickets) {
    // One store for the life of the process: sessions survive a reload (a new context), and a
    // resumed session is verified again against the new trust (Session::handshake).
    static const auto kStore = std::make_shared<tls::SessionStore>();
    kStore->configure(static_cast<std::size_t>(tls.session_cache_size),
                      std::chrono::duration_cast<std::chrono::seconds>(tls.ticket_lifetime));
    settings.sessions = kStore;
  }
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
