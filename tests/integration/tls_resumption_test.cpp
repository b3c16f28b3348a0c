// TLS 1.3 session resumption against the real agent on 127.0.0.1: a second connection resumes
// from the agent's ticket, and a resumed session never outlives a revocation, a CA change or the
// certificate's expiry (verified again on every resumed handshake); no early data; always
// (EC)DHE; opsctl's session cache (second run resumes, pins still checked, files 0600).

#include <chrono>
#include <fstream>
#include <memory>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "tests/integration/opsctl_harness.hpp"
#include "tests/integration/test_policy.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/cert_factory.hpp"
#include "tests/support/sanitizer.hpp"
#include "tests/support/test_pki.hpp"
#include "tests/support/tls_client.hpp"
#include "tests/support/zoo_agent.hpp"

namespace opsagent::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace opsctl;
using namespace std::chrono_literals;

const std::string kPolicy = R"(
identities:
  - match: {cn: alice}
    principal: alice
    roles: [operator]
roles:
  operator:
    commands: [ping, whoami]
)";

// agent.yaml's `tls` with `client_ca` and `extra` (", crl: ...").
std::string tls_section(const fs::path& client_ca, const std::string& extra = "") {
  CertFactory& zoo = matrix_zoo();
  return "{certificate: " + zoo.cert("server").string() +
         ", private_key: " + zoo.key("server").string() + ", client_ca: " + client_ca.string() +
         extra + "}";
}

AgentSpec spec_with(const std::string& tls) {
  AgentSpec spec;
  spec.policy_yaml = kPolicy;
  spec.sections["tls"] = tls;
  return spec;
}

// Replaces the `tls:` line of the agent's agent.yaml and reloads; waits for the TLS reload.
void reload_tls(AgentProcess& agent, const std::string& tls, std::size_t nth_reload = 1) {
  const fs::path file = agent.dir() / "agent.yaml";
  std::ifstream in(file);
  std::string text, line;
  while (std::getline(in, line))
    text += (line.rfind("tls: ", 0) == 0 ? "tls: " + tls : line) + "\n";
  in.close();
  const fs::path tmp = agent.dir() / "agent.yaml.new";
  std::ofstream(tmp) << text;
  ::chmod(tmp.c_str(), 0600);
  fs::rename(tmp, file);
  ASSERT_TRUE(agent.signal(SIGHUP));
  for (std::size_t n = 0; n < nth_reload; ++n) {
    ASSERT_FALSE(agent.wait_for_audit("tls_reload").is_null()) << agent.log();
  }
}

// A first, full connection as `name`; its ticket.
std::shared_ptr<SSL_SESSION> ticket_of(const AgentProcess& agent, const std::string& name) {
  TlsClient c(zoo_client(name));
  EXPECT_EQ(c.connect("127.0.0.1", agent.port()), "");
  EXPECT_TRUE(c.read_line().has_value()) << c.last_error();  // the ticket came before
  EXPECT_FALSE(c.resumed());
  EXPECT_EQ(c.sessions_received(), 1);
  c.close();
  return c.session();
}

// What happened to a resumption attempt: greeted (and resumed) or refused.
struct Resumption {
  bool resumed = false;
  std::optional<std::string> greeting;
};

Resumption resume_as(const AgentProcess& agent, const std::string& name,
                     std::shared_ptr<SSL_SESSION> session) {
  ClientOptions o = zoo_client(name);
  o.resume = std::move(session);
  TlsClient c(o);
  Resumption r;
  if (!c.connect("127.0.0.1", agent.port()).empty()) return r;
  r.resumed = c.resumed();
  r.greeting = c.read_line();
  return r;
}

std::size_t count_records(const AgentProcess& agent, const std::string& event,
                          const std::string& field, const json& value) {
  std::size_t n = 0;
  for (const json& r : agent.audit()) n += r["event"] == event && r[field] == value ? 1 : 0;
  return n;
}

TEST(TlsResumption, SecondConnectionResumesAndSaysSoInTheAudit) {
  AgentProcess agent{spec_with(zoo_tls_section())};
  ASSERT_NE(agent.port(), 0);
  const auto ticket = ticket_of(agent, "alice");
  ASSERT_TRUE(ticket);
  EXPECT_EQ(SSL_SESSION_get_max_early_data(ticket.get()), 0U);  // never early data

  ClientOptions o = zoo_client("alice");
  o.resume = ticket;
  TlsClient c(o);
  ASSERT_EQ(c.connect("127.0.0.1", agent.port()), "");
  EXPECT_TRUE(c.resumed());
  ASSERT_TRUE(c.read_line().has_value()) << c.last_error();
  EXPECT_EQ(c.command("ping"), std::vector<std::string>{"OK pong"});
  EXPECT_EQ(c.command("whoami").back().rfind("OK", 0), 0U);
  EXPECT_FALSE(c.group().empty());  // (EC)DHE with the PSK
  c.close();

  EXPECT_EQ(count_records(agent, "connection_accepted", "tls_resumed", false), 1U);
  EXPECT_EQ(count_records(agent, "connection_accepted", "tls_resumed", true), 1U);
  const json ok = agent.wait_for_audit("auth_ok", "tls_resumed", true);
  ASSERT_FALSE(ok.is_null()) << agent.log();
  EXPECT_EQ(ok["principal"], "alice");
}

// A ticket is the id of a session kept in the agent's memory, taken out when used: a copy of a
// ticket that has resumed is refused (a full handshake follows), and the resumed connection
// brings a fresh ticket, which resumes in turn.
TEST(TlsResumption, ATicketResumesOnceAndTheResumedConnectionBringsAFreshOne) {
  AgentProcess agent{spec_with(zoo_tls_section())};
  const auto ticket = ticket_of(agent, "alice");
  ClientOptions o = zoo_client("alice");
  o.resume = ticket;
  TlsClient first(o);
  ASSERT_EQ(first.connect("127.0.0.1", agent.port()), "");
  EXPECT_TRUE(first.resumed());
  ASSERT_TRUE(first.read_line().has_value()) << first.last_error();
  EXPECT_EQ(first.sessions_received(), 1);
  const auto fresh = first.session();
  first.close();

  const Resumption again = resume_as(agent, "alice", ticket);
  EXPECT_FALSE(again.resumed);
  EXPECT_TRUE(again.greeting.has_value());  // a full handshake, greeted as always
  EXPECT_TRUE(resume_as(agent, "alice", fresh).resumed);
}

// `session_cache_size` bounds what the agent keeps: the oldest session makes room.
TEST(TlsResumption, TheOldestSessionMakesRoomInAFullStore) {
  AgentProcess agent{spec_with(zoo_tls_section(", session_cache_size: 1"))};
  const auto older = ticket_of(agent, "alice");
  const auto newer = ticket_of(agent, "alice");
  // (Each connection brings a new session that pushes the one before out: newest first.)
  EXPECT_TRUE(resume_as(agent, "alice", newer).resumed);
  EXPECT_FALSE(resume_as(agent, "alice", older).resumed);
}

TEST(TlsResumption, AClientOfferingPskWithoutDheStillGetsEcdhe) {
  AgentProcess agent{spec_with(zoo_tls_section())};
  ClientOptions o = zoo_client("alice");
  o.allow_no_dhe = true;
  o.resume = ticket_of(agent, "alice");
  TlsClient c(o);
  ASSERT_EQ(c.connect("127.0.0.1", agent.port()), "");
  EXPECT_TRUE(c.resumed());
  EXPECT_FALSE(c.group().empty()) << "psk_ke (no key exchange) was accepted";
  ASSERT_TRUE(c.read_line().has_value()) << c.last_error();
}

TEST(TlsResumption, TicketsSurviveAReload) {
  AgentProcess agent{spec_with(zoo_tls_section())};
  const auto ticket = ticket_of(agent, "alice");
  reload_tls(agent, zoo_tls_section());
  const Resumption r = resume_as(agent, "alice", ticket);
  EXPECT_TRUE(r.resumed);
  EXPECT_TRUE(r.greeting.has_value());
}

TEST(TlsResumption, ARevokedClientCannotResumeAfterTheCrlIsReloaded) {
  CertFactory& zoo = matrix_zoo();
  const fs::path crl = zoo.write_crl("resume-revoked", "root", CrlSpec{});
  AgentProcess agent{spec_with(zoo_tls_section(", crl: " + crl.string()))};
  const auto revocable = ticket_of(agent, "revocable");
  const auto alice = ticket_of(agent, "alice");
  // Before the revocation (another ticket: OpenSSL's client offers a TLS 1.3 ticket once).
  ASSERT_TRUE(resume_as(agent, "revocable", ticket_of(agent, "revocable")).resumed);

  zoo.write_crl("resume-revoked", "root", CrlSpec{{"revocable"}});
  reload_tls(agent, zoo_tls_section(", crl: " + crl.string()));

  const Resumption refused = resume_as(agent, "revocable", revocable);
  EXPECT_FALSE(refused.greeting.has_value()) << *refused.greeting;
  const json failure = agent.wait_for_audit("tls_failure", "verify_code", X509_V_ERR_CERT_REVOKED);
  ASSERT_FALSE(failure.is_null()) << agent.log();
  EXPECT_NE(failure["reason"].get<std::string>().find("resumed session refused"),
            std::string::npos);
  EXPECT_EQ(agent.log().find("revocable authenticated"),
            agent.log().rfind("revocable authenticated"));
  // Others still resume.
  const Resumption ok = resume_as(agent, "alice", alice);
  EXPECT_TRUE(ok.resumed);
  EXPECT_TRUE(ok.greeting.has_value());
}

TEST(TlsResumption, ReplacingTheClientCaEndsResumptionOfTheOldCasClients) {
  CertFactory& zoo = matrix_zoo();
  AgentProcess agent{spec_with(tls_section(zoo.cert("root")))};
  const auto alice = ticket_of(agent, "alice");
  reload_tls(agent, tls_section(zoo.cert("rogue-ca")));

  const Resumption refused = resume_as(agent, "alice", alice);
  EXPECT_FALSE(refused.greeting.has_value()) << *refused.greeting;
  const json failure = agent.wait_for_audit("tls_failure");
  ASSERT_FALSE(failure.is_null()) << agent.log();
  EXPECT_EQ(failure["verify_code"], X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  EXPECT_NE(failure["reason"].get<std::string>().find("resumed session refused"),
            std::string::npos);
}

TEST(TlsResumption, ACertificateThatExpiredSinceItsTicketCannotResume) {
  CertFactory& zoo = matrix_zoo();
  // The certificate is issued once the agent runs, and lives long enough for a slow (sanitizer)
  // build to make its first connection; the test then waits until it has expired.
  AgentProcess agent{spec_with(zoo_tls_section())};
  const auto lifetime = std::chrono::duration_cast<std::chrono::seconds>(scaled(2s));
  CertSpec spec = client_spec("alice");
  spec.not_after = static_cast<long>(lifetime.count());  // seconds from now
  const auto expires = std::chrono::steady_clock::now() + lifetime;
  zoo.issue("resume-short-lived", spec, "root");
  const auto ticket = ticket_of(agent, "resume-short-lived");
  ASSERT_TRUE(ticket);
  std::this_thread::sleep_until(expires + 1500ms);  // the expiry is the behaviour

  const Resumption refused = resume_as(agent, "resume-short-lived", ticket);
  EXPECT_FALSE(refused.greeting.has_value()) << *refused.greeting;
  const json failure =
      agent.wait_for_audit("tls_failure", "verify_code", X509_V_ERR_CERT_HAS_EXPIRED);
  ASSERT_FALSE(failure.is_null()) << agent.log();
  EXPECT_NE(failure["reason"].get<std::string>().find("resumed session refused"),
            std::string::npos);
}

TEST(TlsResumption, AResumedSessionIsMappedWithTheCasOfItsChain) {
  // A rule on the intermediate CA's fingerprint: a resumed session has no chain built by the
  // handshake, the re-verification's chain is used.
  CertFactory& zoo = matrix_zoo();
  AgentSpec spec = spec_with(zoo_tls_section());
  spec.policy_yaml = "identities:\n  - match: {cn: alice, ca_fingerprint: \"" +
                     zoo.fingerprint_sha256("inter") +
                     "\"}\n    principal: alice\n    roles: [operator]\nroles:\n  operator:\n"
                     "    commands: [ping]\n";
  AgentProcess agent{spec};
  TlsClient first(zoo_client("alice-via-inter", {"inter"}));
  ASSERT_EQ(first.connect("127.0.0.1", agent.port()), "");
  ASSERT_TRUE(first.read_line().has_value()) << first.last_error();
  ClientOptions o = zoo_client("alice-via-inter", {"inter"});
  o.resume = first.session();
  TlsClient c(o);
  ASSERT_EQ(c.connect("127.0.0.1", agent.port()), "");
  EXPECT_TRUE(c.resumed());
  const auto greeting = c.read_line();
  ASSERT_TRUE(greeting.has_value()) << c.last_error();
  EXPECT_EQ(greeting->rfind("OK", 0), 0U) << *greeting;
  EXPECT_EQ(c.command("ping"), std::vector<std::string>{"OK pong"});
}

TEST(TlsResumption, TicketsOffMeansNoTicketsAndFullHandshakes) {
  AgentProcess agent{spec_with(zoo_tls_section(", session_tickets: false"))};
  TlsClient c(zoo_client("alice"));
  ASSERT_EQ(c.connect("127.0.0.1", agent.port()), "");
  ASSERT_TRUE(c.read_line().has_value()) << c.last_error();  // tickets would arrive by now
  EXPECT_EQ(c.command("ping"), std::vector<std::string>{"OK pong"});
  EXPECT_EQ(c.sessions_received(), 0);
  EXPECT_FALSE(c.resumed());
  // A ticket of another agent (tickets on) is not accepted: a full handshake.
  AgentProcess other{spec_with(zoo_tls_section())};
  const Resumption r = resume_as(agent, "alice", ticket_of(other, "alice"));
  EXPECT_FALSE(r.resumed);
  EXPECT_TRUE(r.greeting.has_value());
}

TEST(TlsResumption, AClientThatAsksForNoTicketGetsNoneAndOthersStillDo) {
  AgentProcess agent{spec_with(zoo_tls_section())};
  ClientOptions o = zoo_client("alice");
  o.no_ticket = true;  // no session_ticket extension in the ClientHello
  TlsClient c(o);
  ASSERT_EQ(c.connect("127.0.0.1", agent.port()), "");
  ASSERT_TRUE(c.read_line().has_value()) << c.last_error();  // a ticket would arrive by now
  EXPECT_EQ(c.command("ping"), std::vector<std::string>{"OK pong"});
  EXPECT_EQ(c.sessions_received(), 0);
  c.close();
  // The setting is per connection: the next client asking for one gets it, and resumes.
  const auto ticket = ticket_of(agent, "alice");
  ASSERT_TRUE(ticket);
  EXPECT_TRUE(resume_as(agent, "alice", ticket).resumed);
}

// Blocking OpenSSL on a plain socket: Asio's stream cannot send early data.
TEST(TlsResumption, EarlyDataIsNeverAccepted) {
  AgentProcess agent{spec_with(zoo_tls_section())};
  const auto ticket = ticket_of(agent, "alice");
  ASSERT_TRUE(ticket);
  // Claim the ticket allows early data, as a hostile client could.
  std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)> forged(SSL_SESSION_dup(ticket.get()),
                                                                   &SSL_SESSION_free);
  ASSERT_EQ(SSL_SESSION_set_max_early_data(forged.get(), 16384), 1);

  const ClientOptions o = zoo_client("alice");
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        &SSL_CTX_free);
  ASSERT_EQ(SSL_CTX_use_certificate_chain_file(ctx.get(), o.cert.c_str()), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey_file(ctx.get(), o.key.c_str(), SSL_FILETYPE_PEM), 1);
  ASSERT_EQ(SSL_CTX_load_verify_locations(ctx.get(), o.ca.c_str(), nullptr), 1);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(agent.port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const timeval limit{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), &SSL_free);
  SSL_set_fd(ssl.get(), fd);
  ASSERT_EQ(SSL_set_session(ssl.get(), forged.get()), 1);
  const std::string early = "ping\n";
  std::size_t written = 0;
  ASSERT_EQ(SSL_write_early_data(ssl.get(), early.data(), early.size(), &written), 1);
  SSL_connect(ssl.get());
  EXPECT_NE(SSL_get_early_data_status(ssl.get()), SSL_EARLY_DATA_ACCEPTED);
  // The agent reads no early data (recv_max_early_data 0): it ends the connection rather than
  // skip it. Whatever arrives is never an answer to the early `ping`.
  std::string received;
  char buf[512];
  for (int n = 0; (n = SSL_read(ssl.get(), buf, sizeof buf)) > 0;) received.append(buf, n);
  EXPECT_EQ(received.find("pong"), std::string::npos) << received;
  ::close(fd);
  for (const json& r : agent.audit()) EXPECT_NE(r["event"], "command") << r.dump();
}

// ---- opsctl's session cache ------------------------------------------------------------------

std::size_t resumed_connections(const AgentProcess& agent, bool resumed) {
  return count_records(agent, "connection_accepted", "tls_resumed", resumed);
}

TEST(OpsctlResumption, TheSecondRunResumesFromTheCacheWhichOnlyItsOwnerCanRead) {
  AgentProcess agent{AgentSpec{kTestPolicy}};
  const fs::path cache = make_temp_dir("opsctl-cache");
  const std::map<std::string, std::string> env = {{"XDG_CACHE_HOME", cache.string()}};
  const std::string host = "127.0.0.1:" + std::to_string(agent.port());
  auto r = run_opsctl({host, "ping"}, env);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(resumed_connections(agent, false), 1U);
  r = run_opsctl({host, "ping"}, env);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(resumed_connections(agent, true), 1U) << agent.log();

  const fs::path dir = cache / "opsctl" / "sessions";
  struct stat st {};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700U);
  ASSERT_EQ(::stat((cache / "opsctl").c_str(), &st), 0);
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    ++files;
    ASSERT_EQ(::stat(e.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600U) << e.path();
  }
  EXPECT_EQ(files, 1U);

  // --no-resume: a full handshake, nothing offered.
  r = run_opsctl({"--no-resume", host, "ping"}, env);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(resumed_connections(agent, false), 2U);
  EXPECT_EQ(resumed_connections(agent, true), 1U);
  fs::remove_all(cache);
}

// A ticket resumes once, so each host keeps its own, also when several inventory names lead to
// one agent; each run leaves the fresh tickets it got (files rewritten in place) for the next.
TEST(OpsctlResumption, EachHostKeepsItsOwnTicketAndEveryLaterRunResumesThemAll) {
  AgentProcess agent{AgentSpec{kTestPolicy}};
  const fs::path cache = make_temp_dir("opsctl-cache");
  const std::map<std::string, std::string> env = {{"XDG_CACHE_HOME", cache.string()}};
  const fs::path inventory = cache / "inventory.yaml";
  std::ofstream(inventory) << "defaults: {port: " << agent.port()
                           << "}\nhosts:\n  a: {address: 127.0.0.1}\n  b: {address: 127.0.0.1}\n"
                           << "  c: {address: 127.0.0.1}\n";
  for (int run = 1; run <= 3; ++run) {
    const auto r = run_opsctl({"-i", inventory.string(), "all", "ping"}, env);
    ASSERT_EQ(r.exit_code, 0) << describe(r);
  }
  EXPECT_EQ(resumed_connections(agent, false), 3U);
  EXPECT_EQ(resumed_connections(agent, true), 6U) << agent.log();
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(cache / "opsctl" / "sessions")) {
    ++files;
  }
  EXPECT_EQ(files, 3U);
  fs::remove_all(cache);
}

TEST(OpsctlResumption, APinMismatchIsRefusedAlsoWhenTheSessionResumes) {
  AgentProcess agent{AgentSpec{kTestPolicy}};
  std::string fp;
  ASSERT_EQ(run_shell("openssl x509 -in " + TestPki::get().cert("server").string() +
                          " -noout -fingerprint -sha256 | sed 's/.*=//'",
                      &fp),
            0);
  while (!fp.empty() && (fp.back() == '\n' || fp.back() == '\r')) fp.pop_back();
  const fs::path cache = make_temp_dir("opsctl-cache");
  const std::map<std::string, std::string> env = {{"XDG_CACHE_HOME", cache.string()}};
  const auto inventory = [&](const std::string& pin) {
    const fs::path file = cache / "inventory.yaml";
    std::ofstream(file) << "hosts:\n  a: {address: 127.0.0.1, port: " << agent.port()
                        << ", fingerprint: \"" << pin << "\"}\n";
    return file.string();
  };
  auto r = run_opsctl({"-i", inventory(fp), "a", "ping"}, env);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  r = run_opsctl({"-i", inventory("sha256:" + std::string(64, '0')), "a", "ping"}, env);
  EXPECT_EQ(r.exit_code, 67) << describe(r);
  EXPECT_TRUE(contains(r.err, "is not the pinned 00:00:")) << r.err;
  EXPECT_EQ(resumed_connections(agent, true), 1U) << "the second run did resume";
  fs::remove_all(cache);
}

}  // namespace
}  // namespace opsagent::testing
