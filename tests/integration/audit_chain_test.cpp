// The audit hash chain against the real agent (issue 11): `opsagent audit verify` passes on a
// real run's rotated files, across a restart and after kill -9 under load, and finds and
// locates each kind of tampering. The verifier's own cases are in tests/unit/audit_chain_test.cpp.

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/test_policy.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/sanitizer.hpp"

namespace opsagent::testing {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (auto lf = text.find('\n'); lf != std::string::npos; lf = text.find('\n', start)) {
    out.push_back(text.substr(start, lf - start));
    start = lf + 1;
  }
  return out;
}

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

RunResult verify(const std::vector<fs::path>& files, const fs::path& key = {}) {
  std::vector<std::string> args{"audit", "verify"};
  if (!key.empty()) {
    args.emplace_back("--key-file");
    args.push_back(key.string());
  }
  for (const auto& f : files) args.push_back(f.string());
  return run_agent_binary(args);
}

// A few commands of different kinds from one session.
void run_commands(AgentProcess& agent) {
  auto alice = agent.connect("alice");
  ASSERT_NE(alice, nullptr);
  EXPECT_EQ(alice->command("ping"), std::vector<std::string>{"OK pong"});
  EXPECT_FALSE(alice->command("whoami").empty());
  EXPECT_FALSE(alice->command("run echo-args one two").empty());
  EXPECT_FALSE(alice->command("run nosuch").empty());
  alice->command("exit");
}

// Renames the audit file and has the agent reopen it (logrotate's way).
void rotate(AgentProcess& agent, const fs::path& to) {
  fs::rename(agent.audit_path(), to);
  agent.signal(SIGHUP);
  const auto deadline = std::chrono::steady_clock::now() + scaled(10s);
  while (std::chrono::steady_clock::now() < deadline &&
         read_all(agent.audit_path()).find("\"event\":\"tls_reload\"") == std::string::npos) {
    std::this_thread::sleep_for(5ms);
  }
}

// One real run with two rotations: audit.jsonl.2, audit.jsonl.1, audit.jsonl (oldest first),
// kept for the whole suite; each test damages its own copy.
class AuditChain : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    AgentProcess agent{AgentSpec{kTestPolicy, {}}};
    if (agent.port() == 0) return;
    run_commands(agent);
    rotate(agent, agent.dir() / "audit.jsonl.2");
    run_commands(agent);
    rotate(agent, agent.dir() / "audit.jsonl.1");
    run_commands(agent);
    agent.stop();
    std::string tmpl = (fs::temp_directory_path() / "opsagent-chain-it-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) return;
    originals_ = tmpl;
    for (const char* name : {"audit.jsonl.2", "audit.jsonl.1", "audit.jsonl"}) {
      fs::copy_file(agent.dir() / name, originals_ / name);
    }
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    if (!originals_.empty()) fs::remove_all(originals_, ec);
  }

  void SetUp() override {
    ASSERT_FALSE(originals_.empty()) << "the agent run that makes the log failed";
    std::string tmpl = (fs::temp_directory_path() / "opsagent-chain-case-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    for (const char* name : {"audit.jsonl.2", "audit.jsonl.1", "audit.jsonl"}) {
      fs::copy_file(originals_ / name, dir_ / name);
    }
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  [[nodiscard]] std::vector<fs::path> files() const {
    return {dir_ / "audit.jsonl.2", dir_ / "audit.jsonl.1", dir_ / "audit.jsonl"};
  }
  // Changes the lines of the middle file.
  template <typename Fn>
  void damage_middle(Fn fn) {
    auto lines = lines_of(read_all(dir_ / "audit.jsonl.1"));
    ASSERT_GE(lines.size(), 6U);
    fn(lines);
    write_all(dir_ / "audit.jsonl.1", join(lines));
  }
  // Expects exit 1 and the first problem reported at `where` (file:line) as `kind`.
  void expect_broken(const std::vector<fs::path>& which, const std::string& where,
                     const std::string& kind) {
    const RunResult r = verify(which);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("FAIL: " + (dir_ / where).string() + ": " + kind + ": "),
              std::string::npos)
        << r.output;
  }

  static inline fs::path originals_;
  fs::path dir_;
};

TEST_F(AuditChain, VerifiesARealRunAcrossTwoRotations) {
  const RunResult r = verify(files());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("OK: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" records in 3 files, chain intact"), std::string::npos) << r.output;
  // Each file starts with its header; the rotated ones say why.
  for (const auto& f : files()) {
    EXPECT_EQ(
        lines_of(read_all(f)).at(0).find("\"event\":\"audit_file_start\"") != std::string::npos,
        true)
        << f;
  }
  EXPECT_NE(read_all(dir_ / "audit.jsonl").find("\"reason\":\"reopen\""), std::string::npos);
}

TEST_F(AuditChain, FindsAnEditedByte) {
  damage_middle([](auto& lines) { lines[2][lines[2].size() - 4] ^= 1; });
  expect_broken(files(), "audit.jsonl.1:3", "edited");
}

TEST_F(AuditChain, FindsADeletedLine) {
  damage_middle([](auto& lines) { lines.erase(lines.begin() + 3); });
  expect_broken(files(), "audit.jsonl.1:4", "deleted");
}

TEST_F(AuditChain, FindsAnInsertedLine) {
  damage_middle([](auto& lines) { lines.insert(lines.begin() + 3, lines[2]); });
  expect_broken(files(), "audit.jsonl.1:4", "inserted");
}

TEST_F(AuditChain, FindsTwoSwappedLines) {
  damage_middle([](auto& lines) { std::swap(lines[2], lines[3]); });
  expect_broken(files(), "audit.jsonl.1:3", "reordered");
}

TEST_F(AuditChain, FindsAFileTruncatedInTheMiddle) {
  std::string text = read_all(dir_ / "audit.jsonl.1");
  const auto lines = lines_of(text);
  text.resize(lines[0].size() + 1 + lines[1].size() + 1 + lines[2].size() / 2);
  write_all(dir_ / "audit.jsonl.1", text);
  expect_broken(files(), "audit.jsonl.1:3", "truncated");
}

TEST_F(AuditChain, FindsAMissingRotatedFile) {
  expect_broken({dir_ / "audit.jsonl.2", dir_ / "audit.jsonl"}, "audit.jsonl:1", "missing_file");
}

TEST_F(AuditChain, ReportsATornLastLineAsACrashNotTampering) {
  std::string text = read_all(dir_ / "audit.jsonl");
  text.resize(text.size() - 30);
  write_all(dir_ / "audit.jsonl", text);
  const RunResult r = verify(files());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("TORN: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("not tampering"), std::string::npos) << r.output;
}

TEST(AuditChainRun, AKeyedChainVerifiesOnlyWithItsKey) {
  std::string tmpl = (fs::temp_directory_path() / "opsagent-chain-key-XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const fs::path keys = tmpl;
  write_all(keys / "chain.key", "0123456789abcdef0123456789abcdef\n");
  write_all(keys / "other.key", "not the key\n");
  fs::permissions(keys / "chain.key", fs::perms::owner_read | fs::perms::owner_write);
  AgentSpec spec{kTestPolicy, {}};
  spec.sections["audit"] = "{path: " + (keys / "audit.jsonl").string() +
                           ", chain_key_file: " + (keys / "chain.key").string() + "}";
  {
    AgentProcess agent{spec};
    ASSERT_NE(agent.port(), 0);
    run_commands(agent);
    agent.stop();
  }
  const fs::path log = keys / "audit.jsonl";
  EXPECT_NE(read_all(log).find("\"chain\":\"hmac-sha256\""), std::string::npos);
  EXPECT_EQ(read_all(log).find("0123456789abcdef0123"), std::string::npos) << "the key leaked";
  const RunResult right = verify({log}, keys / "chain.key");
  EXPECT_EQ(right.exit_code, 0) << right.output;
  const RunResult none = verify({log});
  EXPECT_EQ(none.exit_code, 1) << none.output;
  EXPECT_NE(none.output.find("key: the chain is keyed"), std::string::npos) << none.output;
  const RunResult wrong = verify({log}, keys / "other.key");
  EXPECT_EQ(wrong.exit_code, 1) << wrong.output;
  // A key file others may read is refused at start-up, naming the file and the key.
  fs::permissions(keys / "chain.key", fs::perms::group_read, fs::perm_options::add);
  const fs::path config = keys / "agent.yaml";
  {
    AgentProcess probe{AgentSpec{kTestPolicy, {}}};
    ASSERT_NE(probe.port(), 0);
    std::string yaml = read_all(probe.dir() / "agent.yaml");
    probe.stop();
    const auto at = yaml.find("audit:");
    ASSERT_NE(at, std::string::npos) << yaml;
    const auto eol = yaml.find('\n', at);
    yaml.replace(at, eol - at,
                 "audit: {path: " + (keys / "audit2.jsonl").string() +
                     ", chain_key_file: " + (keys / "chain.key").string() + "}");
    write_all(config, yaml);
    fs::permissions(config, fs::perms::owner_read | fs::perms::owner_write);
    const RunResult bad = run_agent_binary({"--check-config", "--config", config.string()});
    EXPECT_EQ(bad.exit_code, 78) << bad.output << yaml;
    EXPECT_NE(bad.output.find("chain_key_file"), std::string::npos) << bad.output;
    EXPECT_NE(bad.output.find("chain.key"), std::string::npos) << bad.output;
    EXPECT_NE(bad.output.find("mode 0640"), std::string::npos) << bad.output;
  }
  std::error_code ec;
  fs::remove_all(keys, ec);
}

TEST(AuditChainRun, ARestartContinuesTheChainInTheSameFile) {
  std::string tmpl = (fs::temp_directory_path() / "opsagent-chain-restart-XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const fs::path dir = tmpl;
  AgentSpec spec{kTestPolicy, {}};
  spec.sections["audit"] = "{path: " + (dir / "audit.jsonl").string() + "}";
  for (int run = 0; run < 2; ++run) {
    AgentProcess agent{spec};
    ASSERT_NE(agent.port(), 0);
    run_commands(agent);
    EXPECT_EQ(agent.stop(), 0);
  }
  const std::string text = read_all(dir / "audit.jsonl");
  std::size_t headers = 0;
  for (const auto& l : lines_of(text)) headers += l.find("audit_file_start") != std::string::npos;
  EXPECT_EQ(headers, 2U);
  const RunResult r = verify({dir / "audit.jsonl"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::error_code ec;
  fs::remove_all(dir, ec);
}

TEST(AuditChainRun, KillNineUnderPingLoadLeavesALogThatVerifies) {
  std::string tmpl = (fs::temp_directory_path() / "opsagent-chain-kill-XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const fs::path dir = tmpl;
  AgentSpec spec{kTestPolicy, {}};
  spec.sections["audit"] = "{path: " + (dir / "audit.jsonl").string() + "}";
  {
    AgentProcess agent{spec};
    ASSERT_NE(agent.port(), 0);
    std::atomic<bool> stop{false};
    std::atomic<int> answered{0};
    std::vector<std::thread> load;
    for (int i = 0; i < 4; ++i) {
      auto client = agent.connect(i % 2 ? "alice" : "ci-bot");
      ASSERT_NE(client, nullptr);
      load.emplace_back([&stop, &answered, c = std::shared_ptr<TlsClient>(std::move(client))] {
        while (!stop && c->command("ping", scaled(5s)) == std::vector<std::string>{"OK pong"}) {
          ++answered;
        }
      });
    }
    const auto deadline = std::chrono::steady_clock::now() + scaled(10s);
    while (answered < 500 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    agent.kill_hard();
    stop = true;
    for (auto& t : load) t.join();
    EXPECT_GE(answered.load(), 500);
    const RunResult first = verify({dir / "audit.jsonl"});
    EXPECT_TRUE(first.exit_code == 0 || first.exit_code == 2) << first.output;
    // The next start ends a torn line, links to the last whole record, and the whole verifies.
    AgentProcess again{spec};
    ASSERT_NE(again.port(), 0);
    run_commands(again);
    EXPECT_EQ(again.stop(), 0);
  }
  const RunResult r = verify({dir / "audit.jsonl"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
}  // namespace opsagent::testing
