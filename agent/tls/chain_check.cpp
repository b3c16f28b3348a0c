#include "agent/tls/chain_check.hpp"

#include <memory>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "agent/common/c_ptr.hpp"
#include "agent/tls/peer_certificate.hpp"

namespace opsagent::tls {

std::optional<VerifyFailure> handshake_verify_failure(const SSL* ssl) {
  const long code = SSL_get_verify_result(ssl);
  if (code == X509_V_OK) return std::nullopt;
  return VerifyFailure{code, X509_verify_cert_error_string(code)};
}

std::optional<VerifyFailure> verify_peer_chain(SSL* ssl, SSL_CTX* ctx,
                                               std::vector<std::string>* ca_fingerprints) {
  // Server side, the peer chain comes without the leaf. A resumed session shares it with the
  // session of its full handshake (session_store.hpp); not knowing it there fails closed.
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
  if (chain == nullptr && SSL_session_reused(ssl) == 1) {
    return VerifyFailure{X509_V_ERR_UNSPECIFIED, "the resumed session carries no peer chain"};
  }
  return verify_chain(SSL_get0_peer_certificate(ssl), chain, ctx, ca_fingerprints);
}

std::optional<VerifyFailure> verify_chain(X509* leaf, STACK_OF(X509) * chain, SSL_CTX* ctx,
                                          std::vector<std::string>* ca_fingerprints) {
  const CPtr<X509_STORE_CTX, X509_STORE_CTX_free> check(X509_STORE_CTX_new());
  bool valid =
      leaf != nullptr && check != nullptr &&
      X509_STORE_CTX_init(check.get(), SSL_CTX_get_cert_store(ctx), leaf, chain) == 1 &&
      X509_VERIFY_PARAM_set1(X509_STORE_CTX_get0_param(check.get()), SSL_CTX_get0_param(ctx)) == 1;
  valid = valid && X509_verify_cert(check.get()) == 1;
  const long code = check ? X509_STORE_CTX_get_error(check.get()) : X509_V_ERR_UNSPECIFIED;
  if (valid && ca_fingerprints != nullptr) {
    STACK_OF(X509)* verified = X509_STORE_CTX_get0_chain(check.get());
    for (int i = 1; verified != nullptr && i < sk_X509_num(verified); ++i) {
      ca_fingerprints->push_back(fingerprint_sha256(sk_X509_value(verified, i)));
    }
  }
  ERR_clear_error();
  if (valid) return std::nullopt;
  return VerifyFailure{code, X509_verify_cert_error_string(code)};
}

}  // namespace opsagent::tls
