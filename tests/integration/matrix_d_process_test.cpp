// SECURITY-MATRIX group D: subprocess handling. Each test is named after its row.

#include <atomic>
#include <filesystem>
#include <fstream>
#include <regex>
#include <signal.h>
#include <sys/stat.h>
#include <thread>

#include <gtest/gtest.h>

#include "tests/integration/test_policy.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/sanitizer.hpp"

namespace opsagent::testing {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

// The base test policy plus the commands group D needs. Fixture programs for D5 live in a
// directory made before the agent starts, because the policy names them.
std::string matrix_d_policy(const fs::path& fixtures) {
  std::string policy =
      test_policy_with_run(", stubborn, not-executable, no-shebang, a-directory, big-flood", R"(
  stubborn:
    argv: [@HELPERS@/ignore-term]
    args: [{name: marker, pattern: '[a-z0-9-]+'}]
    timeout: 1s
  not-executable:
    argv: [)" + (fixtures / "plain.txt").string() + R"(]
  no-shebang:
    argv: [)" + (fixtures / "script").string() + R"(]
  a-directory:
    argv: [)" + fixtures.string() + R"(]
  big-flood:
    argv: [@HELPERS@/flood, "200000000"]
    max_output: 1GiB
    timeout: 60s
)");
  return policy;
}

fs::path make_fixtures() {
  char tmpl[] = "/tmp/opsagent-d5-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp");
  const fs::path dir = tmpl;
  std::ofstream(dir / "plain.txt") << "not a program\n";
  std::ofstream(dir / "script") << "echo hello from a script without a shebang\n";
  fs::permissions(dir / "script", fs::perms::owner_all);
  return dir;
}

// Children of `parent` (by PPid in /proc) that are zombies.
int zombie_children(pid_t parent) {
  int zombies = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::ifstream in(entry.path() / "stat");
    std::string stat;
    if (!std::getline(in, stat)) continue;
    const auto close_paren = stat.rfind(')');
    if (close_paren == std::string::npos || close_paren + 4 >= stat.size()) continue;
    const char state = stat[close_paren + 2];
    const long ppid = std::strtol(stat.c_str() + close_paren + 4, nullptr, 10);
    if (ppid == parent && state == 'Z') ++zombies;
  }
  return zombies;
}

long vm_hwm_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

class MatrixD : public ::testing::Test {
 protected:
  fs::path fixtures = make_fixtures();
  AgentProcess agent{
      AgentSpec{matrix_d_policy(fixtures), {{"timeouts", "{kill_grace: 1s, write_stall: 2s}"}}}};
  void TearDown() override { fs::remove_all(fixtures); }
};

TEST_F(MatrixD, D1_SlowReaderStallsTheChildNotTheAgent) {
  auto slow = agent.connect("alice");
  auto other = agent.connect("ci-bot");
  const long hwm_before = vm_hwm_kib(agent.pid());
  ASSERT_TRUE(slow->write("run big-flood\n"));  // and never read
  agent.wait_for_audit("command", "command", "run");
  // Others are served while the flood is blocked on back-pressure: before the 2 s write_stall
  // ends it, not after.
  EXPECT_EQ(other->command("ping"), std::vector<std::string>{"OK pong"});
  for (const auto& r : agent.audit()) {
    EXPECT_FALSE(r.value("event", "") == "command_end" && r.value("command", "") == "run")
        << "the ping was answered only once the flood had ended: " << r.dump();
  }
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(other->command("ping"), std::vector<std::string>{"OK pong"});
  }
  // After write_stall the stalled client is dropped and its child killed.
  const auto rec = agent.wait_for_audit("command_end", "client_gone", true, 15s);
  EXPECT_LT(rec["bytes_out"].get<std::uint64_t>(), 200'000'000U);
  EXPECT_LT(vm_hwm_kib(agent.pid()) - hwm_before, 64 * 1024) << "agent memory grew with the flood";
  EXPECT_EQ(other->command("ping"), std::vector<std::string>{"OK pong"});
}

TEST_F(MatrixD, D2_ChildIgnoringSigtermIsKilledAfterTheGracePeriod) {
  auto client = agent.connect("alice");
  const std::string marker = unique_marker("stubborn");
  const auto started = std::chrono::steady_clock::now();
  const auto r = client->command("run stubborn " + marker, 2s + scaled(8s));
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_EQ(r.size(), 2U);
  EXPECT_EQ(r[0], "| ignoring SIGTERM");
  EXPECT_EQ(r[1].rfind("ERR timeout command exceeded its time limit of 1s; killed signal=9", 0), 0U)
      << r[1];
  // Killed after timeout + grace (1 s + 1 s), with a margin that grows under the sanitizers.
  EXPECT_GE(took, 2s);
  EXPECT_LT(took, 2s + scaled(2s));
  EXPECT_TRUE(wait_no_process_with_marker(marker, 1s));
}

TEST_F(MatrixD, D4_NoZombiesAfterManyShortAndKilledCommands) {
  auto client = agent.connect("alice");
  std::string batch;
  for (int i = 0; i < 300; ++i) batch += (i % 3 == 0) ? "run echo-args\n" : "run fail\n";
  ASSERT_TRUE(client->write(batch));
  for (int i = 0; i < 300; ++i) ASSERT_FALSE(client->read_reply().empty()) << "reply " << i;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(client->write("run forker " + unique_marker("d4") + "\n"));
    ASSERT_TRUE(client->read_line().has_value());
    client.reset();  // killed by the disconnect
    client = agent.connect("alice");
  }
  EXPECT_EQ(client->command("ping"), std::vector<std::string>{"OK pong"});
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (zombie_children(agent.pid()) > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(zombie_children(agent.pid()), 0);
}

TEST_F(MatrixD, D5_ExecFailuresAreCleanErrors) {
  auto client = agent.connect("alice");
  for (const char* name : {"not-executable", "no-shebang", "a-directory", "missing"}) {
    const auto r = client->command(std::string("run ") + name);
    ASSERT_EQ(r.size(), 1U) << name;
    EXPECT_TRUE(r[0].rfind("ERR denied", 0) == 0 || r[0].rfind("ERR notfound", 0) == 0)
        << name << ": " << r[0];
  }
  EXPECT_EQ(client->command("ping"), std::vector<std::string>{"OK pong"});
  EXPECT_EQ(zombie_children(agent.pid()), 0);
}

TEST_F(MatrixD, D6_ChildrenSeeOnlyStandardDescriptorsUnderConcurrency) {
  std::atomic<int> bad{0};
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      auto client = std::make_unique<TlsClient>(agent.client_options("alice"));
      if (!client->connect("127.0.0.1", agent.port()).empty() || !client->read_line()) {
        ++bad;
        return;
      }
      for (int i = 0; i < 10; ++i) {
        const auto r = client->command("run echo-args");
        if (r.size() != 2 || r[0].rfind("| ", 0) != 0) {
          ++bad;
          continue;
        }
        const auto j = nlohmann::json::parse(r[0].substr(2), nullptr, false);
        if (j.is_discarded() || j["fds"] != nlohmann::json{0, 1, 2}) ++bad;
        ++done;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(done.load(), 80);
}

TEST_F(MatrixD, D9_ChildTreeDiesOnCloseNotifyAndOnFin) {
  for (const bool tls_close : {true, false}) {
    auto client = agent.connect("alice");
    const std::string marker = unique_marker(tls_close ? "closenotify" : "fin");
    ASSERT_TRUE(client->write("run forker " + marker + "\n"));
    ASSERT_TRUE(client->read_line().has_value());
    if (tls_close) {
      client->close();
    } else {
      boost::system::error_code ec;
      client->stream().next_layer().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    }
    EXPECT_TRUE(wait_no_process_with_marker(marker, 1500ms))
        << (tls_close ? "close_notify" : "FIN");
  }
}

}  // namespace
}  // namespace opsagent::testing
