// Authentication and admission: who may connect, and how many.

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include "tests/integration/test_policy.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/sanitizer.hpp"

namespace opsagent::testing {
namespace {

// In TLS 1.3 the client finishes its handshake before the server has judged the client
// certificate; the refusal arrives as an alert on the first read.
bool refused_after_handshake(TlsClient& c, std::uint16_t port) {
  const std::string err = c.connect("127.0.0.1", port);
  if (!err.empty()) return true;
  const auto line = c.read_line();
  return !line.has_value();
}

TEST(Auth, RefusesClientWithoutCertificate) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  TlsClient c(agent.client_options(""));
  EXPECT_TRUE(refused_after_handshake(c, agent.port()));
  const auto rec = agent.wait_for_audit("tls_failure");
  EXPECT_NE(rec["reason"].get<std::string>().find("certificate"), std::string::npos) << rec.dump();
  EXPECT_TRUE(agent.audit().size() > 0);
  for (const auto& r : agent.audit()) EXPECT_NE(r["event"], "command") << r.dump();
}

TEST(Auth, RefusesCertificateFromAnotherCa) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  ClientOptions o = agent.client_options("alice");
  o.cert = TestPki::get().rogue_cert("alice");
  o.key = TestPki::get().rogue_key("alice");
  TlsClient c(o);
  EXPECT_TRUE(refused_after_handshake(c, agent.port()));
  const auto rec = agent.wait_for_audit("tls_failure");
  EXPECT_TRUE(rec.contains("verify_error")) << rec.dump();
}

TEST(Auth, DisconnectsUnmappedIdentityWithError) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  TlsClient c(agent.client_options("mallory"));
  ASSERT_EQ(c.connect("127.0.0.1", agent.port()), "");
  const auto line = c.read_line();
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ(line->rfind("ERR denied certificate CN=mallory is not mapped to a principal", 0), 0U)
      << *line;
  EXPECT_TRUE(c.wait_closed());
  const auto rec = agent.wait_for_audit("auth_denied");
  EXPECT_EQ(rec["identity"]["cn"], "mallory");
  EXPECT_EQ(rec["identity"]["fingerprint_sha256"].get<std::string>().size(), 95U);
}

TEST(Auth, AuditsIdentityOnSuccess) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  auto c = agent.connect("ci-bot");
  const auto rec = agent.wait_for_audit("auth_ok", "principal", "ci-bot");
  EXPECT_EQ(rec["rule"], "identities[1]");
  EXPECT_EQ(rec["identity"]["san_uri"][0], "spiffe://opsagent.local/ci-bot");
  EXPECT_FALSE(rec["policy_version"].get<std::string>().empty());
}

TEST(Auth, RefusesTls12ByDefault) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  ClientOptions o = agent.client_options("alice");
  o.max_version = TLS1_2_VERSION;
  TlsClient c(o);
  EXPECT_NE(c.connect("127.0.0.1", agent.port()), "");
}

TEST(Auth, AcceptsTls12WhenConfigured) {
  const TestPki& pki = TestPki::get();
  AgentProcess agent{
      AgentSpec{kTestPolicy,
                {{"tls", "{certificate: " + pki.cert("server").string() +
                             ", private_key: " + pki.key("server").string() +
                             ", client_ca: " + pki.ca().string() + ", min_version: \"1.2\"}"}}}};
  ClientOptions o = agent.client_options("alice");
  o.max_version = TLS1_2_VERSION;
  TlsClient c(o);
  ASSERT_EQ(c.connect("127.0.0.1", agent.port()), "");
  ASSERT_TRUE(c.read_line().has_value());
  EXPECT_EQ(c.command("ping"), std::vector<std::string>{"OK pong"});
  EXPECT_STREQ(SSL_get_version(c.stream().native_handle()), "TLSv1.2");
}

TEST(Admission, RefusesClientsBeyondMaxClients) {
  AgentProcess agent{
      AgentSpec{kTestPolicy, {{"limits", "{max_clients: 2, max_clients_per_identity: 2}"}}}};
  auto a = agent.connect("alice");
  auto b = agent.connect("ci-bot");
  TlsClient third(agent.client_options("alice"));
  ASSERT_EQ(third.connect("127.0.0.1", agent.port()), "");
  const auto line = third.read_line();
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ(*line, "ERR busy too many connections (max_clients 2); bye");
  EXPECT_TRUE(third.wait_closed());
  agent.wait_for_audit("session_refused");
  // A slot freed is a slot usable again.
  EXPECT_EQ(a->command("exit"), std::vector<std::string>{"OK bye"});
  a.reset();
  agent.wait_for_audit("disconnect", "principal", "alice");
  auto again = agent.connect("alice");
  EXPECT_EQ(again->command("ping"), std::vector<std::string>{"OK pong"});
}

TEST(Admission, CapsClientsPerIdentityWithoutBlockingOthers) {
  AgentProcess agent{
      AgentSpec{kTestPolicy, {{"limits", "{max_clients: 10, max_clients_per_identity: 1}"}}}};
  auto a = agent.connect("alice");
  TlsClient second(agent.client_options("alice"));
  ASSERT_EQ(second.connect("127.0.0.1", agent.port()), "");
  const auto line = second.read_line();
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ(line->rfind("ERR busy too many connections for alice", 0), 0U) << *line;
  auto b = agent.connect("ci-bot");
  EXPECT_EQ(b->command("ping"), std::vector<std::string>{"OK pong"});
}

TEST(Admission, ClosesSilentConnectionsAtTheHandshakeTimeout) {
  AgentProcess agent{AgentSpec{kTestPolicy, {{"timeouts", "{handshake: 1s}"}}}};
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket raw(io);
  raw.connect({boost::asio::ip::make_address("127.0.0.1"), agent.port()});
  const auto started = std::chrono::steady_clock::now();
  char byte = 0;
  boost::system::error_code ec;
  boost::asio::read(raw, boost::asio::buffer(&byte, 1), ec);  // blocks until the agent closes
  const auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_TRUE(ec) << "the agent must close the connection";
  // Closed at the 1 s handshake timeout, with a margin that grows under the sanitizers.
  EXPECT_LT(waited, std::chrono::seconds(1) + scaled(std::chrono::seconds(4)));
  const auto rec = agent.wait_for_audit("tls_failure", "reason", "handshake_timeout");
  EXPECT_FALSE(rec.is_null());
}

TEST(Admission, RefusesPlaintextOnTheTlsPort) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket raw(io);
  raw.connect({boost::asio::ip::make_address("127.0.0.1"), agent.port()});
  boost::asio::write(raw, boost::asio::buffer(std::string("tail app 10\n")));
  char buf[256];
  boost::system::error_code ec;
  boost::asio::read(raw, boost::asio::buffer(buf), ec);
  EXPECT_TRUE(ec);
  agent.wait_for_audit("tls_failure");
  for (const auto& r : agent.audit()) EXPECT_NE(r["event"], "command") << r.dump();
}

}  // namespace
}  // namespace opsagent::testing
