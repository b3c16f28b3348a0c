#include "agent/tls/peer_certificate.hpp"

#include <memory>
#include <string>

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "agent/common/c_ptr.hpp"

namespace opsagent::tls {
namespace {

// OPENSSL_free is a macro; CPtr needs a function.
void openssl_free(void* p) noexcept { OPENSSL_free(p); }

Error denied(std::string message) { return Error{ErrorCode::denied, std::move(message)}; }

// The X509/ASN1 calls below report failure by their return value and may leave entries on this
// thread's OpenSSL error queue; the next SSL_* call on the thread may serve another client and
// would read them through SSL_get_error(). Clear the queue on the way in and on the way out.
class ErrorQueueScope {
 public:
  ErrorQueueScope() noexcept { ERR_clear_error(); }
  ~ErrorQueueScope() { ERR_clear_error(); }
  ErrorQueueScope(const ErrorQueueScope&) = delete;
  ErrorQueueScope& operator=(const ErrorQueueScope&) = delete;
};

std::string name_to_string(const X509_NAME* name) {
  CPtr<BIO, BIO_free> bio(BIO_new(BIO_s_mem()));
  if (!bio) return {};
  // RFC 2253 with escaping of special and control characters, UTF-8 kept as UTF-8.
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return len > 0 ? std::string(data, static_cast<std::size_t>(len)) : std::string();
}

// The string's bytes as UTF-8; nullopt when it holds a NUL (never silently truncated).
std::optional<std::string> asn1_to_utf8(const ASN1_STRING* s) {
  unsigned char* out = nullptr;
  const int len = ASN1_STRING_to_UTF8(&out, s);
  if (len < 0) return std::nullopt;
  CPtr<unsigned char, openssl_free> guard(out);
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): OpenSSL gives bytes
  std::string value(reinterpret_cast<const char*>(out), static_cast<std::size_t>(len));
  if (value.find('\0') != std::string::npos) return std::nullopt;
  return value;
}

Result<std::optional<std::string>> common_name(X509_NAME* subject) {
  std::optional<std::string> cn;
  int index = -1;
  while ((index = X509_NAME_get_index_by_NID(subject, NID_commonName, index)) >= 0) {
    if (cn) return denied("certificate subject has more than one CN (ambiguous identity)");
    const X509_NAME_ENTRY* entry = X509_NAME_get_entry(subject, index);
    auto value = asn1_to_utf8(X509_NAME_ENTRY_get_data(entry));
    if (!value) return denied("certificate CN contains a NUL byte or invalid text");
    cn = std::move(*value);
  }
  return cn;
}

Status read_sans(X509* cert, PeerIdentity& id) {
  CPtr<GENERAL_NAMES, GENERAL_NAMES_free> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return ok_status();
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != GEN_DNS && gn->type != GEN_URI) continue;
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-union-access): OpenSSL's tagged union
    const ASN1_IA5STRING* s = gn->type == GEN_DNS ? gn->d.dNSName : gn->d.uniformResourceIdentifier;
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): OpenSSL gives bytes
    std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                      static_cast<std::size_t>(ASN1_STRING_length(s)));
    if (value.find('\0') != std::string::npos) return denied("certificate SAN contains a NUL byte");
    (gn->type == GEN_DNS ? id.san_dns : id.san_uri).push_back(std::move(value));
  }
  return ok_status();
}

std::string serial_hex(X509* cert) {
  CPtr<BIGNUM, BN_free> bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (!bn) return {};
  CPtr<char, openssl_free> hex(BN_bn2hex(bn.get()));
  return hex ? std::string(hex.get()) : std::string();
}

}  // namespace

std::string fingerprint_sha256(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return {};
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    if (i != 0) out.push_back(':');
    out += fmt::format("{:02X}", md[i]);
  }
  return out;
}

Result<PeerIdentity> identity_from_certificate(X509* cert) {
  const ErrorQueueScope clean_queue;
  if (cert == nullptr) return denied("no client certificate");
  // OpenSSL's purpose check accepts a leaf without any EKU; an agent that runs commands does not.
  const uint32_t flags = X509_get_extension_flags(cert);
  if ((flags & EXFLAG_XKUSAGE) == 0 || (X509_get_extended_key_usage(cert) & XKU_SSL_CLIENT) == 0) {
    return denied("client certificate lacks extendedKeyUsage clientAuth");
  }
  PeerIdentity id;
  id.subject = name_to_string(X509_get_subject_name(cert));
  id.issuer = name_to_string(X509_get_issuer_name(cert));
  auto cn = common_name(X509_get_subject_name(cert));
  if (!cn) return cn.error();
  id.common_name = std::move(cn.value());
  if (auto st = read_sans(cert, id); !st) return st.error();
  id.fingerprint_sha256 = fingerprint_sha256(cert);
  id.serial = serial_hex(cert);
  if (id.fingerprint_sha256.empty()) {
    return Error{ErrorCode::internal, "cannot fingerprint the certificate"};
  }
  return id;
}

Result<PeerIdentity> identity_from_connection(SSL* ssl,
                                              const std::vector<std::string>* resumed_cas) {
  if (SSL_get_verify_result(ssl) != X509_V_OK) return denied("client certificate not verified");
  const bool resumed = SSL_session_reused(ssl) == 1;
  if (resumed && resumed_cas == nullptr) return denied("resumed session not verified again");
  auto id = identity_from_certificate(SSL_get0_peer_certificate(ssl));
  if (!id) return id;
  if (resumed) {  // no chain was built in this handshake: the one verify_peer_chain built
    id.value().ca_fingerprints_sha256 = *resumed_cas;
    return id;
  }
  // The chain OpenSSL built and verified (leaf first), not the one the client sent.
  const ErrorQueueScope clean_queue;
  STACK_OF(X509)* chain = SSL_get0_verified_chain(ssl);
  for (int i = 1; chain != nullptr && i < sk_X509_num(chain); ++i) {
    std::string fingerprint = fingerprint_sha256(sk_X509_value(chain, i));
    if (fingerprint.empty()) {
      return Error{ErrorCode::internal, "cannot fingerprint a CA of the chain"};
    }
    id.value().ca_fingerprints_sha256.push_back(std::move(fingerprint));
  }
  return id;
}

}  // namespace opsagent::tls
