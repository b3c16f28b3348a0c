#pragma once
// Whether a peer's certificate chain verifies: after a handshake (why it failed) and again later,
// against a reloaded CA bundle and CRL. The only place outside the handshake itself that runs
// X509 chain verification.

#include <optional>
#include <string>
#include <vector>

#include <openssl/ssl.h>

namespace opsagent::tls {

/// Why a chain did not verify: OpenSSL's X509_V_ERR_* code and its text.
struct VerifyFailure {
  long code = 0;
  std::string text;
};

/// The certificate verification failure of `ssl`'s handshake, or nullopt when verification
/// passed or did not take place.
std::optional<VerifyFailure> handshake_verify_failure(const SSL* ssl);

/// Verifies the peer chain of an established server-side connection again, with the store (CA
/// bundle, CRLs) and parameters (purpose, depth, CRL flags) of `ctx` and the current time: what a
/// new handshake would decide. nullopt when it verifies. A resumed connection is verified with the
/// intermediates of the full handshake it descends from (session_store.hpp): run on every resumed
/// handshake, this is what keeps a resumed session from outliving a revocation or a CA change.
/// `ca_fingerprints` as for verify_chain. Leaves nothing on the thread's OpenSSL error queue.
std::optional<VerifyFailure> verify_peer_chain(SSL* ssl, SSL_CTX* ctx,
                                               std::vector<std::string>* ca_fingerprints = nullptr);

/// Verifies `leaf` (with the untrusted intermediates `chain`, may be null) with the store and
/// parameters of `ctx` and the current time, as a handshake with that context would; for
/// certificates that arrive outside a connection (`opsagent explain --cert`). nullopt when it
/// verifies; then `ca_fingerprints`, when given, receives the SHA-256 fingerprints of the CAs of
/// the verified chain above the leaf, issuer first (as PeerIdentity::ca_fingerprints_sha256).
/// Leaves nothing on the thread's OpenSSL error queue.
std::optional<VerifyFailure> verify_chain(X509* leaf, STACK_OF(X509) * chain, SSL_CTX* ctx,
                                          std::vector<std::string>* ca_fingerprints = nullptr);

}  // namespace opsagent::tls
