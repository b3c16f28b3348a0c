// The Prometheus endpoint of the real agent: scraped after real traffic (commands allowed,
// denied and rejected, a failed handshake, an unmapped certificate, a reload) and asserted
// value by value; what it refuses to serve; and its configuration rules.

#include <csignal>
#include <fstream>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/integration/test_policy.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/metrics_probe.hpp"
#include "tests/support/raw_connection.hpp"
#include "tests/support/sanitizer.hpp"
#include "tests/support/test_pki.hpp"

namespace opsagent::testing {
namespace {

const std::string kMetricsOn = "{listen: \"127.0.0.1:0\"}";

TEST(Metrics, ScrapedAfterRealTrafficCountsWhatHappened) {
  AgentProcess agent{AgentSpec{kTestPolicy, {{"metrics", kMetricsOn}}}};
  const std::uint16_t port = metrics_port(agent);
  ASSERT_NE(port, 0) << agent.log();

  auto alice = agent.connect("alice");
  auto bot = agent.connect("ci-bot");
  ASSERT_EQ(alice->command("ping"), std::vector<std::string>{"OK pong"});
  ASSERT_EQ(alice->command("ping"), std::vector<std::string>{"OK pong"});
  const auto ran = alice->command("run echo-args hello");
  ASSERT_EQ(ran.back().rfind("OK done exit=0", 0), 0U) << ran.back();
  ASSERT_EQ(bot->command("run echo-args x").front().rfind("ERR denied", 0), 0U);
  ASSERT_EQ(alice->command("reboot").front().rfind("ERR unknown", 0), 0U);

  {  // a certificate of another CA: the handshake fails on the certificate
    ClientOptions rogue = agent.client_options("alice");
    rogue.cert = TestPki::get().rogue_cert("alice");
    rogue.key = TestPki::get().rogue_key("alice");
    TlsClient c(rogue);
    const std::string error = c.connect("127.0.0.1", agent.port());
    if (error.empty()) {
      EXPECT_TRUE(c.wait_closed()) << "TLS 1.3: refused after the client's Finished";
    }
    agent.wait_for_audit("tls_failure");
  }
  {  // a valid certificate no identity rule maps
    TlsClient c(agent.client_options("mallory"));
    ASSERT_EQ(c.connect("127.0.0.1", agent.port()), "");
    EXPECT_TRUE(c.wait_closed());
    agent.wait_for_audit("auth_denied");
  }
  ASSERT_TRUE(agent.signal(SIGHUP));
  const auto reload = agent.wait_for_audit("policy_reload");
  const std::string version = reload.value("policy_version", "");
  agent.wait_for_audit("tls_reload");

  const std::string response = scrape(port);
  ASSERT_EQ(response.rfind("HTTP/1.1 200 OK\r\n", 0), 0U) << response;
  EXPECT_NE(response.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            std::string::npos)
      << response;
  const std::string body = response.substr(response.find("\r\n\r\n") + 3);

  EXPECT_EQ(sample(body, R"(opsagent_commands_total{verb="ping",decision="allow"})"), 2);
  EXPECT_EQ(sample(body, R"(opsagent_commands_total{verb="run",decision="allow"})"), 1);
  EXPECT_EQ(sample(body, R"(opsagent_commands_total{verb="run",decision="deny"})"), 1);
  EXPECT_EQ(sample(body, R"(opsagent_commands_total{verb="unknown",decision="reject"})"), 1);
  EXPECT_EQ(sample(body, R"(opsagent_commands_total{verb="tail",decision="allow"})"), 0);
  EXPECT_EQ(sample(body, R"(opsagent_command_duration_seconds_count{verb="ping"})"), 2);
  EXPECT_EQ(sample(body, R"(opsagent_command_duration_seconds_bucket{verb="run",le="+Inf"})"), 2)
      << "every line is timed, the denied one too";
  EXPECT_EQ(sample(body, R"(opsagent_handshake_failures_total{reason="certificate"})"), 1);
  EXPECT_EQ(sample(body, R"(opsagent_handshake_failures_total{reason="timeout"})"), 0);
  EXPECT_EQ(sample(body, R"(opsagent_connection_refusals_total{reason="unmapped"})"), 1);
  EXPECT_EQ(sample(body, R"(opsagent_connections_total)"), 4) << "alice, ci-bot, rogue, mallory";
  EXPECT_EQ(sample(body, R"(opsagent_connections_active)"), 2) << "alice and ci-bot";
  EXPECT_EQ(sample(body, R"(opsagent_children_active)"), 0);
  EXPECT_EQ(sample(body, R"(opsagent_blocking_pool_queue_depth)"), 0);
  EXPECT_EQ(sample(body, R"(opsagent_audit_write_failures_total)"), 0);
  EXPECT_EQ(sample(body, R"(opsagent_reloads_total{what="policy",result="success"})"), 1);
  EXPECT_EQ(sample(body, R"(opsagent_reloads_total{what="config",result="success"})"), 1);
  EXPECT_EQ(sample(body, R"(opsagent_reloads_total{what="policy",result="failure"})"), 0);
  EXPECT_EQ(sample(body, "opsagent_policy_info{version=\"" + version + "\"}"), 1) << body;
  // "OK pong\n" twice, the run's output and final line, the two ERR lines: at least 16 bytes.
  EXPECT_GT(sample(body, "opsagent_reply_bytes_total"), 16);
  EXPECT_NE(body.find("# TYPE opsagent_command_duration_seconds histogram\n"), std::string::npos);

  // A failed reload is counted as such.
  { std::ofstream(agent.dir() / "policy.yaml", std::ios::app) << "bogus: [\n"; }
  ASSERT_TRUE(agent.signal(SIGHUP));
  agent.wait_for_audit("policy_reload_failed");
  const std::string after = scrape(port);
  EXPECT_EQ(sample(after, R"(opsagent_reloads_total{what="policy",result="failure"})"), 1) << after;
}

TEST(Metrics, ServesOnlyGetMetricsAndBoundsRequests) {
  AgentProcess agent{AgentSpec{kTestPolicy, {{"metrics", kMetricsOn}}}};
  const std::uint16_t port = metrics_port(agent);
  ASSERT_NE(port, 0) << agent.log();
  EXPECT_EQ(http_exchange(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").rfind("HTTP/1.1 404", 0), 0U);
  EXPECT_EQ(http_exchange(port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                .rfind("HTTP/1.1 405", 0),
            0U);
  const std::string huge =
      "GET /metrics HTTP/1.1\r\nX: " + std::string(64 * 1024, 'a') + "\r\n\r\n";
  EXPECT_EQ(http_exchange(port, huge).rfind("HTTP/1.1 400", 0), 0U) << "header over 8 KiB";
  EXPECT_EQ(http_exchange(port, "not http at all\r\n\r\n").rfind("HTTP/1.1 400", 0), 0U);
  // The agent's own port does not speak HTTP, and the metrics port still answers afterwards.
  EXPECT_EQ(scrape(port).rfind("HTTP/1.1 200 OK", 0), 0U);
  // A silent client is dropped after the request timeout (5 s), not held forever.
  RawConnection silent(port);
  ASSERT_TRUE(silent.connected());
  EXPECT_TRUE(silent.wait_closed(5s + scaled(10s)));
}

TEST(Metrics, OverMutualTlsNeedsAClientCertificateOfTheCa) {
  AgentProcess agent{AgentSpec{kTestPolicy, {{"metrics", "{listen: \"127.0.0.1:0\", tls: true}"}}}};
  const std::uint16_t port = metrics_port(agent);
  ASSERT_NE(port, 0) << agent.log();
  TlsClient c(agent.client_options("alice"));
  ASSERT_EQ(c.connect("127.0.0.1", port), "");
  ASSERT_TRUE(c.write("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  const auto status = c.read_line();
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, "HTTP/1.1 200 OK\r");
  bool saw_policy = false;
  for (int i = 0; i < 1000; ++i) {
    const auto l = c.read_line();
    if (!l) break;
    if (l->rfind("opsagent_policy_info{", 0) == 0) saw_policy = true;
  }
  EXPECT_TRUE(saw_policy);

  ClientOptions none = agent.client_options("alice");
  none.cert.clear();
  none.key.clear();
  TlsClient anonymous(none);
  const std::string error = anonymous.connect("127.0.0.1", port);
  if (error.empty()) {
    anonymous.write("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    EXPECT_FALSE(anonymous.read_line().has_value()) << "no certificate, no metrics";
  }
  // Plain HTTP on the TLS port gets nothing either.
  EXPECT_EQ(scrape(port).find("opsagent_"), std::string::npos);
}

TEST(Metrics, AreOffByDefaultAndRefuseANonLoopbackAddressWithoutTls) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  EXPECT_EQ(metrics_port(agent, 0ms), 0);
  EXPECT_EQ(agent.log().find("metrics"), std::string::npos);

  const std::string config = (agent.dir() / "agent.yaml").string();
  { std::ofstream(config, std::ios::app) << "metrics: {listen: \"0.0.0.0:9100\"}\n"; }
  const auto r = run_agent_binary({"--config", config, "--check-config"});
  EXPECT_EQ(r.exit_code, 78) << r.output;
  EXPECT_NE(r.output.find("metrics.listen: 0.0.0.0 is not a loopback address"), std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace opsagent::testing
