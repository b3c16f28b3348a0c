// Security matrix section A (TLS and authentication), rows A1-A16 of
// /work/shared/SECURITY-MATRIX.md, against the real agent on 127.0.0.1. Certificates come from
// the in-process CertFactory zoo (tests/support/cert_factory.hpp); test names carry the row ID.

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <memory>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <signal.h>
#include <sstream>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "tests/support/agent_process.hpp"
#include "tests/support/cert_factory.hpp"
#include "tests/support/proc_probe.hpp"
#include "tests/support/raw_connection.hpp"
#include "tests/support/sanitizer.hpp"
#include "tests/support/zoo_agent.hpp"

namespace opsagent::testing {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

// Memory growth allowed for the agent under attack. AddressSanitizer's quarantine and shadow
// memory, and ThreadSanitizer's shadow memory, make the same workload several times larger.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr long kMemoryBudgetKib = 160 * 1024;
#else
constexpr long kMemoryBudgetKib = 20 * 1024;
#endif

// Identity rules for every crafted subject of the zoo; the roles only need the builtins. A CN
// holding a newline cannot be named: no policy value may hold a control character (I10).
const std::string kMatrixPolicy = R"(
identities:
  - match: {cn: alice}
    principal: alice
    roles: [operator]
  - match: {cn: admin}
    principal: admin
    roles: [operator]
  - match: {cn: "alice,admin"}
    principal: comma-user
    roles: [operator]
  - match: {san_dns: svc.opsagent.test}
    principal: svc
    roles: [operator]
roles:
  operator:
    commands: [ping, whoami]
)";

CertFactory& zoo() { return matrix_zoo(); }

AgentSpec matrix_spec(const std::string& tls_extra = "",
                      std::map<std::string, std::string> sections = {}) {
  return zoo_spec(kMatrixPolicy, tls_extra, std::move(sections));
}

// Client options presenting the zoo certificate `name` ("" = none) and the named chain
// certificates after it, in order (issuer of the leaf first).
ClientOptions as(const std::string& name, const std::vector<std::string>& chain = {}) {
  return zoo_client(name, chain);
}

// One connection attempt: the handshake, then the agent's first line (greeting or refusal).
struct Attempt {
  bool handshake_ok = false;
  std::optional<std::string> first_line;
  std::string error;  ///< client-side error of the handshake or the first read
  [[nodiscard]] bool greeted() const {
    return first_line && first_line->rfind("OK opsagent", 0) == 0;
  }
};

Attempt attempt(const AgentProcess& agent, const ClientOptions& options) {
  TlsClient c(options);
  Attempt a;
  a.error = c.connect("127.0.0.1", agent.port());
  if (!a.error.empty()) return a;
  a.handshake_ok = true;
  a.first_line = c.read_line(5s);  // TLS 1.3: a refused certificate shows up here as an alert
  if (!a.first_line) a.error = c.last_error();
  return a;
}

std::size_t count_events(const AgentProcess& agent, const std::string& event) {
  const auto records = agent.audit();
  return static_cast<std::size_t>(std::count_if(records.begin(), records.end(), [&](const json& r) {
    return r.value("event", "") == event;
  }));
}

// Waits until at least `n` records of `event` exist; true on success (no test failure).
bool wait_for_count(const AgentProcess& agent, const std::string& event, std::size_t n,
                    std::chrono::milliseconds timeout = 10s) {
  const auto deadline = Clock::now() + timeout;
  while (count_events(agent, event) < n) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// Like AgentProcess::wait_for_audit, but a missing record is a value, not a test failure.
std::optional<json> find_audit(const AgentProcess& agent, const std::string& event,
                               std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    for (const auto& r : agent.audit()) {
      if (r.value("event", "") == event) return r;
    }
    if (Clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(20ms);
  }
}

// Nothing was judged as a command: no client got as far as sending one.
void expect_no_command_records(const AgentProcess& agent) {
  for (const auto& r : agent.audit()) EXPECT_NE(r.value("event", ""), "command") << r.dump();
}

// The handshake must fail on X.509 verification with `code`, audited as tls_failure, and no
// session may be admitted for the attempt.
// (Admission is checked by the failed connection's `conn`, not by counting auth_ok records: the
// auth_ok of an earlier, successful attempt may still be on its way to the file.)
void expect_verify_failure(const AgentProcess& agent, const ClientOptions& options, long code) {
  const Attempt a = attempt(agent, options);
  EXPECT_FALSE(a.greeted()) << a.first_line.value_or("");
  const json rec = agent.wait_for_audit("tls_failure", "verify_code", code);
  if (!rec.is_null()) {
    EXPECT_EQ(rec["verify_error"], X509_verify_cert_error_string(code)) << rec.dump();
    for (const auto& r : agent.audit()) {
      if (r.value("event", "") == "auth_ok") {
        EXPECT_NE(r["conn"], rec["conn"]) << r.dump();
      }
    }
  }
  expect_no_command_records(agent);
}

// --- /proc ---------------------------------------------------------------------------------

// utime + stime of the process, in seconds.
double cpu_seconds(pid_t pid) {
  const std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  std::istringstream in(stat.substr(stat.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {  // fields 3.. after "pid (comm)"
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::size_t child_count(pid_t parent) {
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::istringstream in(slurp(e.path() / "status"));
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("PPid:", 0) == 0 && std::stol(line.substr(5)) == parent) ++n;
    }
  }
  return n;
}

// --- raw TCP -------------------------------------------------------------------------------

// The bytes of a real TLS ClientHello, made with memory BIOs (nothing is sent).
std::string client_hello() {
  struct CtxFree {
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
  };
  struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
  };
  std::unique_ptr<SSL_CTX, CtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), rbio, wbio);  // the SSL owns both now
  SSL_set_connect_state(ssl.get());
  (void)SSL_do_handshake(ssl.get());  // wants to read: the ClientHello is in wbio
  std::string out;
  char buf[4096];
  int n = 0;
  while ((n = BIO_read(wbio, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// ============================================================================================
// A1 Baseline.

TEST(MatrixA, A1_AcceptsValidCertificateAndAuditsFingerprint) {
  AgentProcess agent{matrix_spec()};
  TlsClient c(as("alice"));
  ASSERT_EQ(c.connect("127.0.0.1", agent.port()), "");
  const auto greeting = c.read_line();
  ASSERT_TRUE(greeting.has_value()) << c.last_error();
  EXPECT_EQ(greeting->rfind("OK opsagent", 0), 0U) << *greeting;
  EXPECT_NE(greeting->find("principal=alice"), std::string::npos) << *greeting;
  EXPECT_EQ(c.command("ping"), std::vector<std::string>{"OK pong"});

  const json ok = agent.wait_for_audit("auth_ok", "principal", "alice");
  ASSERT_FALSE(ok.is_null());
  EXPECT_EQ(ok["identity"]["fingerprint_sha256"], zoo().fingerprint_sha256("alice"));
  EXPECT_EQ(ok["identity"]["serial"], zoo().serial_hex("alice"));
  EXPECT_EQ(ok["identity"]["cn"], "alice");
  EXPECT_EQ(ok["rule"], "identities[0]");
  const json cmd = agent.wait_for_audit("command", "command", "ping");
  EXPECT_EQ(cmd["decision"], "allow") << cmd.dump();
}

// ============================================================================================
// A2 No client certificate.

TEST(MatrixA, A2_RefusesClientWithoutCertificate) {
  AgentProcess agent{matrix_spec(", min_version: \"1.2\"")};
  {  // TLS 1.3: the client finishes, then reads the certificate_required alert.
    TlsClient c(as(""));
    const std::string err = c.connect("127.0.0.1", agent.port());
    if (err.empty()) {
      EXPECT_FALSE(c.read_line(5s).has_value());
      EXPECT_NE(c.last_error().find("certificate required"), std::string::npos) << c.last_error();
    }
  }
  ASSERT_TRUE(wait_for_count(agent, "tls_failure", 1));
  {  // TLS 1.2: the handshake itself fails.
    ClientOptions o = as("");
    o.max_version = TLS1_2_VERSION;
    TlsClient c(o);
    const std::string err = c.connect("127.0.0.1", agent.port());
    EXPECT_NE(err, "");
    EXPECT_NE(err.find("handshake failure"), std::string::npos) << err;
  }
  ASSERT_TRUE(wait_for_count(agent, "tls_failure", 2));
  {  // openssl s_client without -cert (-ign_eof: keep reading until the agent's answer).
    std::string out;
    run_shell("printf 'ping\\n' | timeout 10 openssl s_client -connect 127.0.0.1:" +
                  std::to_string(agent.port()) + " -servername localhost -CAfile " +
                  zoo().cert("server-ca").string() + " -ign_eof 2>&1",
              &out);
    EXPECT_EQ(out.find("OK opsagent"), std::string::npos) << out;
    EXPECT_EQ(out.find("OK pong"), std::string::npos) << out;
    EXPECT_NE(out.find("certificate required"), std::string::npos) << out;
  }
  ASSERT_TRUE(wait_for_count(agent, "tls_failure", 3));
  for (const auto& r : agent.audit()) {
    if (r.value("event", "") != "tls_failure") continue;
    EXPECT_NE(r.value("reason", "").find("certificate"), std::string::npos) << r.dump();
  }
  expect_no_command_records(agent);
  EXPECT_EQ(count_events(agent, "auth_ok"), 0U);
  EXPECT_EQ(child_count(agent.pid()), 0U);
}

// ============================================================================================
// A3, A4 Validity period.

TEST(MatrixA, A3_RejectsExpiredClientCertificate) {
  AgentProcess agent{matrix_spec()};
  expect_verify_failure(agent, as("expired"), X509_V_ERR_CERT_HAS_EXPIRED);  // 10
}

TEST(MatrixA, A4_RejectsNotYetValidClientCertificate) {
  AgentProcess agent{matrix_spec()};
  expect_verify_failure(agent, as("future"), X509_V_ERR_CERT_NOT_YET_VALID);  // 9
}

// ============================================================================================
// A5 Wrong trust anchor; the system store is never consulted.

TEST(MatrixA, A5_RejectsForeignAndSelfSignedCertsEvenWhenInTheSystemStore) {
  // A "system store" that trusts the rogue CA and the self-signed alice.
  const fs::path store = zoo().dir() / "a5-system-store";
  fs::create_directories(store);
  fs::copy_file(zoo().cert("rogue-ca"), store / "rogue-ca.pem",
                fs::copy_options::overwrite_existing);
  fs::copy_file(zoo().cert("self-alice"), store / "self-alice.pem",
                fs::copy_options::overwrite_existing);
  ASSERT_EQ(run_shell("openssl rehash " + store.string() + " 2>&1"), 0);
  const fs::path bundle = zoo().write_bundle("a5-system-bundle", {"rogue-ca", "self-alice"});

  AgentSpec spec = matrix_spec();
  spec.env = {{"SSL_CERT_FILE", bundle.string()}, {"SSL_CERT_DIR", store.string()}};
  AgentProcess agent{spec};
  expect_verify_failure(agent, as("rogue-alice"),
                        X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);  // 20
  expect_verify_failure(agent, as("rogue-alice", {"rogue-ca"}),
                        X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN);  // 19: the chain ends untrusted
  expect_verify_failure(agent, as("self-alice"), X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);  // 18
  // The agent still works for a legitimate client.
  EXPECT_TRUE(attempt(agent, as("alice")).greeted());
}

// ============================================================================================
// A6 Broken chains.

struct ChainCase {
  std::string label;
  std::string leaf;
  std::vector<std::string> chain;
  long verify_code;  ///< X509_V_OK: accepted
};

class MatrixAChain : public ::testing::TestWithParam<ChainCase> {};

TEST_P(MatrixAChain, A6_RejectsBrokenChains) {
  const ChainCase& c = GetParam();
  AgentProcess agent{matrix_spec()};
  if (c.verify_code == X509_V_OK) {
    const Attempt a = attempt(agent, as(c.leaf, c.chain));
    EXPECT_TRUE(a.greeted()) << a.error;
    return;
  }
  expect_verify_failure(agent, as(c.leaf, c.chain), c.verify_code);
}

INSTANTIATE_TEST_SUITE_P(
    MatrixA, MatrixAChain,
    ::testing::Values(ChainCase{"ValidIntermediate", "alice-via-inter", {"inter"}, X509_V_OK},
                      ChainCase{
                          "CaFalseIssuer", "via-not-ca", {"not-ca"}, X509_V_ERR_INVALID_CA},  // 24
                      ChainCase{"PathlenViolation",
                                "via-pathlen",
                                {"pathlen0-sub", "pathlen0"},
                                X509_V_ERR_PATH_LENGTH_EXCEEDED},  // 25
                      ChainCase{"SameNameIssuerWithOtherKey",
                                "fake-alice",
                                {},
                                X509_V_ERR_CERT_SIGNATURE_FAILURE}),  // 7
    [](const ::testing::TestParamInfo<ChainCase>& p) { return p.param.label; });

// ============================================================================================
// A7 extendedKeyUsage / keyUsage.

struct UsageCase {
  std::string label;
  std::string leaf;
  enum class Outcome { accepted, tls_rejected, auth_denied } outcome;
};

class MatrixAUsage : public ::testing::TestWithParam<UsageCase> {};

TEST_P(MatrixAUsage, A7_ChecksKeyUsages) {
  const UsageCase& c = GetParam();
  AgentProcess agent{matrix_spec()};
  const Attempt a = attempt(agent, as(c.leaf));
  switch (c.outcome) {
    case UsageCase::Outcome::accepted:
      EXPECT_TRUE(a.greeted()) << a.error;
      agent.wait_for_audit("auth_ok", "principal", "alice");
      break;
    case UsageCase::Outcome::tls_rejected:
      EXPECT_FALSE(a.greeted());
      agent.wait_for_audit("tls_failure", "verify_code", X509_V_ERR_INVALID_PURPOSE);  // 26
      expect_no_command_records(agent);
      EXPECT_EQ(count_events(agent, "auth_ok"), 0U);
      break;
    case UsageCase::Outcome::auth_denied: {
      ASSERT_TRUE(a.first_line.has_value()) << a.error;
      EXPECT_EQ(*a.first_line,
                "ERR denied client certificate lacks extendedKeyUsage clientAuth; bye");
      const json rec = agent.wait_for_audit("auth_denied");
      EXPECT_NE(rec.value("reason", "").find("clientAuth"), std::string::npos) << rec.dump();
      expect_no_command_records(agent);
      EXPECT_EQ(count_events(agent, "auth_ok"), 0U);
      break;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    MatrixA, MatrixAUsage,
    ::testing::Values(
        UsageCase{"ClientAuthAccepted", "alice", UsageCase::Outcome::accepted},
        UsageCase{"ServerAndClientAuthAccepted", "eku-both", UsageCase::Outcome::accepted},
        UsageCase{"ServerAuthOnlyRejected", "eku-server", UsageCase::Outcome::tls_rejected},
        UsageCase{"KeyUsageWithoutDigitalSignatureRejected", "ku-no-digsig",
                  UsageCase::Outcome::tls_rejected},
        UsageCase{"NoEkuRejectedByExplicitCheck", "eku-none", UsageCase::Outcome::auth_denied}),
    [](const ::testing::TestParamInfo<UsageCase>& p) { return p.param.label; });

// ============================================================================================
// A8 Revocation.

std::string crl_option(const fs::path& crl) { return ", crl: " + crl.string(); }

TEST(MatrixA, A8_RejectsRevokedCertificate) {
  const fs::path crl = zoo().write_crl("a8-revoked", "root", CrlSpec{{"revocable"}});
  AgentProcess agent{matrix_spec(crl_option(crl))};
  EXPECT_TRUE(attempt(agent, as("alice")).greeted()) << "a certificate not on the CRL";
  expect_verify_failure(agent, as("revocable"), X509_V_ERR_CERT_REVOKED);  // 23
}

TEST(MatrixA, A8_FailsClosedOnExpiredCrl) {
  CrlSpec spec;
  spec.last_update = -10 * kOneDay;
  spec.next_update = -kOneDay;
  const fs::path crl = zoo().write_crl("a8-expired", "root", spec);
  AgentProcess agent{matrix_spec(crl_option(crl))};
  expect_verify_failure(agent, as("alice"), X509_V_ERR_CRL_HAS_EXPIRED);  // 12
}

TEST(MatrixA, A8_FailsClosedOnNotYetValidCrl) {
  CrlSpec spec;
  spec.last_update = kOneDay;
  spec.next_update = 8 * kOneDay;
  const fs::path crl = zoo().write_crl("a8-future", "root", spec);
  AgentProcess agent{matrix_spec(crl_option(crl))};
  expect_verify_failure(agent, as("alice"), X509_V_ERR_CRL_NOT_YET_VALID);  // 11
}

TEST(MatrixA, A8_FailsClosedWhenNoCrlCoversTheIssuer) {
  const fs::path crl = zoo().write_crl("a8-unrelated", "other-crl-ca", CrlSpec{});
  AgentProcess agent{matrix_spec(crl_option(crl))};
  expect_verify_failure(agent, as("alice"), X509_V_ERR_UNABLE_TO_GET_CRL);  // 3
}

TEST(MatrixA, A8_AppliesCrlReloadedWithSighupToNewConnectionsAndOpenSessions) {
  const fs::path crl = zoo().write_crl("a8-reload", "root", CrlSpec{});
  AgentProcess agent{matrix_spec(crl_option(crl))};
  ASSERT_TRUE(attempt(agent, as("revocable")).greeted()) << "not revoked yet";
  // Sessions open across the reload: the revoked certificate's is ended, alice's carries on.
  TlsClient open_revocable(as("revocable"));
  ASSERT_EQ(open_revocable.connect("127.0.0.1", agent.port()), "");
  ASSERT_TRUE(open_revocable.read_line().has_value()) << open_revocable.last_error();
  TlsClient open_alice(as("alice"));
  ASSERT_EQ(open_alice.connect("127.0.0.1", agent.port()), "");
  ASSERT_TRUE(open_alice.read_line().has_value()) << open_alice.last_error();

  zoo().write_crl("a8-reload", "root", CrlSpec{{"revocable"}});  // written beside, renamed
  ASSERT_TRUE(agent.signal(SIGHUP));
  if (!find_audit(agent, "tls_reload", 10s)) {
    if (find_audit(agent, "tls_reload_failed", 0ms))
      FAIL() << "tls_reload_failed:\n" << agent.log();
    GTEST_SKIP() << "needs TLS reload (no tls_reload audit event after SIGHUP)";
  }
  expect_verify_failure(agent, as("revocable"), X509_V_ERR_CERT_REVOKED);  // 23
  EXPECT_TRUE(attempt(agent, as("alice")).greeted()) << "other certificates still work";

  const json revoked = agent.wait_for_audit("session_revoked");
  ASSERT_FALSE(revoked.is_null()) << agent.log();
  EXPECT_EQ(revoked["verify_code"], X509_V_ERR_CERT_REVOKED);
  const auto bye = open_revocable.read_line();
  ASSERT_TRUE(bye.has_value()) << open_revocable.last_error();
  EXPECT_EQ(bye->rfind("ERR denied certificate no longer valid", 0), 0U) << *bye;
  EXPECT_TRUE(open_revocable.wait_closed(5s));
  EXPECT_FALSE(agent.wait_for_audit("disconnect", "reason", "certificate_revoked").is_null());
  EXPECT_EQ(open_alice.command("ping"), std::vector<std::string>{"OK pong"});
}

// ============================================================================================
// A9 Identity mapping edge cases.

// Connects with `leaf`; returns the agent's first line ("" when there is none).
std::string first_line_for(const AgentProcess& agent, const std::string& leaf) {
  const Attempt a = attempt(agent, as(leaf));
  EXPECT_TRUE(a.handshake_ok) << leaf << ": " << a.error;
  return a.first_line.value_or("");
}

TEST(MatrixA, A9_RejectsTwoCommonNamesAsAmbiguous) {
  AgentProcess agent{matrix_spec()};
  EXPECT_EQ(first_line_for(agent, "two-cn"),
            "ERR denied certificate subject has more than one CN (ambiguous identity); bye");
  const json rec = agent.wait_for_audit("auth_denied");
  EXPECT_NE(rec.value("reason", "").find("ambiguous"), std::string::npos) << rec.dump();
  expect_no_command_records(agent);
  EXPECT_EQ(count_events(agent, "auth_ok"), 0U);
}

TEST(MatrixA, A9_RejectsCommonNameWithNul) {
  AgentProcess agent{matrix_spec()};
  const std::string line = first_line_for(agent, "cn-nul");
  EXPECT_EQ(line.rfind("ERR denied certificate CN contains a NUL byte", 0), 0U) << line;
  agent.wait_for_audit("auth_denied");
  expect_no_command_records(agent);
  EXPECT_EQ(count_events(agent, "auth_ok"), 0U);
}

TEST(MatrixA, A9_MapsACommaNameByExactStringAndAuditsANewlineNameEscapedUnmapped) {
  AgentProcess agent{matrix_spec()};
  const std::string comma = first_line_for(agent, "cn-comma");
  EXPECT_NE(comma.find("principal=comma-user"), std::string::npos) << comma;
  // No rule can name a CN with a newline (the policy refuses control characters, I10), and
  // "alice" or "admin" do not match it: the certificate is refused as unmapped.
  const std::string newline = first_line_for(agent, "cn-newline");
  EXPECT_EQ(newline, "ERR denied certificate CN=alice\\0Aadmin is not mapped to a principal; bye");

  const json c = agent.wait_for_audit("auth_ok", "principal", "comma-user");
  EXPECT_EQ(c["identity"]["cn"], "alice,admin");
  EXPECT_EQ(c["identity"]["subject"], "CN=alice\\,admin");  // RFC 2253 escaping
  const json n = agent.wait_for_audit("auth_denied");
  EXPECT_EQ(n["identity"]["cn"], "alice\nadmin");
  EXPECT_EQ(n["identity"]["subject"], "CN=alice\\0Aadmin");
  // On disk the newline is a JSON escape: the record stays one line.
  const std::string raw = slurp(agent.audit_path());
  EXPECT_NE(raw.find(R"("cn":"alice\nadmin")"), std::string::npos) << raw;
}

TEST(MatrixA, A9_DoesNotFoldCaseOrMatchPrefixes) {
  AgentProcess agent{matrix_spec()};
  EXPECT_EQ(first_line_for(agent, "cn-case"),
            "ERR denied certificate CN=Alice is not mapped to a principal; bye");
  EXPECT_EQ(first_line_for(agent, "cn-adm"),
            "ERR denied certificate CN=adm is not mapped to a principal; bye");
  ASSERT_TRUE(wait_for_count(agent, "auth_denied", 2));
  std::vector<std::string> cns;
  for (const auto& r : agent.audit()) {
    if (r.value("event", "") == "auth_denied") cns.push_back(r["identity"].value("cn", ""));
  }
  EXPECT_EQ(cns, (std::vector<std::string>{"Alice", "adm"}));
  expect_no_command_records(agent);
  EXPECT_EQ(count_events(agent, "auth_ok"), 0U);
}

TEST(MatrixA, A9_MatchesOnlyTheConfiguredField) {
  AgentProcess agent{matrix_spec()};
  // CN rule "alice": a SAN "alice" does not count, the CN does whatever the SAN says.
  EXPECT_EQ(first_line_for(agent, "san-differs"),
            "ERR denied certificate CN=mallory is not mapped to a principal; bye");
  EXPECT_NE(first_line_for(agent, "cn-alice-san-other").find("principal=alice"), std::string::npos);
  // san_dns rule: the SAN maps, a CN with the same text does not.
  EXPECT_NE(first_line_for(agent, "svc-san").find("principal=svc"), std::string::npos);
  EXPECT_EQ(first_line_for(agent, "svc-cn-only"),
            "ERR denied certificate CN=svc.opsagent.test is not mapped to a principal; bye");
}

// ============================================================================================
// A10 Old protocol versions.

TEST(MatrixA, A10_RefusesTls10And11EvenWithSeclevel0) {
  AgentProcess agent{matrix_spec(", min_version: \"1.2\"")};
  std::size_t failures = 0;
  for (const int version : {TLS1_VERSION, TLS1_1_VERSION}) {
    ClientOptions o = as("alice");
    o.min_version = version;
    o.max_version = version;
    o.security_level = 0;
    o.cipher_list = "DEFAULT@SECLEVEL=0";
    TlsClient c(o);
    const std::string err = c.connect("127.0.0.1", agent.port());
    EXPECT_NE(err, "") << "version " << version << " negotiated " << c.version();
    // The agent saw the ClientHello and refused it (not a client-side "no protocols").
    ASSERT_TRUE(wait_for_count(agent, "tls_failure", ++failures)) << err;
  }
  for (const auto& r : agent.audit()) {
    if (r.value("event", "") == "tls_failure") {
      EXPECT_NE(r.value("reason", "").find("protocol"), std::string::npos) << r.dump();
    }
  }
  std::string out;
  const int rc =
      run_shell("timeout 10 openssl s_client -connect 127.0.0.1:" + std::to_string(agent.port()) +
                    " -tls1_1 -cipher DEFAULT@SECLEVEL=0" + " -cert " +
                    zoo().cert("alice").string() + " -key " + zoo().key("alice").string() +
                    " -CAfile " + zoo().cert("server-ca").string() + " </dev/null 2>&1",
                &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("alert protocol version"), std::string::npos) << out;
  EXPECT_EQ(out.find("OK opsagent"), std::string::npos) << out;
  EXPECT_TRUE(wait_for_count(agent, "tls_failure", failures + 1));
  expect_no_command_records(agent);
  EXPECT_EQ(count_events(agent, "auth_ok"), 0U);
}

// ============================================================================================
// A11 TLS 1.2 cipher suites.

TEST(MatrixA, A11_RefusesWeakTls12SuitesOfferedAlone) {
  AgentProcess agent{matrix_spec(", min_version: \"1.2\"")};
  const std::vector<std::string> weak = {
      "AES128-SHA",                 // RSA key exchange, CBC
      "AES128-GCM-SHA256",          // RSA key exchange, AEAD
      "ECDHE-ECDSA-AES128-SHA",     // CBC with SHA-1
      "ECDHE-ECDSA-AES256-SHA384",  // CBC
      "DES-CBC3-SHA",               // 3DES
      "NULL-SHA",                   // no encryption
      "ECDHE-ECDSA-NULL-SHA",       // no encryption, ECDHE
      "ADH-AES128-SHA",             // anonymous DH
      "AECDH-AES128-SHA",           // anonymous ECDH
      "DHE-RSA-AES128-GCM-SHA256",  // finite-field DHE
  };
  std::size_t refused = 0;
  for (const auto& suite : weak) {
    ClientOptions o = as("alice");
    o.max_version = TLS1_2_VERSION;
    o.security_level = 0;
    o.cipher_list = suite + "@SECLEVEL=0";
    std::unique_ptr<TlsClient> c;
    try {
      c = std::make_unique<TlsClient>(o);
    } catch (const std::exception& e) {
      std::printf("[ info ] %s: this OpenSSL cannot offer it (%s)\n", suite.c_str(), e.what());
      continue;
    }
    const std::string err = c->connect("127.0.0.1", agent.port());
    EXPECT_NE(err, "") << suite << " negotiated " << c->cipher();
    ASSERT_TRUE(wait_for_count(agent, "tls_failure", ++refused))
        << suite << ": the agent never saw the ClientHello (" << err << ")";
  }
  EXPECT_GE(refused, 6U);
  expect_no_command_records(agent);
  EXPECT_EQ(count_events(agent, "auth_ok"), 0U);

  for (const std::string suite : {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                                  "ECDHE-ECDSA-CHACHA20-POLY1305"}) {
    ClientOptions o = as("alice");
    o.max_version = TLS1_2_VERSION;
    o.cipher_list = suite;
    TlsClient c(o);
    ASSERT_EQ(c.connect("127.0.0.1", agent.port()), "") << suite;
    EXPECT_EQ(c.cipher(), suite);
    EXPECT_EQ(c.version(), "TLSv1.2");
    ASSERT_TRUE(c.read_line().has_value()) << c.last_error();
    EXPECT_EQ(c.command("ping"), std::vector<std::string>{"OK pong"}) << suite;
  }
}

// ============================================================================================
// A12 Oversized and deep client chains.

std::vector<std::string> chain_names(const std::string& prefix) {
  std::vector<std::string> names;
  for (int i = 20; i >= 1; --i) names.push_back(prefix + std::to_string(i));  // issuer first
  return names;
}

TEST(MatrixA, A12_RefusesDeepAndOversizedChainsFastWithBoundedMemory) {
  AgentProcess agent{matrix_spec()};
  ASSERT_TRUE(attempt(agent, as("alice")).greeted());  // warm up
  const long hwm_before = status_kib(agent.pid(), "VmHWM");
  ASSERT_GT(hwm_before, 0);

  // "Fast" is where each attempt stops, read from the audit below, not a stopwatch.
  for (int round = 0; round < 5; ++round) {
    for (const auto& [leaf, prefix] :
         {std::pair<std::string, std::string>{"deep", "chain-"}, {"fat-leaf", "fat-"}}) {
      const Attempt a = attempt(agent, as(leaf, chain_names(prefix)));
      EXPECT_FALSE(a.greeted()) << leaf;
    }
  }
  ASSERT_TRUE(wait_for_count(agent, "tls_failure", 10));
  expect_no_command_records(agent);
  EXPECT_EQ(count_events(agent, "auth_ok"), 1U) << "only the warm-up session";
  // Deep chains stop at verify_depth; oversized ones at the certificate-list cap, before any
  // verification work.
  int too_long = 0;
  int too_big = 0;
  for (const auto& r : agent.audit()) {
    if (r.value("event", "") != "tls_failure") continue;
    if (r.value("verify_code", 0L) == X509_V_ERR_CERT_CHAIN_TOO_LONG) ++too_long;
    if (r.value("reason", "").find("excessive message size") != std::string::npos) ++too_big;
  }
  EXPECT_EQ(too_long, 5);
  EXPECT_EQ(too_big, 5);
  const long hwm_after = status_kib(agent.pid(), "VmHWM");
  EXPECT_LT(hwm_after - hwm_before, kMemoryBudgetKib)
      << "VmHWM " << hwm_before << " -> " << hwm_after << " KiB";
  EXPECT_TRUE(attempt(agent, as("alice")).greeted());
}

// ============================================================================================
// A13 Handshake timeout and slowloris.

TEST(MatrixA, A13_ClosesSilentAndSlowHandshakesAtTheTimeoutAndFreesTheSlot) {
  AgentProcess agent{matrix_spec("", {{"timeouts", "{handshake: 1s}"}})};
  ASSERT_NE(agent.port(), 0);
  const std::size_t fds_before = fd_count(agent.pid());

  // Closed at the 1 s timeout: never before it, and after it within a margin that grows under
  // the sanitizers.
  const double latest = 1.0 + scaled_seconds(2.0);
  {  // Connect and send nothing.
    const auto started = Clock::now();
    RawConnection raw(agent.port());
    ASSERT_TRUE(raw.connected());
    EXPECT_TRUE(raw.wait_closed(1s + scaled(4s)));
    const double waited = seconds_since(started);
    EXPECT_GE(waited, 0.9);
    EXPECT_LE(waited, latest);
  }
  {  // A real ClientHello, one byte per second.
    const std::string hello = client_hello();
    ASSERT_GT(hello.size(), 100U);
    const auto started = Clock::now();
    RawConnection raw(agent.port());
    ASSERT_TRUE(raw.connected());
    bool closed = false;
    std::size_t sent = 0;
    while (!closed && sent < hello.size() && seconds_since(started) < latest + 2.0) {
      raw.send(hello.substr(sent++, 1));
      closed = raw.wait_closed(1s);
    }
    const double waited = seconds_since(started);
    EXPECT_TRUE(closed) << "still open after " << sent << " bytes";
    EXPECT_GE(waited, 0.9);
    EXPECT_LE(waited, latest);
  }
  ASSERT_TRUE(wait_for_count(agent, "tls_failure", 2));
  for (const auto& r : agent.audit()) {
    if (r.value("event", "") == "tls_failure") {
      EXPECT_EQ(r["reason"], "handshake_timeout") << r.dump();
    }
  }
  // Every descriptor of the two connections is released.
  const auto deadline = Clock::now() + 3s;
  while (fd_count(agent.pid()) > fds_before && Clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  EXPECT_LE(fd_count(agent.pid()), fds_before);
  EXPECT_TRUE(attempt(agent, as("alice")).greeted());
}

// ============================================================================================
// A14 Handshake flood.

TEST(MatrixA, A14_LegitimateClientCompletesDuringHandshakeFlood) {
  constexpr std::size_t kFlood = 500;
  constexpr std::size_t kMaxHandshakes = 64;
  AgentProcess agent{matrix_spec("", {{"limits", "{max_handshakes: 64}"}})};
  ASSERT_NE(agent.port(), 0);
  ASSERT_TRUE(attempt(agent, as("alice")).greeted());  // warm up
  const long rss_before = status_kib(agent.pid(), "VmRSS");

  std::vector<std::unique_ptr<RawConnection>> flood;
  for (std::size_t i = 0; i < kFlood; ++i) {
    flood.push_back(std::make_unique<RawConnection>(agent.port()));
    ASSERT_TRUE(flood.back()->connected()) << i;
  }
  // Beyond the pre-auth cap the oldest pending handshakes are evicted (or, past twice the cap,
  // new ones refused), so the flood churns through its own slots: never more than 2x the cap
  // stay pending. The client sees the agent close them; the audit counts every one (below).
  const auto dropped = [&] {
    std::size_t n = 0;
    for (auto& c : flood) n += c->wait_closed(5ms) ? 1 : 0;
    return n;
  };
  const auto flood_deadline = Clock::now() + scaled(10s);
  while (dropped() < kFlood - 2 * kMaxHandshakes && Clock::now() < flood_deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_GE(dropped(), kFlood - 2 * kMaxHandshakes);

  // A legitimate client (retrying, as a real one would) gets in within the SLA: 2 s, scaled
  // under the sanitizers.
  const double sla = scaled_seconds(2.0);
  const auto started = Clock::now();
  bool greeted = false;
  int tries = 0;
  while (!greeted && seconds_since(started) < sla) {
    ++tries;
    greeted = attempt(agent, as("alice")).greeted();
  }
  EXPECT_TRUE(greeted) << "no session within " << sla << " s during the flood (" << tries
                       << " tries)";
  EXPECT_TRUE(process_alive(agent.pid()));
  const long rss_after = status_kib(agent.pid(), "VmRSS");
  EXPECT_LT(rss_after - rss_before, kMemoryBudgetKib)
      << "VmRSS " << rss_before << " -> " << rss_after << " KiB";
  flood.clear();

  // Every dropped connection is audited: the first ones in full, the rest counted in
  // `tls_failures_suppressed` (I8), written at the latest when the agent stops.
  EXPECT_EQ(agent.stop(), 0) << agent.log();
  std::uint64_t audited = count_events(agent, "connection_refused");
  for (const auto& r : agent.audit()) {
    if (r["event"] == "tls_failure" && r.value("reason", "").rfind("evicted", 0) == 0) ++audited;
    if (r["event"] == "tls_failures_suppressed") audited += r.value("failures", std::uint64_t{0});
  }
  EXPECT_GE(audited, kFlood - 2 * kMaxHandshakes);
}

// ============================================================================================
// A15 Renegotiation and KeyUpdate.

TEST(MatrixA, A15_RefusesTls12Renegotiation) {
  constexpr int kAttempts = 100;
  AgentProcess agent{matrix_spec(", min_version: \"1.2\"")};
  ClientOptions o = as("alice");
  o.max_version = TLS1_2_VERSION;
  for (int i = 0; i < kAttempts; ++i) {
    TlsClient c(o);
    ASSERT_EQ(c.connect("127.0.0.1", agent.port()), "");
    ASSERT_TRUE(c.read_line().has_value()) << c.last_error();
    // The agent answers with a no_renegotiation alert (or closes); never a new handshake.
    const std::string err = c.renegotiate(5s);
    EXPECT_NE(err, "") << "renegotiation #" << i << " was accepted";
    if (err.empty()) {
      EXPECT_NE(c.command("ping", 5s), std::vector<std::string>{"OK pong"});
    }
  }
  EXPECT_TRUE(process_alive(agent.pid()));
  auto c = std::make_unique<TlsClient>(o);
  ASSERT_EQ(c->connect("127.0.0.1", agent.port()), "");
  ASSERT_TRUE(c->read_line().has_value());
  EXPECT_EQ(c->command("ping"), std::vector<std::string>{"OK pong"});
}

TEST(MatrixA, A15_SurvivesKeyUpdateFloodWithBoundedCpu) {
  constexpr int kUpdates = 1000;
  AgentProcess agent{matrix_spec()};
  TlsClient c(as("alice"));
  ASSERT_EQ(c.connect("127.0.0.1", agent.port()), "");
  ASSERT_TRUE(c.read_line().has_value());
  ASSERT_EQ(c.version(), "TLSv1.3");
  const double cpu_before = cpu_seconds(agent.pid());
  int failed = 0;
  for (int i = 0; i < kUpdates && failed == 0; ++i) {
    if (!c.key_update(true, 5s).empty()) ++failed;
  }
  const double cpu_after = cpu_seconds(agent.pid());
  EXPECT_EQ(failed, 0) << c.last_error();
  if (failed == 0) {
    EXPECT_EQ(c.command("ping"), std::vector<std::string>{"OK pong"});
  }
  EXPECT_TRUE(process_alive(agent.pid()));
  // CPU flat: a budget for the work, scaled like time (the sanitizers instrument every access).
  EXPECT_LT(cpu_after - cpu_before, scaled_seconds(2.0))
      << "agent CPU for " << kUpdates << " KeyUpdates";
  EXPECT_TRUE(attempt(agent, as("alice")).greeted());
}

// ============================================================================================
// A16 Plaintext on the TLS port.

TEST(MatrixA, A16_ClosesPlaintextCommandWithoutRunningIt) {
  AgentProcess agent{matrix_spec()};
  RawConnection raw(agent.port());
  ASSERT_TRUE(raw.connected());
  ASSERT_TRUE(raw.send("tail -n 10 x\n"));
  EXPECT_TRUE(raw.wait_closed(5s));
  const json rec = agent.wait_for_audit("tls_failure");
  EXPECT_NE(rec.value("reason", ""), "handshake_timeout") << rec.dump();
  expect_no_command_records(agent);
  EXPECT_EQ(count_events(agent, "auth_ok"), 0U);
  EXPECT_EQ(child_count(agent.pid()), 0U);
}

}  // namespace
}  // namespace opsagent::testing
