#pragma once
// What a verified client certificate says about its holder. Produced once per connection by
// tls::identity_from_certificate, consumed by the policy; immutable for the session.

#include <optional>
#include <string>
#include <vector>

namespace opsagent {

/// Facts taken from the verified leaf certificate. Plain data, safe to copy across threads.
struct PeerIdentity {
  std::string subject;                     ///< RFC 2253 one-line subject, escaped
  std::optional<std::string> common_name;  ///< the single subject CN, if there is exactly one
  std::vector<std::string> san_dns;        ///< subjectAltName DNS entries
  std::vector<std::string> san_uri;        ///< subjectAltName URI entries (e.g. spiffe://...)
  std::string fingerprint_sha256;          ///< "AB:CD:..." upper-case hex of the DER certificate
  std::string serial;                      ///< hex serial number
  std::string issuer;                      ///< RFC 2253 issuer
  /// SHA-256 fingerprints ("AB:CD:...") of the CA certificates of the verified chain above the
  /// leaf, issuer first, root last; empty when the identity was not read from a verified handshake.
  std::vector<std::string> ca_fingerprints_sha256;
};

}  // namespace opsagent
