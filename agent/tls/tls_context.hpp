#pragma once
// Config -> immutable OpenSSL contexts, built once by a validating factory.

#include <filesystem>
#include <string>

#include <boost/asio/ssl/context.hpp>

#include "agent/tls/tls_settings.hpp"

namespace opsagent::tls {

/// Builds the server context: TLS 1.3 only unless `allow_tls12` (then ECDHE+AEAD suites only),
/// explicit TLS 1.3 suites, signature algorithms and ECDHE groups (`settings.groups`), no
/// compression or renegotiation, no session cache; TLS 1.3 session tickets only when
/// `settings.tickets` has a key ring (resumed sessions must then be verified again: Session),
/// client certificate required and verified against `client_ca` only (never the system store),
/// clientAuth purpose, optional CRL checking of every certificate of the chain, bounded chain
/// depth and certificate-list size. Throws SetupError naming the file when a certificate, key,
/// CA or CRL cannot be used.
boost::asio::ssl::context make_server_context(const ServerSettings& settings);

/// Files a client presents (opsctl, tests).
struct ClientTlsFiles {
  std::filesystem::path certificate;
  std::filesystem::path private_key;
  std::filesystem::path ca;  ///< CA bundle that the agent's certificate must chain to
};

/// Builds a client context: TLS 1.3 (1.2 allowed when `allow_tls12`), the same suites and
/// signature algorithms as the server, every group of kEcdheGroups (ECDHE only),
/// server verified against `files.ca` only. The caller sets the expected host name per connection
/// (SNI + verification). Throws std::runtime_error naming the file that could not be used.
boost::asio::ssl::context make_client_context(const ClientTlsFiles& files,
                                              bool allow_tls12 = false);

/// The OpenSSL error queue as text ("" when empty); clears the queue.
std::string drain_openssl_errors();

}  // namespace opsagent::tls
