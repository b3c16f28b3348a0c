#include "tests/support/cert_factory.hpp"

#include <algorithm>
#include <ctime>
#include <stdexcept>
#include <system_error>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

namespace opsagent::testing {
namespace fs = std::filesystem;
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct NameFree {
  void operator()(X509_NAME* n) const { X509_NAME_free(n); }
};
struct ExtFree {
  void operator()(X509_EXTENSION* e) const { X509_EXTENSION_free(e); }
};
struct CrlFree {
  void operator()(X509_CRL* c) const { X509_CRL_free(c); }
};
struct RevokedFree {
  void operator()(X509_REVOKED* r) const { X509_REVOKED_free(r); }
};
struct TimeFree {
  void operator()(ASN1_TIME* t) const { ASN1_TIME_free(t); }
};
struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
struct CharFree {
  void operator()(char* p) const { OPENSSL_free(p); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

[[noreturn]] void fail(const std::string& what) {
  std::string detail;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    detail += std::string("; ") + buf;
  }
  throw std::runtime_error("CertFactory: " + what + detail);
}

void check(bool ok, const std::string& what) {
  if (!ok) fail(what);
}

BioPtr open_for_writing(const fs::path& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "w"));
  check(bio != nullptr, "cannot write " + path.string());
  return bio;
}

// Adds one extension written in OpenSSL config syntax; `issuer` may be `cert` (self-signed).
void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, ExtFree> ext(
      X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  check(ext != nullptr, "bad extension value '" + value.substr(0, 80) + "'");
  check(X509_add_ext(cert, ext.get(), -1) == 1, "cannot add extension");
}

std::unique_ptr<ASN1_TIME, TimeFree> time_from_now(long seconds) {
  std::unique_ptr<ASN1_TIME, TimeFree> t(ASN1_TIME_adj(nullptr, std::time(nullptr), 0, seconds));
  check(t != nullptr, "cannot make a time");
  return t;
}

}  // namespace

CertSpec ca_spec(const std::string& cn, std::optional<int> pathlen) {
  CertSpec s;
  s.subject = {{"O", "opsagent tests"}, {"CN", cn}};
  s.not_after = 365 * kOneDay;
  s.ca = true;
  s.pathlen = pathlen;
  s.key_usage = "critical,keyCertSign,cRLSign";
  return s;
}

CertSpec client_spec(const std::string& cn) {
  CertSpec s;
  s.subject = {{"CN", cn}};
  s.key_usage = "critical,digitalSignature";
  s.ext_key_usage = "clientAuth";
  return s;
}

CertFactory::CertFactory(fs::path dir, bool remove_on_destruction)
    : dir_(std::move(dir)), remove_(remove_on_destruction) {
  fs::create_directories(dir_);
}

CertFactory::~CertFactory() {
  if (remove_) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

fs::path CertFactory::cert(const std::string& name) const { return dir_ / (name + ".crt"); }
fs::path CertFactory::key(const std::string& name) const { return dir_ / (name + ".key"); }

const CertFactory::Entry& CertFactory::entry(const std::string& name) const {
  const auto it = entries_.find(name);
  if (it == entries_.end()) throw std::runtime_error("CertFactory: no certificate " + name);
  return it->second;
}

void CertFactory::issue(const std::string& name, const CertSpec& spec, const std::string& issuer) {
  Entry e;
  e.key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  check(e.key != nullptr, "cannot generate a P-256 key");
  e.cert.reset(X509_new());
  check(e.cert != nullptr, "X509_new");
  X509* x = e.cert.get();
  const Entry* signer = issuer.empty() ? nullptr : &entry(issuer);
  X509* issuer_cert = signer != nullptr ? signer->cert.get() : x;
  EVP_PKEY* issuer_key = signer != nullptr ? signer->key.get() : e.key.get();

  check(X509_set_version(x, X509_VERSION_3) == 1, "X509_set_version");
  check(ASN1_INTEGER_set(X509_get_serialNumber(x), next_serial_++) == 1, "serial");
  check(X509_gmtime_adj(X509_getm_notBefore(x), spec.not_before) != nullptr, "notBefore");
  check(X509_gmtime_adj(X509_getm_notAfter(x), spec.not_after) != nullptr, "notAfter");
  check(X509_set_pubkey(x, e.key.get()) == 1, "X509_set_pubkey");

  std::unique_ptr<X509_NAME, NameFree> subject(X509_NAME_new());
  check(subject != nullptr, "X509_NAME_new");
  for (const auto& [field, value] : spec.subject) {
    check(X509_NAME_add_entry_by_txt(subject.get(), field.c_str(), MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(value.data()),
                                     static_cast<int>(value.size()), -1, 0) == 1,
          "subject entry " + field);
  }
  check(X509_set_subject_name(x, subject.get()) == 1, "X509_set_subject_name");
  check(X509_set_issuer_name(x, X509_get_subject_name(issuer_cert)) == 1, "X509_set_issuer_name");

  if (spec.basic_constraints) {
    std::string bc = spec.ca ? "critical,CA:TRUE" : "critical,CA:FALSE";
    if (spec.ca && spec.pathlen) bc += ",pathlen:" + std::to_string(*spec.pathlen);
    add_extension(x, issuer_cert, NID_basic_constraints, bc);
  }
  if (!spec.key_usage.empty()) add_extension(x, issuer_cert, NID_key_usage, spec.key_usage);
  if (!spec.ext_key_usage.empty())
    add_extension(x, issuer_cert, NID_ext_key_usage, spec.ext_key_usage);
  if (!spec.subject_alt_name.empty())
    add_extension(x, issuer_cert, NID_subject_alt_name, spec.subject_alt_name);
  add_extension(x, issuer_cert, NID_subject_key_identifier, "hash");
  if (spec.authority_key_id)
    add_extension(x, issuer_cert, NID_authority_key_identifier, "keyid:always");
  if (spec.padding_bytes > 0)
    add_extension(x, issuer_cert, NID_netscape_comment, std::string(spec.padding_bytes, 'p'));

  check(X509_sign(x, issuer_key, EVP_sha256()) > 0, "X509_sign " + name);

  {
    BioPtr out = open_for_writing(cert(name));
    check(PEM_write_bio_X509(out.get(), x) == 1, "write " + cert(name).string());
  }
  {
    BioPtr out = open_for_writing(key(name));
    check(PEM_write_bio_PrivateKey(out.get(), e.key.get(), nullptr, nullptr, 0, nullptr, nullptr) ==
              1,
          "write " + key(name).string());
  }
  fs::permissions(key(name), fs::perms::owner_read | fs::perms::owner_write,
                  fs::perm_options::replace);
  entries_.insert_or_assign(name, std::move(e));
}

fs::path CertFactory::write_crl(const std::string& name, const std::string& issuer,
                                const CrlSpec& spec) {
  const Entry& signer = entry(issuer);
  std::unique_ptr<X509_CRL, CrlFree> crl(X509_CRL_new());
  check(crl != nullptr, "X509_CRL_new");
  check(X509_CRL_set_version(crl.get(), 1L) == 1, "CRL version");  // 1 = v2
  check(X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(signer.cert.get())) == 1,
        "CRL issuer");
  check(X509_CRL_set1_lastUpdate(crl.get(), time_from_now(spec.last_update).get()) == 1,
        "CRL lastUpdate");
  check(X509_CRL_set1_nextUpdate(crl.get(), time_from_now(spec.next_update).get()) == 1,
        "CRL nextUpdate");
  const auto revoked_at = time_from_now(std::min(spec.last_update, -60L));
  for (const auto& revoked_name : spec.revoked) {
    std::unique_ptr<X509_REVOKED, RevokedFree> rev(X509_REVOKED_new());
    check(rev != nullptr, "X509_REVOKED_new");
    check(X509_REVOKED_set_serialNumber(rev.get(),
                                        X509_get_serialNumber(entry(revoked_name).cert.get())) == 1,
          "revoked serial");
    check(X509_REVOKED_set_revocationDate(rev.get(), revoked_at.get()) == 1, "revocation date");
    check(X509_CRL_add0_revoked(crl.get(), rev.get()) == 1, "X509_CRL_add0_revoked");
    rev.release();  // owned by the CRL now
  }
  check(X509_CRL_sort(crl.get()) == 1, "X509_CRL_sort");
  check(X509_CRL_sign(crl.get(), signer.key.get(), EVP_sha256()) > 0, "X509_CRL_sign");

  const fs::path path = dir_ / (name + ".crl");
  const fs::path tmp = dir_ / (name + ".crl.tmp");
  {
    BioPtr out = open_for_writing(tmp);
    check(PEM_write_bio_X509_CRL(out.get(), crl.get()) == 1, "write " + tmp.string());
  }
  fs::rename(tmp, path);
  return path;
}

fs::path CertFactory::write_bundle(const std::string& bundle,
                                   const std::vector<std::string>& names) {
  const fs::path path = dir_ / (bundle + ".pem");
  BioPtr out = open_for_writing(path);
  for (const auto& n : names) {
    check(PEM_write_bio_X509(out.get(), entry(n).cert.get()) == 1, "write " + path.string());
  }
  return path;
}

std::string CertFactory::fingerprint_sha256(const std::string& name) const {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  check(X509_digest(entry(name).cert.get(), EVP_sha256(), md, &len) == 1, "X509_digest");
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    if (i != 0) out.push_back(':');
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xF]);
  }
  return out;
}

std::string CertFactory::serial_hex(const std::string& name) const {
  std::unique_ptr<BIGNUM, BnFree> bn(
      ASN1_INTEGER_to_BN(X509_get0_serialNumber(entry(name).cert.get()), nullptr));
  check(bn != nullptr, "serial");
  std::unique_ptr<char, CharFree> hex(BN_bn2hex(bn.get()));
  check(hex != nullptr, "BN_bn2hex");
  return hex.get();
}

namespace {

void build_zoo(CertFactory& f) {
  using namespace std::string_literals;
  // Trust anchors.
  f.issue("root", ca_spec("opsagent matrix client CA"), "");
  f.issue("server-ca", ca_spec("opsagent matrix server CA"), "");
  CertSpec server;
  server.subject = {{"CN", "localhost"}};
  server.key_usage = "critical,digitalSignature";
  server.ext_key_usage = "serverAuth";
  server.subject_alt_name = "DNS:localhost,IP:127.0.0.1,IP:::1";
  f.issue("server", server, "server-ca");

  // Validity.
  f.issue("alice", client_spec("alice"), "root");
  f.issue("admin", client_spec("admin"), "root");
  f.issue("inter", ca_spec("opsagent matrix intermediate CA", 0), "root");
  f.issue("alice-via-inter", client_spec("alice"), "inter");
  CertSpec expired = client_spec("alice");
  expired.not_before = -30 * kOneDay;
  expired.not_after = -kOneDay;
  f.issue("expired", expired, "root");
  CertSpec future = client_spec("alice");
  future.not_before = kOneDay;
  future.not_after = 30 * kOneDay;
  f.issue("future", future, "root");
  f.issue("revocable", client_spec("alice"), "root");
  f.issue("other-crl-ca", ca_spec("opsagent matrix unrelated CA"), "");

  // Wrong trust.
  f.issue("rogue-ca", ca_spec("opsagent matrix rogue CA"), "");
  f.issue("rogue-alice", client_spec("alice"), "rogue-ca");
  f.issue("self-alice", client_spec("alice"), "");
  f.issue("fake-root", ca_spec("opsagent matrix client CA"), "");  // same name, other key
  CertSpec fake_alice = client_spec("alice");
  fake_alice.authority_key_id = false;  // nothing but the name points at the issuer
  f.issue("fake-alice", fake_alice, "fake-root");

  // Broken chains.
  f.issue("not-ca", client_spec("not-a-ca"), "root");
  f.issue("via-not-ca", client_spec("alice"), "not-ca");
  f.issue("pathlen0", ca_spec("opsagent matrix pathlen 0 CA", 0), "root");
  f.issue("pathlen0-sub", ca_spec("opsagent matrix CA below pathlen 0"), "pathlen0");
  f.issue("via-pathlen", client_spec("alice"), "pathlen0-sub");

  // EKU / keyUsage.
  CertSpec eku_server = client_spec("alice");
  eku_server.ext_key_usage = "serverAuth";
  f.issue("eku-server", eku_server, "root");
  CertSpec eku_none = client_spec("alice");
  eku_none.ext_key_usage.clear();
  f.issue("eku-none", eku_none, "root");
  CertSpec eku_both = client_spec("alice");
  eku_both.ext_key_usage = "serverAuth,clientAuth";
  f.issue("eku-both", eku_both, "root");
  CertSpec ku = client_spec("alice");
  ku.key_usage = "critical,keyEncipherment";
  f.issue("ku-no-digsig", ku, "root");

  // Long chains: 20 intermediates, plain (~12 KB) and padded (~200 KB).
  std::string parent = "root";
  for (int i = 1; i <= 20; ++i) {
    const std::string name = "chain-" + std::to_string(i);
    f.issue(name, ca_spec("opsagent matrix chain " + std::to_string(i)), parent);
    parent = name;
  }
  f.issue("deep", client_spec("alice"), parent);
  parent = "root";
  for (int i = 1; i <= 20; ++i) {
    const std::string name = "fat-" + std::to_string(i);
    CertSpec s = ca_spec("opsagent matrix fat chain " + std::to_string(i));
    s.padding_bytes = 10 * 1024;
    f.issue(name, s, parent);
    parent = name;
  }
  f.issue("fat-leaf", client_spec("alice"), parent);

  // Crafted subjects.
  CertSpec two_cn = client_spec("alice");
  two_cn.subject = {{"CN", "alice"}, {"CN", "admin"}};
  f.issue("two-cn", two_cn, "root");
  f.issue("cn-comma", client_spec("alice,admin"), "root");
  f.issue("cn-newline", client_spec("alice\nadmin"), "root");
  f.issue("cn-nul", client_spec("alice\0admin"s), "root");
  f.issue("cn-case", client_spec("Alice"), "root");
  f.issue("cn-adm", client_spec("adm"), "root");
  CertSpec san_differs = client_spec("mallory");
  san_differs.subject_alt_name = "DNS:alice";
  f.issue("san-differs", san_differs, "root");
  CertSpec cn_alice_san_other = client_spec("alice");
  cn_alice_san_other.subject_alt_name = "DNS:mallory";
  f.issue("cn-alice-san-other", cn_alice_san_other, "root");
  f.issue("svc-cn-only", client_spec("svc.opsagent.test"), "root");
  CertSpec svc_san = client_spec("other");
  svc_san.subject_alt_name = "DNS:svc.opsagent.test";
  f.issue("svc-san", svc_san, "root");
}

}  // namespace

CertFactory& matrix_zoo() {
  static const std::unique_ptr<CertFactory> zoo = [] {
    std::string tmpl = (fs::temp_directory_path() / "opsagent-zoo-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    auto f = std::make_unique<CertFactory>(tmpl, true);
    build_zoo(*f);
    return f;
  }();
  return *zoo;
}

}  // namespace opsagent::testing
