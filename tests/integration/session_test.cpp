// The line protocol over real TLS against the real agent: greeting, framing, errors.

#include <gtest/gtest.h>

#include "tests/integration/test_policy.hpp"
#include "tests/support/agent_process.hpp"

namespace opsagent::testing {
namespace {

class Session : public ::testing::Test {
 protected:
  AgentProcess agent{AgentSpec{kTestPolicy, {{"limits", "{max_line_bytes: 256}"}}}};
};

TEST_F(Session, GreetsWithAgentAndPrincipal) {
  std::string greeting;
  auto c = agent.connect("alice", &greeting);
  EXPECT_EQ(greeting.rfind("OK opsagent ", 0), 0U) << greeting;
  EXPECT_NE(greeting.find("principal=alice"), std::string::npos) << greeting;
  EXPECT_NE(greeting.find("roles=operator"), std::string::npos) << greeting;
}

TEST_F(Session, AnswersPingAndWhoami) {
  auto c = agent.connect("ci-bot");
  EXPECT_EQ(c->command("ping"), std::vector<std::string>{"OK pong"});
  const auto who = c->command("whoami");
  ASSERT_FALSE(who.empty());
  EXPECT_EQ(who.back(), "OK ci-bot roles=reader");
  EXPECT_NE(std::find(who.begin(), who.end(), "| san uri: spiffe://opsagent.local/ci-bot"),
            who.end());
  EXPECT_NE(std::find(who.begin(), who.end(), "| principal: ci-bot"), who.end());
}

TEST_F(Session, HelpListsOnlyWhatTheIdentityMayUse) {
  auto reader = agent.connect("ci-bot");
  const auto help = reader->command("help");
  ASSERT_FALSE(help.empty());
  EXPECT_EQ(help.back(), "OK help");
  std::string all;
  for (const auto& l : help) all += l + "\n";
  EXPECT_NE(all.find("| tail <log> [lines]"), std::string::npos) << all;
  EXPECT_EQ(all.find("| run "), std::string::npos) << all;
  EXPECT_EQ(all.find("| hash "), std::string::npos) << all;

  auto op = agent.connect("alice");
  std::string op_all;
  for (const auto& l : op->command("help")) op_all += l + "\n";
  EXPECT_NE(op_all.find("| run <name> [args...]"), std::string::npos) << op_all;
}

TEST_F(Session, RefusesUnknownCommandsAndKeepsTheConnection) {
  auto c = agent.connect("alice");
  const auto r = c->command("frobnicate now");
  ASSERT_EQ(r.size(), 1U);
  EXPECT_EQ(r[0].rfind("ERR unknown ", 0), 0U) << r[0];
  EXPECT_EQ(c->command("PING")[0].rfind("ERR unknown ", 0), 0U)
      << "command names are case-sensitive";
  EXPECT_EQ(c->command("ping"), std::vector<std::string>{"OK pong"});
}

TEST_F(Session, ReportsUsageErrorsForBadArity) {
  auto c = agent.connect("alice");
  const auto r = c->command("hash sha256");
  ASSERT_EQ(r.size(), 1U);
  EXPECT_EQ(r[0], "ERR usage usage: hash <algorithm> <path>");
}

TEST_F(Session, RejectsControlCharactersAndUnterminatedQuotes) {
  auto c = agent.connect("alice");
  ASSERT_TRUE(c->write(std::string("ping\0rm -rf /\n", 14)));
  EXPECT_EQ(c->read_reply()[0].rfind("ERR usage control character U+0000", 0), 0U);
  EXPECT_EQ(c->command("tail \"app")[0].rfind("ERR usage unterminated quote", 0), 0U);
  EXPECT_EQ(c->command("ping\r"), std::vector<std::string>{"OK pong"})
      << "one CR before LF is allowed";
}

TEST_F(Session, IgnoresBlankLinesAndAnswersPipelinedCommandsInOrder) {
  auto c = agent.connect("alice");
  std::string batch = "\n   \n";
  for (int i = 0; i < 50; ++i) batch += (i % 2 == 0) ? "ping\n" : "whoami\n";
  ASSERT_TRUE(c->write(batch));
  for (int i = 0; i < 50; ++i) {
    const auto r = c->read_reply();
    ASSERT_FALSE(r.empty()) << "reply " << i;
    EXPECT_EQ(r.back(), i % 2 == 0 ? "OK pong" : "OK alice roles=operator") << "reply " << i;
  }
}

TEST_F(Session, ClosesOnOverlongLineButServesOthers) {
  auto other = agent.connect("ci-bot");
  auto c = agent.connect("alice");
  ASSERT_TRUE(c->write(std::string(300, 'a') + "\n"));
  const auto r = c->read_reply();
  ASSERT_EQ(r.size(), 1U);
  EXPECT_EQ(r[0], "ERR limit line longer than 256 bytes; bye");
  EXPECT_TRUE(c->wait_closed());
  EXPECT_EQ(other->command("ping"), std::vector<std::string>{"OK pong"});
  agent.wait_for_audit("line_too_long", "principal", "alice");
}

TEST_F(Session, AcceptsLineExactlyAtTheLimit) {
  auto c = agent.connect("alice");
  const std::string line = "ping" + std::string(252, ' ');
  ASSERT_EQ(line.size(), 256U);
  EXPECT_EQ(c->command(line), std::vector<std::string>{"OK pong"});
}

TEST_F(Session, SwitchesToJsonLines) {
  auto c = agent.connect("alice");
  const auto on = c->command("json on");
  ASSERT_EQ(on.size(), 1U);
  auto j = nlohmann::json::parse(on[0]);
  EXPECT_EQ(j["type"], "ok");
  const auto tail = c->command("tail app 2");
  ASSERT_EQ(tail.size(), 3U);
  EXPECT_EQ(nlohmann::json::parse(tail[0])["line"], "syslog line 14");
  EXPECT_EQ(nlohmann::json::parse(tail[0])["type"], "stdout");
  EXPECT_EQ(nlohmann::json::parse(tail[2])["lines"], 2);
  const auto denied = nlohmann::json::parse(c->command("tail secret")[0]);
  EXPECT_EQ(denied["type"], "error");
  EXPECT_EQ(denied["code"], "denied");
  EXPECT_EQ(c->command("json off"), std::vector<std::string>{"OK json off"});
}

TEST_F(Session, ExitSaysByeAndCloses) {
  auto c = agent.connect("alice");
  EXPECT_EQ(c->command("exit"), std::vector<std::string>{"OK bye"});
  EXPECT_TRUE(c->wait_closed());
  const auto rec = agent.wait_for_audit("disconnect", "reason", "exit");
  EXPECT_EQ(rec["principal"], "alice");
}

TEST(SessionIdle, ClosesIdleConnections) {
  AgentProcess agent{AgentSpec{kTestPolicy, {{"timeouts", "{idle: 1s}"}}}};
  auto c = agent.connect("alice");
  const auto r = c->read_reply(std::chrono::seconds(5));
  ASSERT_EQ(r.size(), 1U);
  EXPECT_EQ(r[0], "ERR timeout idle for 1 s; bye");
  EXPECT_TRUE(c->wait_closed());
}

}  // namespace
}  // namespace opsagent::testing
