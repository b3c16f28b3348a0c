#pragma once
// SSL* / X509* -> PeerIdentity: the only place that reads identity fields out of a certificate.

#include <string>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "agent/common/error.hpp"
#include "agent/identity/peer_identity.hpp"

namespace opsagent::tls {

/// Extracts the identity of a verified client leaf. Refuses (ErrorCode::denied) certificates
/// without an extendedKeyUsage that names clientAuth, with several subject CNs (ambiguous), or
/// with NUL bytes in a CN or SAN (a classic truncation trick).
Result<PeerIdentity> identity_from_certificate(X509* cert);

/// The identity of the peer of a completed handshake; denied when there is no certificate or
/// OpenSSL did not verify it (defence in depth: verify_fail_if_no_peer_cert already ensures it).
Result<PeerIdentity> identity_from_connection(SSL* ssl);

/// SHA-256 of the DER certificate, "AB:CD:..." (upper-case hex); empty if it cannot be computed.
std::string fingerprint_sha256(X509* cert);

}  // namespace opsagent::tls
