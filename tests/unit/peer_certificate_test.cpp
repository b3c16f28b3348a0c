// identity_from_certificate / identity_from_connection: X509 -> PeerIdentity, failing closed.
// Certificates are built in memory for each test (never committed).

#include "agent/tls/peer_certificate.hpp"

#include <cstdio>
#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace opsagent::tls {
namespace {

using namespace std::string_literals;
using Strings = std::vector<std::string>;

struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct ExtFree {
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
struct NamesFree {
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
};
struct BytesFree {
  void operator()(unsigned char* p) const { OPENSSL_free(p); }
};
struct SslCtxFree {
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
};
struct SslFree {
  void operator()(SSL* p) const { SSL_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

// Builds a self-signed P-256 certificate step by step. Every OpenSSL handle is owned on creation.
class CertBuilder {
 public:
  CertBuilder() : key_(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")), cert_(X509_new()) {
    if (!key_ || !cert_) throw std::runtime_error("cannot create key or certificate");
    X509_set_version(cert_.get(), X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(cert_.get()), 0x1234);
    X509_gmtime_adj(X509_getm_notBefore(cert_.get()), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert_.get()), 3600);
    X509_set_pubkey(cert_.get(), key_.get());
  }

  /// Adds a subject RDN from UTF-8 text ("CN", "O", ...).
  CertBuilder& subject(const char* field, std::string_view value) {
    X509_NAME* name = X509_get_subject_name(cert_.get());
    check(X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(value.data()),
                                     static_cast<int>(value.size()), -1, 0),
          "add subject entry");
    return *this;
  }

  /// Adds a subject CN as a UTF8String holding exactly these bytes (NULs included).
  CertBuilder& raw_common_name(std::string_view bytes) {
    X509_NAME* name = X509_get_subject_name(cert_.get());
    check(X509_NAME_add_entry_by_NID(name, NID_commonName, V_ASN1_UTF8STRING,
                                     reinterpret_cast<const unsigned char*>(bytes.data()),
                                     static_cast<int>(bytes.size()), -1, 0),
          "add raw CN");
    return *this;
  }

  /// Adds an extension from its openssl.cnf spelling, e.g. (NID_ext_key_usage, "clientAuth").
  CertBuilder& extension(int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert_.get(), cert_.get(), nullptr, nullptr, 0);
    std::unique_ptr<X509_EXTENSION, ExtFree> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
    check(ext != nullptr ? 1 : 0, "build extension");
    check(X509_add_ext(cert_.get(), ext.get(), -1), "add extension");
    return *this;
  }

  CertBuilder& client_auth() { return extension(NID_ext_key_usage, "clientAuth"); }

  /// Adds a subjectAltName with one DNS or URI entry holding exactly these bytes (NULs included).
  CertBuilder& raw_san(int type, std::string_view bytes) {
    std::unique_ptr<GENERAL_NAMES, NamesFree> names(GENERAL_NAMES_new());
    GENERAL_NAME* gn = GENERAL_NAME_new();
    ASN1_IA5STRING* s = ASN1_IA5STRING_new();
    check(names && gn && s ? 1 : 0, "allocate SAN");
    check(ASN1_STRING_set(s, bytes.data(), static_cast<int>(bytes.size())), "set SAN bytes");
    GENERAL_NAME_set0_value(gn, type, s);
    check(sk_GENERAL_NAME_push(names.get(), gn) > 0 ? 1 : 0, "push SAN");
    check(X509_add1_ext_i2d(cert_.get(), NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT),
          "add SAN");
    return *this;
  }

  /// Self-signs, then returns the certificate as a peer would send it (DER round trip).
  X509Ptr build() {
    check(X509_set_issuer_name(cert_.get(), X509_get_subject_name(cert_.get())), "set issuer");
    check(X509_sign(cert_.get(), key_.get(), EVP_sha256()) > 0 ? 1 : 0, "sign");
    unsigned char* der = nullptr;
    const int len = i2d_X509(cert_.get(), &der);
    check(len > 0 ? 1 : 0, "encode");
    std::unique_ptr<unsigned char, BytesFree> owned(der);
    const unsigned char* p = der;
    X509Ptr parsed(d2i_X509(nullptr, &p, len));
    check(parsed != nullptr ? 1 : 0, "decode");
    return parsed;
  }

 private:
  static void check(int rc, const char* what) {
    if (rc <= 0) throw std::runtime_error(std::string("OpenSSL failed to ") + what);
  }

  std::unique_ptr<EVP_PKEY, PkeyFree> key_;
  X509Ptr cert_;
};

std::string expected_fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return {};
  std::string out;
  char hex[3];
  for (unsigned int i = 0; i < len; ++i) {
    if (i != 0) out.push_back(':');
    std::snprintf(hex, sizeof hex, "%02X", md[i]);
    out += hex;
  }
  return out;
}

// Expects a denial and returns its message.
std::string expect_denied(X509* cert) {
  const auto id = identity_from_certificate(cert);
  EXPECT_FALSE(id.ok()) << "accepted: " << (id.ok() ? id->subject : "");
  if (id.ok()) return {};
  EXPECT_EQ(id.error().code, ErrorCode::denied);
  return id.error().message;
}

TEST(PeerCertificate, ExtractsTheIdentityOfAClientAuthCertificate) {
  const auto cert = CertBuilder()
                        .subject("O", "Example Ops")
                        .subject("CN", "alice")
                        .client_auth()
                        .extension(NID_subject_alt_name,
                                   "DNS:alice.example.com, URI:spiffe://example.org/ops/alice, "
                                   "DNS:ops.example.com, email:alice@example.com, IP:127.0.0.1")
                        .build();
  const auto id = identity_from_certificate(cert.get());
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(id->common_name, std::optional<std::string>("alice"));
  EXPECT_EQ(id->san_dns, (Strings{"alice.example.com", "ops.example.com"}));
  EXPECT_EQ(id->san_uri, (Strings{"spiffe://example.org/ops/alice"}));
  EXPECT_EQ(id->subject, "CN=alice,O=Example Ops");  // RFC 2253: most significant RDN last
  EXPECT_EQ(id->issuer, "CN=alice,O=Example Ops");
  EXPECT_EQ(id->serial, "1234");
}

TEST(PeerCertificate, FingerprintsTheDerCertificateAsUpperCaseSha256) {
  const auto cert = CertBuilder().subject("CN", "alice").client_auth().build();
  const auto id = identity_from_certificate(cert.get());
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_TRUE(std::regex_match(id->fingerprint_sha256, std::regex("([0-9A-F]{2}:){31}[0-9A-F]{2}")))
      << id->fingerprint_sha256;
  EXPECT_EQ(id->fingerprint_sha256, expected_fingerprint(cert.get()));

  const auto other = CertBuilder().subject("CN", "alice").client_auth().build();
  EXPECT_NE(identity_from_certificate(other.get())->fingerprint_sha256, id->fingerprint_sha256)
      << "a different key must give a different fingerprint";
}

TEST(PeerCertificate, AcceptsClientAuthAmongOtherKeyUsages) {
  const auto cert = CertBuilder()
                        .subject("CN", "alice")
                        .extension(NID_ext_key_usage, "serverAuth, clientAuth")
                        .build();
  EXPECT_TRUE(identity_from_certificate(cert.get()).ok());
}

TEST(PeerCertificate, AcceptsACertificateWithoutCommonName) {
  const auto cert = CertBuilder()
                        .subject("O", "Example Ops")
                        .client_auth()
                        .extension(NID_subject_alt_name, "URI:spiffe://example.org/ops/bot")
                        .build();
  const auto id = identity_from_certificate(cert.get());
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_FALSE(id->common_name.has_value());
  EXPECT_EQ(id->san_uri, (Strings{"spiffe://example.org/ops/bot"}));
  EXPECT_TRUE(id->san_dns.empty());
}

TEST(PeerCertificate, DeniesACertificateWithoutExtendedKeyUsage) {
  const auto cert = CertBuilder().subject("CN", "alice").build();
  const auto message = expect_denied(cert.get());
  EXPECT_NE(message.find("clientAuth"), std::string::npos) << message;
}

TEST(PeerCertificate, DeniesAServerAuthOnlyCertificate) {
  const auto cert =
      CertBuilder().subject("CN", "alice").extension(NID_ext_key_usage, "serverAuth").build();
  expect_denied(cert.get());
}

TEST(PeerCertificate, DeniesAnAnyExtendedKeyUsageOnlyCertificate) {
  const auto cert = CertBuilder()
                        .subject("CN", "alice")
                        .extension(NID_ext_key_usage, "anyExtendedKeyUsage")
                        .build();
  expect_denied(cert.get());
}

TEST(PeerCertificate, DeniesTwoCommonNamesAsAmbiguous) {
  const auto cert =
      CertBuilder().subject("CN", "alice").subject("CN", "admin").client_auth().build();
  const auto message = expect_denied(cert.get());
  EXPECT_NE(message.find("more than one CN"), std::string::npos) << message;
}

TEST(PeerCertificate, DeniesACommonNameWithAnEmbeddedNul) {
  const auto cert = CertBuilder().raw_common_name("admin\0.evil.example"s).client_auth().build();
  const auto message = expect_denied(cert.get());
  EXPECT_NE(message.find("NUL"), std::string::npos) << message;
}

TEST(PeerCertificate, DeniesASanUriWithAnEmbeddedNul) {
  const auto cert = CertBuilder()
                        .subject("CN", "alice")
                        .client_auth()
                        .raw_san(GEN_URI, "spiffe://example.org/admin\0.evil"s)
                        .build();
  const auto message = expect_denied(cert.get());
  EXPECT_NE(message.find("NUL"), std::string::npos) << message;
}

TEST(PeerCertificate, DeniesASanDnsNameWithAnEmbeddedNul) {
  const auto cert = CertBuilder()
                        .subject("CN", "alice")
                        .client_auth()
                        .raw_san(GEN_DNS, "admin.example.com\0.evil.net"s)
                        .build();
  expect_denied(cert.get());
}

TEST(PeerCertificate, EscapesSpecialCharactersOfTheCommonNameInTheSubject) {
  const std::string cn = "alice,O=admins\nCN=root+x";
  const auto cert = CertBuilder().subject("O", "Example").subject("CN", cn).client_auth().build();
  const auto id = identity_from_certificate(cert.get());
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(id->common_name, std::optional<std::string>(cn));  // the CN itself is kept exactly
  EXPECT_EQ(id->subject.find('\n'), std::string::npos) << id->subject;
  // RFC 2253 escapes "," and "+" but not "=" inside a value; the newline becomes \0A.
  EXPECT_EQ(id->subject, R"(CN=alice\,O=admins\0ACN=root\+x,O=Example)");
}

TEST(PeerCertificate, KeepsUtf8InTheSubject) {
  const auto cert = CertBuilder().subject("CN", "J\xC3\xBCrgen").client_auth().build();
  const auto id = identity_from_certificate(cert.get());
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(id->common_name, std::optional<std::string>("J\xC3\xBCrgen"));
  EXPECT_EQ(id->subject, "CN=J\xC3\xBCrgen");
}

TEST(PeerCertificate, DeniesANullCertificate) { expect_denied(nullptr); }

TEST(PeerCertificate, DeniesAConnectionWithoutAPeerCertificate) {
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_server_method()));
  ASSERT_NE(ctx, nullptr);
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  ASSERT_NE(ssl, nullptr);
  // A fresh SSL reports X509_V_OK; the missing certificate must still be refused.
  ASSERT_EQ(SSL_get_verify_result(ssl.get()), X509_V_OK);
  const auto id = identity_from_connection(ssl.get());
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error().code, ErrorCode::denied);
}

TEST(PeerCertificate, DeniesAConnectionWhoseVerificationFailed) {
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_server_method()));
  ASSERT_NE(ctx, nullptr);
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  ASSERT_NE(ssl, nullptr);
  SSL_set_verify_result(ssl.get(), X509_V_ERR_CERT_HAS_EXPIRED);
  const auto id = identity_from_connection(ssl.get());
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.error().code, ErrorCode::denied);
  EXPECT_NE(id.error().message.find("not verified"), std::string::npos) << id.error().message;
}

}  // namespace
}  // namespace opsagent::tls
