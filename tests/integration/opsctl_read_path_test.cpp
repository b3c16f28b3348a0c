// opsctl's chunked read path against a scripted agent over real TLS on loopback: lines that
// straddle reads and buffer growth arrive whole and in order, a burst of short lines is not
// lost, and a line beyond the limit (1 MiB) ends the host as a protocol error without opsctl
// holding more than that.

#include <string>

#include <gtest/gtest.h>

#include "tests/integration/opsctl_harness.hpp"
#include "tests/support/fake_agent.hpp"

namespace opsagent::testing {
namespace {
using namespace opsctl;

const std::string kGreeting = "OK opsagent 0.1.0 ready host=fake principal=alice roles=operator\n";

TEST(OpsctlReadPath, LongAndShortLinesArriveWholeAndInOrder) {
  std::string expected;
  std::string reply;
  for (int i = 0; i < 3; ++i) {
    const std::string big(300 * 1024 + i, static_cast<char>('a' + i));  // beyond any one read
    reply += "| " + big + "\n";
    expected += big + "\n";
    for (int k = 0; k < 2000; ++k) {
      reply += "| short " + std::to_string(i) + "." + std::to_string(k) + "\n";
      expected += "short " + std::to_string(i) + "." + std::to_string(k) + "\n";
    }
  }
  reply += "! on stderr\nOK done exit=0\n";
  FakeAgent agent(FakeAgentScript{kGreeting, [reply](const std::string&) { return reply; }});
  ASSERT_NE(agent.port(), 0);
  const auto r = run_opsctl({"-t", "60s", "127.0.0.1:" + std::to_string(agent.port()), "run", "x"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.size(), expected.size());
  EXPECT_TRUE(r.out == expected) << "stdout differs from the lines sent";
  EXPECT_EQ(r.err, "on stderr\n");
}

TEST(OpsctlReadPath, ALineBeyondTheLimitIsAProtocolError) {
  const std::string reply =
      "| start\n| " + std::string(2 * 1024 * 1024, 'z') + "\nOK done exit=0\n";
  FakeAgent agent(FakeAgentScript{kGreeting, [reply](const std::string&) { return reply; }});
  ASSERT_NE(agent.port(), 0);
  const auto r = run_opsctl({"-t", "60s", "127.0.0.1:" + std::to_string(agent.port()), "run", "x"});
  EXPECT_EQ(r.exit_code, 70) << describe(r);
  EXPECT_EQ(r.out, "start\n");
  EXPECT_TRUE(contains(r.err, "error: reply line longer than 1048576 bytes")) << r.err;
}

}  // namespace
}  // namespace opsagent::testing
