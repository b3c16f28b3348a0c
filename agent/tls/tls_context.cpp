#include "agent/tls/tls_context.hpp"

#include <iterator>
#include <memory>
#include <vector>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

namespace opsagent::tls {
namespace ssl = boost::asio::ssl;
namespace {

// Every choice below is explained in SECURITY.md ("TLS parameters").

// ECDHE key exchange with AEAD ciphers only; applies when TLS 1.2 is enabled.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";

// TLS 1.3 suites, all AEAD: AES-256-GCM first, ChaCha20-Poly1305 for hosts without AES
// instructions, AES-128-GCM (mandatory to implement, RFC 8446 9.1). No CCM suites.
constexpr const char* kTls13Ciphersuites =
    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";

// Signature algorithms, for handshake signatures and (without a signature_algorithms_cert
// extension, RFC 8446 4.2.3) for certificate chains. No SHA-1, no DSA. RSA PKCS#1 v1.5 is listed
// only because most RSA certificates are signed with it: TLS 1.3 never uses it for a handshake
// signature (OpenSSL skips it there), so it can only sign a certificate or, when TLS 1.2 is
// enabled, a TLS 1.2 handshake.
constexpr const char* kSignatureAlgorithms =
    "ed25519:ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384:"
    "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512:"
    "rsa_pss_pss_sha256:rsa_pss_pss_sha384:rsa_pss_pss_sha512:"
    "rsa_pkcs1_sha256:rsa_pkcs1_sha384:rsa_pkcs1_sha512";

constexpr long kMaxCertList = 32L * 1024;  // a client chain larger than this is refused

[[noreturn]] void fail(const std::filesystem::path& file, const std::string& what) {
  std::string detail = drain_openssl_errors();
  throw SetupError(file.string() + ": " + what + (detail.empty() ? "" : ": " + detail));
}

std::string join_groups(const std::vector<std::string>& groups) {
  std::string out;
  for (const auto& g : groups) {
    if (!out.empty()) out += ':';
    out += g;
  }
  return out;
}

// Protocol versions, options, suites, signature algorithms and key exchange groups, the same
// for both ends. Throws SetupError naming what OpenSSL refused.
void apply_common(SSL_CTX* ctx, bool allow_tls12, const std::string& groups) {
  SSL_CTX_set_min_proto_version(ctx, allow_tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
  // Tickets: the server decides (session_store.hpp); opsctl uses them only with a
  // SessionCache attached.
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1) {
    throw SetupError("TLS: cannot set cipher list: " + drain_openssl_errors());
  }
  if (SSL_CTX_set_ciphersuites(ctx, kTls13Ciphersuites) != 1) {
    throw SetupError("TLS: cannot set TLS 1.3 cipher suites: " + drain_openssl_errors());
  }
  // SSL_CTX_set1_sigalgs_list and SSL_CTX_set1_groups_list are macros with C casts; call what
  // they expand to.
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-const-cast): SSL_CTX_ctrl takes void*, reads only
  if (SSL_CTX_ctrl(ctx, SSL_CTRL_SET_SIGALGS_LIST, 0, const_cast<char*>(kSignatureAlgorithms)) !=
      1) {
    throw SetupError("TLS: cannot set signature algorithms: " + drain_openssl_errors());
  }
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-const-cast): SSL_CTX_ctrl takes void*, reads only
  if (SSL_CTX_ctrl(ctx, SSL_CTRL_SET_GROUPS_LIST, 0, const_cast<char*>(groups.c_str())) != 1) {
    throw SetupError("TLS: cannot set key exchange groups " + groups + ": " +
                     drain_openssl_errors());
  }
}

// OpenSSL 3.0 fills a certificate's extension cache (key identifiers, purposes) the first time a
// verification looks at it, and two threads verifying against a freshly loaded CA at once race on
// that fill (ThreadSanitizer: a session re-check after SIGHUP beside another one, F4). Filling it
// here, before the context is shared with the I/O threads, leaves them only reading.
void fill_extension_caches(X509_STORE* store) {
  STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(store);
  for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
    if (X509* cert = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i))) {
      X509_check_purpose(cert, -1, 0);  // -1: only fill the cache
    }
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

ssl::context make_server_context(const ServerSettings& settings) {
  ERR_clear_error();
  ssl::context ctx(ssl::context::tls_server);
  SSL_CTX* raw = ctx.native_handle();
  apply_common(raw, settings.allow_tls12, join_groups(settings.groups));
  SSL_CTX_set_options(raw, SSL_OP_CIPHER_SERVER_PREFERENCE);
  // TLS 1.3 tickets naming sessions kept in the agent's memory, or none (session_store.hpp).
  configure_resumption(raw, settings.sessions);
  SSL_CTX_set_max_cert_list(raw, kMaxCertList);
  // An idle session holds no OpenSSL record buffers (about 34 KiB each otherwise): they are
  // freed whenever empty and allocated again by the next record (issue 13, idle RSS).
  SSL_CTX_set_mode(raw, SSL_MODE_RELEASE_BUFFERS);

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
    // Loads every CRL of the file (one per CA of the chain: root, intermediates).
    if (lookup == nullptr ||
        X509_load_crl_file(lookup, settings.crl.c_str(), X509_FILETYPE_PEM) < 1) {
      fail(settings.crl, "cannot load the CRL");
    }
    // Every certificate of the chain is checked, not only the leaf, so revoking an intermediate
    // CA revokes everything under it. A CA of the chain without a CRL in the file fails the
    // handshake ("unable to get certificate CRL"): fail closed, as for the leaf's issuer.
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  }

  fill_extension_caches(SSL_CTX_get_cert_store(raw));

  // No verify callback: OpenSSL's verdict stands, and a failed verification fails the handshake.
  ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  return ctx;
}

ssl::context make_client_context(const ClientTlsFiles& files, bool allow_tls12) {
  ERR_clear_error();
  ssl::context ctx(ssl::context::tls_client);
  SSL_CTX* raw = ctx.native_handle();
  std::vector<std::string> groups(std::begin(kEcdheGroups), std::end(kEcdheGroups));
  // Every group an agent may be configured with, so any agent's `tls.groups` works.
  apply_common(raw, allow_tls12, join_groups(groups));
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
