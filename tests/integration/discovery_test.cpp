// Discoverable commands against the real agent: `help run|tail|hash|comphash` per identity, the
// policy version in `whoami`, and `lastlog` on a host with neither a syslog nor a journal.

#include <filesystem>
#include <fstream>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "tests/support/agent_process.hpp"
#include "tests/support/test_pki.hpp"

namespace opsagent::testing {
namespace {
namespace fs = std::filesystem;

const std::string kPolicy = R"(
identities:
  - match: {cn: alice}
    principal: alice
    roles: [operator]
  - match: {san_uri: "spiffe://opsagent.local/ci-bot"}
    principal: ci-bot
    roles: [reader]
roles:
  operator:
    commands: [ping, whoami, lastlog, tail, comphash, hash, run]
    logs: [app, other]
    hash:
      algorithms: [sha512, sha256]
      paths: ["@DIR@/files/**", "@DIR@/motd"]
    run: [echo-args, plain]
  reader:
    commands: [ping, whoami, tail]
    deny: [run]
    logs: [app]
logs:
  app: @DIR@/syslog
  other: @DIR@/other.log
tail: {max_lines: 50}
commands:
  echo-args:
    description: prints its arguments back
    argv: [@HELPERS@/argv-echo, fixed]
    args:
      - {name: word, pattern: '[a-z]+'}
      - {name: count, pattern: '\d{1,3}', optional: true}
  plain:
    argv: [/bin/true]
)";

std::string joined(const std::vector<std::string>& lines) {
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  return all;
}

class Discovery : public ::testing::Test {
 protected:
  AgentProcess agent{AgentSpec{kPolicy, {}}};
  std::string dir() const { return agent.dir().string(); }
};

TEST_F(Discovery, HelpRunListsAlicesCommandsWithArgumentsAndDescriptions) {
  auto alice = agent.connect("alice");
  const auto r = alice->command("help run");
  EXPECT_EQ(r, (std::vector<std::string>{
                   "| echo-args <word> [count]   prints its arguments back",
                   "|     word           required  [a-z]+",
                   "|     count          optional  \\d{1,3}",
                   "| plain",
                   "OK help run commands=2",
               }))
      << joined(r);
}

TEST_F(Discovery, HelpRunIsDeniedToAnIdentityWhoseRoleDeniesRun) {
  auto bot = agent.connect("ci-bot");
  EXPECT_EQ(bot->command("help run"),
            (std::vector<std::string>{
                "ERR denied 'run' is not available to ci-bot (help lists what is)"}));
  EXPECT_EQ(bot->command("help hash"),
            (std::vector<std::string>{
                "ERR denied 'hash' is not available to ci-bot (help lists what is)"}));
}

TEST_F(Discovery, HelpTailListsTheLogsOfEachIdentity) {
  auto alice = agent.connect("alice");
  EXPECT_EQ(alice->command("help tail"),
            (std::vector<std::string>{"| app              " + dir() + "/syslog",
                                      "| other            " + dir() + "/other.log",
                                      "OK help tail logs=2 max_lines=50"}));
  auto bot = agent.connect("ci-bot");
  EXPECT_EQ(bot->command("help tail"),
            (std::vector<std::string>{"| app              " + dir() + "/syslog",
                                      "OK help tail logs=1 max_lines=50"}));
}

TEST_F(Discovery, HelpHashListsAlgorithmsAndPathPatterns) {
  auto alice = agent.connect("alice");
  EXPECT_EQ(alice->command("help hash"),
            (std::vector<std::string>{
                "| algorithms sha256,sha512 paths " + dir() + "/files/** " + dir() + "/motd",
                "OK help hash grants=1"}));
  EXPECT_EQ(
      alice->command("help comphash"),
      (std::vector<std::string>{"| algorithms sha1 paths " + dir() + "/files/** " + dir() + "/motd",
                                "OK help comphash grants=1"}));
}

TEST_F(Discovery, HelpOfOtherVerbsAndOfUnknownOnes) {
  auto alice = agent.connect("alice");
  const auto ping = alice->command("help ping");
  ASSERT_EQ(ping.size(), 2U) << joined(ping);
  EXPECT_EQ(ping[0].rfind("| ping ", 0), 0U) << ping[0];
  EXPECT_EQ(ping[1], "OK help ping");
  EXPECT_EQ(alice->command("help nope"),
            (std::vector<std::string>{"ERR unknown command not found: nope (try help)"}));
  EXPECT_EQ(alice->command("help run tail"),
            (std::vector<std::string>{"ERR usage usage: help [command]"}));
  const auto help = alice->command("help");
  EXPECT_EQ(help.back(), "OK help");
}

TEST_F(Discovery, HelpRunInJsonModeGivesOneObjectPerLine) {
  auto alice = agent.connect("alice");
  ASSERT_EQ(alice->command("json on").size(), 1U);
  const auto r = alice->command("help run");
  ASSERT_EQ(r.size(), 5U) << joined(r);
  EXPECT_EQ(r.back(), R"({"commands":2,"message":"help run","type":"ok"})");
}

TEST_F(Discovery, WhoamiShowsThePolicyVersionInForceAndFollowsAReload) {
  std::string sha;
  ASSERT_EQ(run_shell("sha256sum " + dir() + "/policy.yaml | cut -d' ' -f1", &sha), 0);
  sha.pop_back();
  auto alice = agent.connect("alice");
  auto r = alice->command("whoami");
  EXPECT_NE(std::find(r.begin(), r.end(), "| policy version: " + sha.substr(0, 16)), r.end())
      << joined(r);
  EXPECT_NE(std::find(r.begin(), r.end(), "| policy sha256: " + sha), r.end()) << joined(r);
  const auto start = agent.wait_for_audit("agent_start");
  EXPECT_EQ(start.value("policy_version", ""), sha.substr(0, 16)) << "the same version as audit";

  { std::ofstream(agent.dir() / "policy.yaml", std::ios::app) << "# edited\n"; }
  std::string next;
  ASSERT_EQ(run_shell("sha256sum " + dir() + "/policy.yaml | cut -d' ' -f1", &next), 0);
  next.pop_back();
  ASSERT_TRUE(agent.signal(SIGHUP));
  agent.wait_for_audit("policy_reload", "policy_version", next.substr(0, 16));
  r = alice->command("whoami");
  EXPECT_NE(std::find(r.begin(), r.end(), "| policy sha256: " + next), r.end()) << joined(r);
}

// A host with no /var/log/syslog and an empty journal (journald-only hosts before their first
// message, containers) used to answer `OK done exit=0 ... output_bytes=0`.
TEST(DiscoveryLastlog, SaysSoWhenThereIsNeitherASyslogNorAJournalEntry) {
  std::string journal;
  if (::access("/usr/bin/journalctl", X_OK) != 0 && ::access("/bin/journalctl", X_OK) != 0) {
    GTEST_SKIP() << "no journalctl on this host";
  }
  ASSERT_EQ(run_shell("journalctl -n 1 --no-pager -q 2>/dev/null", &journal), 0);
  if (!journal.empty()) GTEST_SKIP() << "this host's journal is not empty";

  AgentProcess agent{AgentSpec{
      kPolicy, {{"lastlog", "{path: /nonexistent/opsagent-syslog, journal_fallback: true}"}}}};
  auto alice = agent.connect("alice");
  const auto r = alice->command("lastlog");
  ASSERT_EQ(r.size(), 1U) << joined(r);
  EXPECT_EQ(r[0],
            "ERR notfound no system log: /nonexistent/opsagent-syslog does not exist and the "
            "journal has no entries the agent can read (empty, or the agent's user is not in the "
            "systemd-journal or adm group)");
}

}  // namespace
}  // namespace opsagent::testing
