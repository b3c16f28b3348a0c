#pragma once
// What the TLS layer needs to build the agent's server context: files and choices only, so that
// tls/ depends on no configuration format (server/tls_setup.hpp maps agent.yaml's `tls` to it).

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "agent/tls/session_store.hpp"

namespace opsagent::tls {

struct ServerSettings {
  std::filesystem::path certificate;  ///< server certificate chain (PEM)
  std::filesystem::path private_key;  ///< server key (PEM)
  std::filesystem::path client_ca;    ///< CA bundle that client certificates must chain to
  std::filesystem::path crl;          ///< optional CRLs (PEM); empty = no CRL checking
  bool allow_tls12 = false;           ///< TLS 1.2 (ECDHE + AEAD only) besides TLS 1.3
  int verify_depth = 4;               ///< max intermediate CAs in a client chain
  std::vector<std::string> groups;    ///< key exchange groups in preference order (OpenSSL names)
  std::shared_ptr<SessionStore> sessions;  ///< TLS 1.3 resumption; null = off
};

/// The key exchange groups the agent and opsctl may use: ECDHE only, never finite-field groups
/// (DHEat, SECURITY.md "TLS parameters"). agent.yaml's `tls.groups` is checked against the same
/// names (config/agent_config.cpp; a unit test holds the two together).
inline constexpr const char* kEcdheGroups[] = {"X25519", "P-256", "P-384"};

/// A TLS file or parameter OpenSSL refused; the message names the file.
class SetupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace opsagent::tls
