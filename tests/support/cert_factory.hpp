#pragma once
// Certificates and CRLs made in-process with the OpenSSL 3 API, for tests that need more than
// the operator's dev PKI (TestPki): expired and future leaves, EKU/keyUsage variants, broken
// chains, crafted subjects, CRLs. Modelled on OpenSSL's test/certs/setup.sh. Keys are ECDSA
// P-256; every file is PEM, keys mode 0600.

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <openssl/evp.h>
#include <openssl/x509.h>

namespace opsagent::testing {

constexpr long kOneDay = 24L * 60 * 60;

/// What to put into one certificate. Extension values use OpenSSL's config syntax
/// (x509v3_config(5)); an empty string leaves the extension out.
struct CertSpec {
  /// Subject RDNs in order, each (short name, bytes): {{"CN", "alice"}}. Values may hold any
  /// byte, NUL included; they are encoded as UTF8String.
  std::vector<std::pair<std::string, std::string>> subject;
  long not_before = -kOneDay;     ///< seconds relative to now
  long not_after = 30 * kOneDay;  ///< seconds relative to now
  bool ca = false;                ///< basicConstraints CA:TRUE (critical)
  std::optional<int> pathlen;     ///< pathLenConstraint (only with `ca`)
  bool basic_constraints = true;  ///< false: no basicConstraints extension at all
  std::string key_usage;          ///< e.g. "critical,digitalSignature"
  std::string ext_key_usage;      ///< e.g. "clientAuth"
  std::string subject_alt_name;   ///< e.g. "DNS:localhost,IP:127.0.0.1"
  bool authority_key_id = true;   ///< false: no AKID (so only the issuer *name* links it)
  std::size_t padding_bytes = 0;  ///< adds a nsComment of this many bytes (oversized chains)
};

/// Convenience constructors for the common shapes.
CertSpec ca_spec(const std::string& cn, std::optional<int> pathlen = std::nullopt);
CertSpec client_spec(const std::string& cn);

/// One CRL entry set: which certificates (by factory name) are revoked, and the CRL's dates.
struct CrlSpec {
  std::vector<std::string> revoked;  ///< factory names of revoked certificates
  long last_update = -kOneDay;       ///< seconds relative to now
  long next_update = 7 * kOneDay;    ///< seconds relative to now
};

/// Makes keys, certificates and CRLs and writes them as `<dir>/<name>.crt|.key|.crl`.
/// Not thread-safe.
class CertFactory {
 public:
  /// Writes into `dir` (created if missing). With `remove_on_destruction` the directory is
  /// deleted when the factory goes away.
  explicit CertFactory(std::filesystem::path dir, bool remove_on_destruction = false);
  ~CertFactory();
  CertFactory(const CertFactory&) = delete;
  CertFactory& operator=(const CertFactory&) = delete;

  /// Issues `name` from `spec`, signed by the certificate called `issuer` ("" = self-signed).
  /// Throws std::runtime_error on an OpenSSL failure or an unknown issuer.
  void issue(const std::string& name, const CertSpec& spec, const std::string& issuer);
  /// Writes `<dir>/<name>.crl`, issued and signed by the certificate called `issuer`; an existing
  /// file is replaced atomically (written beside it, then renamed). Returns its path.
  std::filesystem::path write_crl(const std::string& name, const std::string& issuer,
                                  const CrlSpec& spec);
  /// Writes the named certificates into one PEM file `<dir>/<bundle>.pem`; returns its path.
  std::filesystem::path write_bundle(const std::string& bundle,
                                     const std::vector<std::string>& names);

  [[nodiscard]] std::filesystem::path cert(const std::string& name) const;
  [[nodiscard]] std::filesystem::path key(const std::string& name) const;
  [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }
  /// SHA-256 of the DER certificate as "AB:CD:..." (the agent's audit format).
  [[nodiscard]] std::string fingerprint_sha256(const std::string& name) const;
  /// Serial number as upper-case hex without leading zeros (the agent's audit format).
  [[nodiscard]] std::string serial_hex(const std::string& name) const;

 private:
  struct X509Free {
    void operator()(X509* x) const { X509_free(x); }
  };
  struct PkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
  };
  struct Entry {
    std::unique_ptr<X509, X509Free> cert;
    std::unique_ptr<EVP_PKEY, PkeyFree> key;
  };
  const Entry& entry(const std::string& name) const;

  std::filesystem::path dir_;
  bool remove_ = false;
  long next_serial_ = 0x1000;
  std::map<std::string, Entry> entries_;
};

/// The certificate zoo of the security matrix (rows A1-A16), generated once per test process
/// into a temporary directory removed at exit. Names (all client leaves have CN "alice" unless
/// the name says otherwise, EKU clientAuth and keyUsage digitalSignature):
///   root            trusted client CA ("opsagent matrix client CA")
///   server-ca       CA of the agent's certificate; `server` (localhost, 127.0.0.1, ::1)
///   alice           valid leaf from root          inter / alice-via-inter  valid 2-level chain
///   expired         notAfter now-1d               future                   notBefore now+1d
///   revocable       leaf to revoke in CRL tests   other-crl-ca             CA for an unrelated CRL
///   rogue-ca        untrusted CA / rogue-alice    self-alice               self-signed, CN alice
///   fake-root       same subject as root, other key / fake-alice (no AKID) signed by it
///   not-ca          CA:FALSE leaf from root / via-not-ca signed by it
///   pathlen0        CA pathlen:0 / pathlen0-sub (CA) / via-pathlen (leaf under the sub-CA)
///   eku-server      EKU serverAuth only     eku-none   no EKU      eku-both serverAuth+clientAuth
///   ku-no-digsig    keyUsage keyEncipherment only (clientAuth EKU)
///   chain-1..20     20 nested intermediates / deep  leaf under chain-20
///   fat-1..20       20 nested intermediates with 10 KB padding each (~200 KB) / fat-leaf
///   two-cn (CN=alice, CN=admin)  cn-comma ("alice,admin")  cn-newline ("alice\nadmin")
///   cn-nul ("alice\0admin")  cn-case ("Alice")  cn-adm ("adm")  admin ("admin")
///   san-differs (CN mallory, SAN DNS alice)  cn-alice-san-other (CN alice, SAN DNS mallory)
///   svc-cn-only (CN svc.opsagent.test, no SAN)  svc-san (CN other, SAN DNS svc.opsagent.test)
CertFactory& matrix_zoo();

}  // namespace opsagent::testing
