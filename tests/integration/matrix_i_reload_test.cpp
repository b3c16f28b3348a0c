// SECURITY-MATRIX I1 and I2: what a SIGHUP changes for sessions that are already open.
// I1: the policy is applied again to every open session (unmapped identities are ended, changed
// roles apply from the next command). I2: agent.yaml itself is re-read; what can change live
// changes, a key that needs a restart fails the whole file and nothing of it is applied.

#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <openssl/x509_vfy.h>

#include "tests/integration/test_policy.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/cert_factory.hpp"
#include "tests/support/zoo_agent.hpp"

namespace opsagent::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

// Replaces `file` atomically (write beside + rename), as configuration tooling does.
void replace_file(const fs::path& file, const std::string& text) {
  const fs::path tmp = file.string() + ".new";
  std::ofstream(tmp) << text;
  fs::rename(tmp, file);
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// kTestPolicy as the agent sees it, with `from` replaced by `to`.
std::string edited_policy(const AgentProcess& agent, const std::string& from,
                          const std::string& to) {
  std::string text = kTestPolicy;
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  text = std::regex_replace(text, std::regex("@DIR@"), agent.dir().string());
  return std::regex_replace(text, std::regex("@HELPERS@"), std::string(OPSAGENT_HELPER_DIR));
}

// Replaces one top-level section of the running agent's agent.yaml.
void edit_config(const AgentProcess& agent, const std::string& key, const std::string& value) {
  const fs::path file = agent.dir() / "agent.yaml";
  std::string text = read_text(file);
  const std::regex line("(^|\n)" + key + ": [^\n]*");
  ASSERT_TRUE(std::regex_search(text, line)) << key << " not in\n" << text;
  text = std::regex_replace(text, line, "$1" + key + ": " + value);
  replace_file(file, text);
}

const std::string kFourClients = "{max_clients: 4, max_clients_per_identity: 2}";

const std::string kAliceRule =
    "  - match: {cn: alice}\n    principal: alice\n    roles: [operator]\n";

TEST(MatrixI, I1_AnIdentityRemovedByAReloadEndsItsOpenSession) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  auto alice = agent.connect("alice");
  auto reader = agent.connect("ci-bot");
  ASSERT_EQ(alice->command("ping"), std::vector<std::string>{"OK pong"});

  replace_file(agent.dir() / "policy.yaml", edited_policy(agent, kAliceRule, ""));
  ASSERT_TRUE(agent.signal(SIGHUP));
  const json reloaded = agent.wait_for_audit("policy_reload");
  ASSERT_FALSE(reloaded.is_null()) << agent.log();

  const json revoked = agent.wait_for_audit("session_revoked", "principal", "alice");
  ASSERT_FALSE(revoked.is_null()) << agent.log();
  EXPECT_EQ(revoked["policy_version"], reloaded["policy_version"]);
  EXPECT_NE(revoked["reason"].get<std::string>().find("no longer maps"), std::string::npos)
      << revoked.dump();
  const auto bye = alice->read_line();
  ASSERT_TRUE(bye.has_value()) << alice->last_error();
  EXPECT_EQ(bye->rfind("ERR denied certificate no longer mapped", 0), 0U) << *bye;
  EXPECT_TRUE(alice->wait_closed(5s));
  EXPECT_FALSE(agent.wait_for_audit("disconnect", "reason", "identity_unmapped").is_null());

  // Everyone else carries on; a new connection as alice is refused as before.
  EXPECT_EQ(reader->command("ping"), std::vector<std::string>{"OK pong"});
  std::string greeting;
  TlsClient again(agent.client_options("alice"));
  ASSERT_EQ(again.connect("127.0.0.1", agent.port()), "");
  const auto refused = again.read_line();
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->rfind("ERR denied", 0), 0U) << *refused;
}

TEST(MatrixI, I1_NarrowedRolesApplyFromTheSessionsNextCommand) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  auto alice = agent.connect("alice");
  const auto before = alice->command("run echo-args x");
  ASSERT_FALSE(before.empty());
  ASSERT_EQ(before.back().rfind("OK done", 0), 0U) << before.back();

  replace_file(
      agent.dir() / "policy.yaml",
      edited_policy(agent, kAliceRule,
                    "  - match: {cn: alice}\n    principal: alice\n    roles: [reader]\n"));
  ASSERT_TRUE(agent.signal(SIGHUP));
  const json changed = agent.wait_for_audit("session_roles_changed", "principal", "alice");
  ASSERT_FALSE(changed.is_null()) << agent.log();
  EXPECT_EQ(changed["old_roles"], json::array({"operator"}));
  EXPECT_EQ(changed["roles"], json::array({"reader"}));

  const auto after = alice->command("run echo-args x");
  ASSERT_EQ(after.size(), 1U);
  EXPECT_EQ(after[0].rfind("ERR denied", 0), 0U) << after[0];
  json decision;
  for (const auto& r : agent.audit()) {
    if (r["event"] == "command" && r["command"] == "run") decision = r;
  }
  EXPECT_EQ(decision["decision"], "deny");
  EXPECT_EQ(decision["rule"], "roles.reader.deny");
  EXPECT_EQ(decision["policy_version"], changed["policy_version"]);
  EXPECT_EQ(alice->command("ping"), std::vector<std::string>{"OK pong"});
}

// The matrix's zoo: a CA, leaves, CRLs (tests/support/cert_factory.hpp).
const std::string kZooPolicy = R"(
identities:
  - match: {cn: alice}
    principal: alice
    roles: [operator]
roles:
  operator:
    commands: [ping]
)";

TEST(MatrixI, I2_ACrlAddedToAgentYamlReachesOpenSessions) {
  AgentSpec spec;
  spec.policy_yaml = kZooPolicy;
  spec.sections["tls"] = zoo_tls_section();  // no CRL at start
  AgentProcess agent{spec};
  TlsClient revocable(zoo_client("revocable"));
  ASSERT_EQ(revocable.connect("127.0.0.1", agent.port()), "");
  ASSERT_TRUE(revocable.read_line().has_value()) << revocable.last_error();
  TlsClient alice(zoo_client("alice"));
  ASSERT_EQ(alice.connect("127.0.0.1", agent.port()), "");
  ASSERT_TRUE(alice.read_line().has_value()) << alice.last_error();

  const fs::path crl = matrix_zoo().write_crl("i2-added", "root", CrlSpec{{"revocable"}});
  edit_config(agent, "tls", zoo_tls_section(", crl: " + crl.string()));
  ASSERT_TRUE(agent.signal(SIGHUP));
  ASSERT_FALSE(agent.wait_for_audit("config_reload").is_null()) << agent.log();
  const json tls = agent.wait_for_audit("tls_reload");
  EXPECT_EQ(tls["crl"], crl.string());

  const json revoked = agent.wait_for_audit("session_revoked");
  ASSERT_FALSE(revoked.is_null()) << agent.log();
  EXPECT_EQ(revoked["verify_code"], X509_V_ERR_CERT_REVOKED);
  EXPECT_FALSE(agent.wait_for_audit("disconnect", "reason", "certificate_revoked").is_null());
  EXPECT_EQ(alice.command("ping"), std::vector<std::string>{"OK pong"});
}

TEST(MatrixI, I2_ALimitChangedInAgentYamlAppliesToTheNextConnection) {
  AgentProcess agent{AgentSpec{kTestPolicy, {{"limits", kFourClients}}}};
  auto first = agent.connect("alice");
  edit_config(agent, "limits", "{max_clients: 1, max_clients_per_identity: 1}");
  ASSERT_TRUE(agent.signal(SIGHUP));
  ASSERT_FALSE(agent.wait_for_audit("config_reload").is_null()) << agent.log();

  TlsClient second(agent.client_options("ci-bot"));
  ASSERT_EQ(second.connect("127.0.0.1", agent.port()), "");
  const auto line = second.read_line();
  ASSERT_TRUE(line.has_value()) << second.last_error();
  EXPECT_EQ(*line, "ERR busy too many connections (max_clients 1); bye");
  EXPECT_EQ(first->command("ping"), std::vector<std::string>{"OK pong"});  // nothing undone
}

TEST(MatrixI, I2_AKeyThatNeedsARestartFailsTheWholeFileAndNothingOfItApplies) {
  AgentProcess agent{AgentSpec{kTestPolicy, {{"limits", kFourClients}}}};
  auto first = agent.connect("alice");
  // Two edits in one file: a live one (max_clients) and one that needs a restart (listen).
  edit_config(agent, "limits", "{max_clients: 1, max_clients_per_identity: 1}");
  edit_config(agent, "listen", "[\"127.0.0.1:1\"]");
  ASSERT_TRUE(agent.signal(SIGHUP));
  const json failed = agent.wait_for_audit("config_reload_failed");
  ASSERT_FALSE(failed.is_null()) << agent.log();
  const std::string error = failed["error"];
  EXPECT_NE(error.find("agent.yaml: listen changed"), std::string::npos) << error;
  EXPECT_NE(agent.log().find("configuration reload failed"), std::string::npos);

  // max_clients is still 4: a second client gets in; the old listener still serves.
  auto second = agent.connect("ci-bot");
  EXPECT_EQ(second->command("ping"), std::vector<std::string>{"OK pong"});
  EXPECT_EQ(first->command("ping"), std::vector<std::string>{"OK pong"});
  // The policy and TLS parts of the reload still ran, from the configuration in force.
  EXPECT_FALSE(agent.wait_for_audit("tls_reload").is_null());
}

TEST(MatrixI, I2_AnInvalidAgentYamlIsRefusedWithItsPositionAndTheAgentCarriesOn) {
  AgentProcess agent{AgentSpec{kTestPolicy, {{"limits", kFourClients}}}};
  auto alice = agent.connect("alice");
  edit_config(agent, "limits", "{max_clients: many}");
  ASSERT_TRUE(agent.signal(SIGHUP));
  const json failed = agent.wait_for_audit("config_reload_failed");
  ASSERT_FALSE(failed.is_null()) << agent.log();
  const std::string error = failed["error"];
  EXPECT_TRUE(std::regex_search(error, std::regex(R"(agent\.yaml:\d+:\d+: limits\.max_clients)")))
      << error;
  EXPECT_EQ(alice->command("ping"), std::vector<std::string>{"OK pong"});
}

}  // namespace
}  // namespace opsagent::testing
