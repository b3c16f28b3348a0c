// The agent's life: policy reload on SIGHUP, clean shutdown on SIGTERM with work in flight.

#include <filesystem>
#include <fstream>
#include <regex>
#include <signal.h>

#include <gtest/gtest.h>

#include "tests/integration/test_policy.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/sanitizer.hpp"

namespace opsagent::testing {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Replaces the policy file atomically (write + rename), as an operator's tooling would.
void replace_policy(const AgentProcess& agent, const std::string& text) {
  const fs::path tmp = agent.dir() / "policy.yaml.new";
  std::ofstream(tmp) << text;
  fs::rename(tmp, agent.dir() / "policy.yaml");
}

TEST(Lifecycle, ReloadsThePolicyOnSighupAndKeepsTheOldOneWhenTheNewIsInvalid) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  auto reader = agent.connect("ci-bot");
  EXPECT_EQ(reader->command("tail app 1")[0], "| syslog line 15");
  const std::string old_version = agent.wait_for_audit("agent_start")["policy_version"];

  // An invalid policy: the reload fails and the old policy stays in force.
  replace_policy(agent, "identities: [\n");
  agent.signal(SIGHUP);
  const auto failed = agent.wait_for_audit("policy_reload_failed");
  EXPECT_EQ(failed["policy_version"], old_version);
  EXPECT_NE(failed["error"].get<std::string>().find("policy.yaml:"), std::string::npos)
      << failed.dump();
  EXPECT_EQ(reader->command("tail app 1")[0], "| syslog line 15");

  // A valid policy without the reader's tail grant: new decisions follow it at once.
  std::string stricter = kTestPolicy;
  const std::string grant = "commands: [ping, whoami, tail]\n    deny: [run]\n    logs: [app]\n";
  stricter.replace(stricter.find(grant), grant.size(),
                   "commands: [ping, whoami]\n    deny: [run]\n");
  stricter = std::regex_replace(stricter, std::regex("@DIR@"), agent.dir().string());
  stricter =
      std::regex_replace(stricter, std::regex("@HELPERS@"), std::string(OPSAGENT_HELPER_DIR));
  replace_policy(agent, stricter);
  agent.signal(SIGHUP);
  const auto reloaded = agent.wait_for_audit("policy_reload");
  EXPECT_EQ(reloaded["old_version"], old_version);
  EXPECT_NE(reloaded["policy_version"], old_version);
  const auto r = reader->command("tail app 1");
  ASSERT_EQ(r.size(), 1U);
  EXPECT_EQ(r[0].rfind("ERR denied", 0), 0U) << r[0];
  EXPECT_EQ(reader->command("ping"), std::vector<std::string>{"OK pong"});
}

TEST(Lifecycle, ReopensTheAuditLogOnSighupForRotation) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  auto client = agent.connect("alice");
  EXPECT_EQ(client->command("ping"), std::vector<std::string>{"OK pong"});
  const fs::path rotated = agent.dir() / "audit.jsonl.1";
  fs::rename(agent.audit_path(), rotated);  // what logrotate does before signalling
  agent.signal(SIGHUP);
  agent.wait_for_audit("tls_reload");  // lands in the new file once the reload has run
  EXPECT_EQ(client->command("ping"), std::vector<std::string>{"OK pong"});
  client->command("exit");
  agent.wait_for_audit("disconnect");

  // No record lost or duplicated across the two files: sequence numbers continue.
  std::vector<std::uint64_t> seqs;
  for (const fs::path& file : {rotated, agent.audit_path()}) {
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
      seqs.push_back(nlohmann::json::parse(line)["seq"].get<std::uint64_t>());
    }
  }
  ASSERT_GT(seqs.size(), 5U);
  for (std::size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i + 1) << "record " << i;
}

// issue 8: `rm` of the audit log (not a rotation, no SIGHUP) is noticed within a second or so;
// the agent writes to a new file at the configured path and says why, and goes on serving.
TEST(Lifecycle, NoticesADeletedAuditLogAndStartsANewOne) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  auto client = agent.connect("alice");
  EXPECT_EQ(client->command("ping"), std::vector<std::string>{"OK pong"});
  fs::remove(agent.audit_path());
  const auto recreated = agent.wait_for_audit("audit_log_recreated", "", nullptr, scaled(10s));
  EXPECT_NE(recreated.value("reason", "").find("deleted"), std::string::npos) << recreated.dump();
  EXPECT_NE(agent.log().find("was deleted; writing to a new file"), std::string::npos)
      << agent.log();
  EXPECT_EQ(client->command("ping"), std::vector<std::string>{"OK pong"});
  // The new file holds the records that follow, the ping's included.
  const auto end = agent.wait_for_audit("command", "command", "ping");
  EXPECT_GT(end["seq"].get<std::uint64_t>(), recreated["seq"].get<std::uint64_t>());
}

TEST(Lifecycle, StopsCleanlyOnSigtermKillingRunningCommands) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  auto client = agent.connect("alice");
  const std::string marker = unique_marker("shutdown");
  ASSERT_TRUE(client->write("run forker " + marker + "\n"));
  ASSERT_TRUE(client->read_line().has_value());  // the child is running
  auto idle = agent.connect("ci-bot");

  // Cleanly: exit status 0, every session ended before the agent's own shutdown deadline (the
  // last record says so; reason=deadline would mean it had to give up on one).
  EXPECT_EQ(agent.stop(scaled(10s)), 0) << agent.log();
  EXPECT_TRUE(wait_no_process_with_marker(marker, 2s));
  EXPECT_TRUE(idle->wait_closed(2s));

  const auto records = agent.audit();
  ASSERT_FALSE(records.empty());
  EXPECT_EQ(records.back()["event"], "agent_stop");
  EXPECT_EQ(records.back()["reason"], "signal") << "the shutdown deadline had to end the agent";
  int disconnects = 0;
  for (const auto& r : records) {
    if (r["event"] == "disconnect") ++disconnects;
  }
  EXPECT_EQ(disconnects, 2);
}

}  // namespace
}  // namespace opsagent::testing
