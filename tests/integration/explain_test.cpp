// `opsagent explain` and `opsagent check` against the files of a real agent: the decision, the
// rule and its place in the policy file, for a principal by name and for a certificate file.

#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "tests/integration/test_policy.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/test_pki.hpp"

namespace opsagent::testing {
namespace {

bool has_line(const std::string& output, const std::string& line) {
  return ("\n" + output + "\n").find("\n" + line + "\n") != std::string::npos;
}

class Explain : public ::testing::Test {
 protected:
  RunResult explain(std::vector<std::string> words, const std::string& who = "alice",
                    bool by_cert = false) {
    std::vector<std::string> args = {"explain", "--config", config()};
    if (by_cert) {
      args.insert(args.end(), {"--cert", TestPki::get().cert(who).string()});
    } else {
      args.insert(args.end(), {"--principal", who});
    }
    args.emplace_back("--");
    args.insert(args.end(), words.begin(), words.end());
    return run_agent_binary(args);
  }
  std::string config() const { return (agent.dir() / "agent.yaml").string(); }
  std::string policy() const { return (agent.dir() / "policy.yaml").string(); }

  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
};

TEST_F(Explain, AllowNamesTheRoleEntryAndCommandWithTheirPlaceInThePolicy) {
  const auto r = explain({"run", "echo-args", "hello"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(
      has_line(r.output, "principal: alice roles=operator (identities[0] at " + policy() + ":3:5)"))
      << r.output;
  EXPECT_TRUE(has_line(r.output, "decision: allow")) << r.output;
  // kTestPolicy line 15: "    run: [echo-args, ...": the entry is at column 11.
  EXPECT_TRUE(has_line(r.output, "rule: roles.operator.run.echo-args at " + policy() + ":16:11"))
      << r.output;
  EXPECT_TRUE(has_line(r.output, "command entry: commands.echo-args at " + policy() + ":24:3"))
      << r.output;
  EXPECT_TRUE(has_line(r.output, "argv: " + helper_path("argv-echo").string() + " fixed -- hello"))
      << r.output;
  EXPECT_TRUE(
      has_line(r.output, "verb granted by: roles.operator.commands.run at " + policy() + ":11:61"))
      << r.output;
  EXPECT_EQ(agent.audit().size(), 2U)
      << "nothing ran, nothing was audited but the file header and agent_start";
}

TEST_F(Explain, ExplicitDenyNamesTheRoleThatDenies) {
  const auto r = explain({"run echo-args hello"}, "ci-bot");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(has_line(r.output, "decision: deny")) << r.output;
  EXPECT_TRUE(has_line(r.output, "rule: roles.reader.deny.run at " + policy() + ":19:12"))
      << r.output;
  EXPECT_TRUE(has_line(r.output, "reason: role reader denies 'run' to ci-bot")) << r.output;
}

TEST_F(Explain, DefaultDenyIsNamedAsSuch) {
  const auto r = explain({"hash", "sha256", "/etc/passwd"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(has_line(r.output, "decision: deny (default deny)")) << r.output;
  EXPECT_TRUE(has_line(r.output, "rule: default deny (no rule of the policy grants this)"))
      << r.output;
  const auto undefined = explain({"run", "reboot"});
  EXPECT_EQ(undefined.exit_code, 1) << undefined.output;
  EXPECT_TRUE(has_line(undefined.output, "note: no command 'reboot' is defined under commands:"))
      << undefined.output;
}

TEST_F(Explain, UnknownVerbsAndWrongArityAreRejectedBeforeThePolicy) {
  const auto unknown = explain({"reboot", "now"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.output;
  EXPECT_TRUE(has_line(unknown.output,
                       "decision: reject (unknown command: the agent answers ERR "
                       "unknown before the policy is asked)"))
      << unknown.output;
  const auto arity = explain({"hash", "sha256"});
  EXPECT_EQ(arity.exit_code, 2) << arity.output;
  EXPECT_NE(arity.output.find("decision: reject (usage: hash <algorithm> <path>"),
            std::string::npos)
      << arity.output;
}

TEST_F(Explain, MapsACertificateFileAsALiveConnectionWould) {
  const auto alice = explain({"ping"}, "alice", true);
  EXPECT_EQ(alice.exit_code, 0) << alice.output;
  EXPECT_TRUE(
      has_line(alice.output, "rule: roles.operator.commands.ping at " + policy() + ":11:16"))
      << alice.output;
  const auto bot = explain({"ping"}, "ci-bot", true);
  EXPECT_EQ(bot.exit_code, 0) << bot.output;
  EXPECT_NE(bot.output.find("principal: ci-bot roles=reader (identities[1]"), std::string::npos)
      << bot.output;
  const auto mallory = explain({"ping"}, "mallory", true);
  EXPECT_EQ(mallory.exit_code, 1) << mallory.output;
  EXPECT_NE(mallory.output.find("no rule under identities: maps this certificate"),
            std::string::npos)
      << mallory.output;
  const auto rogue = run_agent_binary({"explain", "--config", config(), "--cert",
                                       TestPki::get().rogue_cert("alice").string(), "ping"});
  EXPECT_EQ(rogue.exit_code, 1) << rogue.output;
  EXPECT_NE(rogue.output.find("the TLS handshake would fail"), std::string::npos) << rogue.output;
}

// A rule that names its CA (`ca_fingerprint`) maps a certificate file as a handshake would: the
// fingerprints come from the chain explain verified.
TEST(ExplainIssuer, ACertificateFileMatchesARuleThatNamesItsCa) {
  FILE* pipe = ::popen(("openssl x509 -noout -fingerprint -sha256 -in " +
                        TestPki::get().ca().string() + " 2>/dev/null")
                           .c_str(),
                       "r");
  ASSERT_NE(pipe, nullptr);
  char buffer[256] = {};
  const bool read = std::fgets(buffer, sizeof buffer, pipe) != nullptr;
  ::pclose(pipe);
  ASSERT_TRUE(read);
  std::string fingerprint = buffer;  // "sha256 Fingerprint=AB:CD:...\n"
  fingerprint = fingerprint.substr(fingerprint.find('=') + 1);
  fingerprint.erase(fingerprint.find_last_not_of("\n") + 1);
  AgentProcess agent{AgentSpec{R"(
identities:
  - match: {cn: alice, ca_fingerprint: ")" +
                                   fingerprint + R"("}
    principal: alice
    roles: [operator]
roles:
  operator:
    commands: [ping]
)",
                               {}}};
  const auto r = run_agent_binary({"explain", "--config", (agent.dir() / "agent.yaml").string(),
                                   "--cert", TestPki::get().cert("alice").string(), "ping"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("principal: alice roles=operator (identities[0]"), std::string::npos)
      << r.output;
}

TEST_F(Explain, BadUsageAndBadConfigurationHaveTheirOwnExitCodes) {
  EXPECT_EQ(run_agent_binary({"explain", "--config", config(), "ping"}).exit_code, 64);
  EXPECT_EQ(run_agent_binary({"explain", "--config", config(), "--principal", "alice"}).exit_code,
            64);
  EXPECT_EQ(
      run_agent_binary({"explain", "--config", "/nonexistent.yaml", "--principal", "a", "ping"})
          .exit_code,
      78);
}

TEST_F(Explain, CheckIsTheSameAsCheckConfig) {
  const auto check = run_agent_binary({"check", "--config", config()});
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find("configuration OK"), std::string::npos) << check.output;
  EXPECT_EQ(run_agent_binary({"check", "--config", "/nonexistent.yaml"}).exit_code, 78);
}

}  // namespace
}  // namespace opsagent::testing
