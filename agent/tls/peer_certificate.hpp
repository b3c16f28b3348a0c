#pragma once
// SSL* / X509* -> PeerIdentity: the only place that reads identity fields out of a certificate.

#include <string>
#include <vector>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "agent/common/error.hpp"
#include "agent/identity/peer_identity.hpp"

namespace opsagent::tls {

/// SHA-256 of the DER certificate as "AB:CD:..." (upper-case hex, colons); "" on failure.
std::string fingerprint_sha256(X509* cert);

/// Extracts the identity of a verified client leaf. Refuses (ErrorCode::denied) certificates
/// without an extendedKeyUsage that names clientAuth, with several subject CNs (ambiguous), or
/// with NUL bytes in a CN or SAN (a classic truncation trick).
Result<PeerIdentity> identity_from_certificate(X509* cert);

/// The identity of the peer of a completed handshake, with the fingerprints of the CAs of the
/// verified chain; denied when there is no certificate or OpenSSL did not verify it (defence in
/// depth: verify_fail_if_no_peer_cert already ensures it). A resumed connection builds no chain:
/// `resumed_cas` are the CA fingerprints from verifying it again (verify_peer_chain); without
/// them a resumed connection is denied.
Result<PeerIdentity> identity_from_connection(
    SSL* ssl, const std::vector<std::string>* resumed_cas = nullptr);

}  // namespace opsagent::tls
