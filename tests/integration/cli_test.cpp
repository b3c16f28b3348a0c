// The agent as operators meet it: openssl s_client at a terminal, and start-up errors.

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/integration/test_policy.hpp"
#include "tests/support/agent_process.hpp"

namespace opsagent::testing {
namespace {
namespace fs = std::filesystem;

TEST(OpensslSClient, DrivesTheAgentWithQuiet) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  const TestPki& pki = TestPki::get();
  std::string out;
  const std::string cmd =
      "printf 'ping\\r\\nwhoami\\nexit\\n' | timeout 20 openssl s_client -quiet -connect "
      "127.0.0.1:" +
      std::to_string(agent.port()) + " -cert " + pki.cert("alice").string() + " -key " +
      pki.key("alice").string() + " -CAfile " + pki.ca().string() +
      " -verify_return_error -verify_hostname localhost 2>/dev/null";
  EXPECT_EQ(run_shell(cmd, &out), 0) << out;
  EXPECT_NE(out.find("OK opsagent "), std::string::npos) << out;
  EXPECT_NE(out.find("OK pong\n"), std::string::npos) << out;
  EXPECT_NE(out.find("| principal: alice\n"), std::string::npos) << out;
  EXPECT_NE(out.find("OK bye\n"), std::string::npos) << out;
}

TEST(OpensslSClient, WithoutCertificateIsRefused) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  std::string out;
  const std::string cmd =
      "printf 'ping\\n' | timeout 20 openssl s_client -quiet -connect 127.0.0.1:" +
      std::to_string(agent.port()) + " -CAfile " + TestPki::get().ca().string() + " 2>&1";
  run_shell(cmd, &out);
  EXPECT_EQ(out.find("OK pong"), std::string::npos) << out;
  agent.wait_for_audit("tls_failure");
}

class StartupErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/opsagent-cfg-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
    const TestPki& pki = TestPki::get();
    std::ofstream(dir / "policy.yaml") << "identities: []\n";
    base =
        "listen: [\"127.0.0.1:0\"]\n"
        "tls: {certificate: " +
        pki.cert("server").string() + ", private_key: " + pki.key("server").string() +
        ", client_ca: " + pki.ca().string() +
        "}\n"
        "audit: {path: " +
        (dir / "audit.jsonl").string() +
        "}\n"
        "policy: " +
        (dir / "policy.yaml").string() + "\n";
  }
  void TearDown() override { fs::remove_all(dir); }
  RunResult run_with(const std::string& config) {
    std::ofstream(dir / "agent.yaml") << config;
    return run_agent_binary({"--config", (dir / "agent.yaml").string()});
  }
  fs::path dir;
  std::string base;
};

TEST_F(StartupErrors, UnknownKeyNamesFileLineAndKey) {
  const auto r = run_with(base + "limits:\n  max_clients: 4\n  max_clinets: 5\n");
  EXPECT_EQ(r.exit_code, 78) << r.output;
  EXPECT_NE(r.output.find("agent.yaml:7:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("max_clinets"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("listening on"), std::string::npos) << r.output;
}

TEST_F(StartupErrors, MalformedYamlIsReportedWithItsPosition) {
  const auto r = run_with(base + "limits: {max_clients: 4\n");
  EXPECT_EQ(r.exit_code, 78) << r.output;
  EXPECT_NE(r.output.find("agent.yaml:"), std::string::npos) << r.output;
}

TEST_F(StartupErrors, MissingCertificateFileIsNamed) {
  std::string config = base;
  const std::string server_crt = TestPki::get().cert("server").string();
  config.replace(config.find(server_crt), server_crt.size(), (dir / "nope.crt").string());
  const auto r = run_with(config);
  EXPECT_EQ(r.exit_code, 78) << r.output;
  EXPECT_NE(r.output.find("nope.crt"), std::string::npos) << r.output;
}

TEST_F(StartupErrors, CheckConfigValidatesAndExits) {
  std::ofstream(dir / "agent.yaml") << base;
  const auto r = run_agent_binary({"--config", (dir / "agent.yaml").string(), "--check-config"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("configuration OK"), std::string::npos) << r.output;
}

TEST_F(StartupErrors, MissingConfigFlagIsAUsageError) {
  const auto r = run_agent_binary({});
  EXPECT_EQ(r.exit_code, 64) << r.output;
  EXPECT_NE(r.output.find("--config FILE is required"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace opsagent::testing
