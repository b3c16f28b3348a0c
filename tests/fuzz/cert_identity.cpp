// Fuzz target: tls::identity_from_certificate on arbitrary DER (SECURITY-MATRIX A9).
// Properties: whatever d2i_X509 accepts, identity extraction does not crash; an identity it
// returns has no NUL in the CN or any SAN, a 95-character "AB:CD:..." SHA-256 fingerprint, and
// one-line subject and issuer strings (they reach replies and the audit log).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <openssl/x509.h>

#include "agent/tls/peer_certificate.hpp"

#include "tests/fuzz/fuzz_support.hpp"

using opsagent::fuzz::expect;

namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};

void check_text(const std::string& value, const char* what) {
  expect(value.find('\0') == std::string::npos, what, value);
}

void check_one_line(const std::string& value, const char* what) {
  expect(value.find_first_of(std::string("\0\n\r", 3)) == std::string::npos, what, value);
}

bool is_fingerprint(const std::string& fp) {
  if (fp.size() != 95) return false;
  for (std::size_t i = 0; i < fp.size(); ++i) {
    const char c = fp[i];
    const bool ok = i % 3 == 2 ? c == ':' : ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'));
    if (!ok) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const unsigned char* p = data;
  std::unique_ptr<X509, X509Free> cert(d2i_X509(nullptr, &p, static_cast<long>(size)));
  if (!cert) return 0;
  const auto id = opsagent::tls::identity_from_certificate(cert.get());
  if (!id) {
    expect(!id.error().message.empty(), "refusal without a reason");
    return 0;
  }
  if (id->common_name) check_text(*id->common_name, "NUL in the CN");
  for (const auto& dns : id->san_dns) check_text(dns, "NUL in a DNS SAN");
  for (const auto& uri : id->san_uri) check_text(uri, "NUL in a URI SAN");
  expect(is_fingerprint(id->fingerprint_sha256), "fingerprint is not 32 hex bytes",
         id->fingerprint_sha256);
  check_one_line(id->subject, "subject is not one line");
  check_one_line(id->issuer, "issuer is not one line");
  return 0;
}
