// SECURITY-MATRIX group I (live trust changes and output hygiene): rows I4, I6, I7, I10 and I12,
// against the real agent binary over real TLS. Tests are named after their rows.

#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <signal.h>
#include <spawn.h>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/test_policy.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/test_pki.hpp"

extern char** environ;

namespace opsagent::testing {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Json = nlohmann::json;

constexpr int kExitConfig = 78;

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

AgentSpec spec_for(const std::string& policy) {
  AgentSpec spec;
  spec.policy_yaml = policy;
  return spec;
}

// ---- I12: children's signal state ----

TEST(MatrixI, I12_ChildrenStartWithDefaultSignalState) {
  AgentProcess agent(spec_for(kTestPolicy));
  ASSERT_NE(agent.port(), 0);
  auto alice = agent.connect("alice");
  ASSERT_NE(alice, nullptr);
  const auto reply = alice->command("run echo-args i12");
  ASSERT_EQ(reply.size(), 2u) << joined(reply);
  ASSERT_EQ(reply[0].rfind("| ", 0), 0u) << joined(reply);
  const Json signals = Json::parse(reply[0].substr(2))["signals"];
  ASSERT_TRUE(signals.is_object()) << reply[0];
  // Every bit, 1 to SIGRTMAX: glibc's reserved real-time signals (32, 33) included.
  for (const char* mask : {"SigIgn", "SigBlk", "SigCgt", "SigPnd"}) {
    ASSERT_TRUE(signals.contains(mask)) << reply[0];
    EXPECT_EQ(std::stoull(signals[mask].get<std::string>(), nullptr, 16), 0u)
        << mask << " of the command: " << signals[mask];
  }
}

}  // namespace
}  // namespace opsagent::testing
