#include "agent/tls/tls_context.hpp"

#include <memory>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "agent/config/config_error.hpp"

namespace opsagent::tls {
namespace ssl = boost::asio::ssl;
namespace {

// ECDHE key exchange with AEAD ciphers only; applies when TLS 1.2 is enabled. TLS 1.3 suites
// are all AEAD and keep OpenSSL's defaults.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";

constexpr long kMaxCertList = 32L * 1024;  // a client chain larger than this is refused

[[noreturn]] void fail(const std::filesystem::path& file, const std::string& what) {
  std::string detail = drain_openssl_errors();
  throw config::ConfigError(file.string() + ": " + what + (detail.empty() ? "" : ": " + detail));
}

void apply_common(SSL_CTX* ctx, bool allow_tls12) {
  SSL_CTX_set_min_proto_version(ctx, allow_tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1) {
    throw config::ConfigError("TLS: cannot set cipher list: " + drain_openssl_errors());
  }
}

}  // namespace

std::string drain_openssl_errors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

ssl::context make_server_context(const config::TlsSettings& settings) {
  ERR_clear_error();
  ssl::context ctx(ssl::context::tls_server);
  SSL_CTX* raw = ctx.native_handle();
  apply_common(raw, settings.allow_tls12);
  SSL_CTX_set_options(raw, SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_max_cert_list(raw, kMaxCertList);

  if (SSL_CTX_use_certificate_chain_file(raw, settings.certificate.c_str()) != 1) {
    fail(settings.certificate, "cannot load the server certificate chain");
  }
  if (SSL_CTX_use_PrivateKey_file(raw, settings.private_key.c_str(), SSL_FILETYPE_PEM) != 1) {
    fail(settings.private_key, "cannot load the server private key");
  }
  if (SSL_CTX_check_private_key(raw) != 1) {
    fail(settings.private_key,
         "private key does not match the certificate " + settings.certificate.string());
  }

  // Trust exactly the configured CA bundle; the system store is never loaded.
  if (SSL_CTX_load_verify_locations(raw, settings.client_ca.c_str(), nullptr) != 1) {
    fail(settings.client_ca, "cannot load the client CA bundle");
  }
  if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(settings.client_ca.c_str())) {
    SSL_CTX_set_client_CA_list(raw, names);  // takes ownership
  } else {
    fail(settings.client_ca, "no CA certificate in the client CA bundle");
  }

  X509_VERIFY_PARAM* param = SSL_CTX_get0_param(raw);
  X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_CLIENT);
  X509_VERIFY_PARAM_set_depth(param, settings.verify_depth);

  if (!settings.crl.empty()) {
    X509_STORE* store = SSL_CTX_get_cert_store(raw);
    X509_LOOKUP* lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
    if (lookup == nullptr ||
        X509_load_crl_file(lookup, settings.crl.c_str(), X509_FILETYPE_PEM) < 1) {
      fail(settings.crl, "cannot load the CRL");
    }
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_CRL_CHECK);
  }

  // No verify callback: OpenSSL's verdict stands, and a failed verification fails the handshake.
  ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  return ctx;
}

ssl::context make_client_context(const ClientTlsFiles& files, bool allow_tls12) {
  ERR_clear_error();
  ssl::context ctx(ssl::context::tls_client);
  SSL_CTX* raw = ctx.native_handle();
  apply_common(raw, allow_tls12);
  if (SSL_CTX_use_certificate_chain_file(raw, files.certificate.c_str()) != 1) {
    throw std::runtime_error(files.certificate.string() +
                             ": cannot load the client certificate: " + drain_openssl_errors());
  }
  if (SSL_CTX_use_PrivateKey_file(raw, files.private_key.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(raw) != 1) {
    throw std::runtime_error(files.private_key.string() +
                             ": cannot load the client key: " + drain_openssl_errors());
  }
  if (SSL_CTX_load_verify_locations(raw, files.ca.c_str(), nullptr) != 1) {
    throw std::runtime_error(files.ca.string() +
                             ": cannot load the CA bundle: " + drain_openssl_errors());
  }
  X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(raw), X509_PURPOSE_SSL_SERVER);
  ctx.set_verify_mode(ssl::verify_peer);
  return ctx;
}

}  // namespace opsagent::tls
