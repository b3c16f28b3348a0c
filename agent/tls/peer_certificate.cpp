#include "agent/tls/peer_certificate.hpp"

#include <memory>
#include <string>

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

namespace opsagent::tls {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct NamesFree {
  void operator()(GENERAL_NAMES* n) const { GENERAL_NAMES_free(n); }
};
struct OpensslFree {
  void operator()(unsigned char* p) const { OPENSSL_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
struct CharFree {
  void operator()(char* p) const { OPENSSL_free(p); }
};

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
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
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
  std::unique_ptr<unsigned char, OpensslFree> guard(out);
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
  std::unique_ptr<GENERAL_NAMES, NamesFree> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return ok_status();
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != GEN_DNS && gn->type != GEN_URI) continue;
    const ASN1_IA5STRING* s = gn->type == GEN_DNS ? gn->d.dNSName : gn->d.uniformResourceIdentifier;
    std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                      static_cast<std::size_t>(ASN1_STRING_length(s)));
    if (value.find('\0') != std::string::npos) return denied("certificate SAN contains a NUL byte");
    (gn->type == GEN_DNS ? id.san_dns : id.san_uri).push_back(std::move(value));
  }
  return ok_status();
}

std::string serial_hex(X509* cert) {
  std::unique_ptr<BIGNUM, BnFree> bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (!bn) return {};
  std::unique_ptr<char, CharFree> hex(BN_bn2hex(bn.get()));
  return hex ? std::string(hex.get()) : std::string();
}

}  // namespace

std::string fingerprint_sha256(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return {};
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    if (i) out.push_back(':');
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
  if (id.fingerprint_sha256.empty())
    return Error{ErrorCode::internal, "cannot fingerprint the certificate"};
  return id;
}

Result<PeerIdentity> identity_from_connection(SSL* ssl) {
  if (SSL_get_verify_result(ssl) != X509_V_OK) return denied("client certificate not verified");
  return identity_from_certificate(SSL_get0_peer_certificate(ssl));
}

}  // namespace opsagent::tls
