// Every command against the real agent: files, digests, subprocesses and their limits.

#include <filesystem>
#include <fstream>
#include <regex>
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

std::string joined(const std::vector<std::string>& lines) {
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  return all;
}

class Commands : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(agent.dir() / "files" / "sub");
    std::ofstream(agent.dir() / "files" / "data.txt") << "hello opsagent\n";
    std::ofstream(agent.dir() / "secret.txt") << "canary-secret\n";
    fs::create_symlink(agent.dir() / "secret.txt", agent.dir() / "files" / "link.txt");
    client = agent.connect("alice");
  }
  std::string file(const std::string& rel) const { return (agent.dir() / rel).string(); }

  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  std::unique_ptr<TlsClient> client;
};

TEST_F(Commands, TailsNamedLogs) {
  const auto r = client->command("tail app 3");
  EXPECT_EQ(r, (std::vector<std::string>{"| syslog line 13", "| syslog line 14", "| syslog line 15",
                                         "OK app lines=3"}));
  EXPECT_EQ(client->command("tail app").size(), 11U) << "ten lines by default";
}

TEST_F(Commands, RefusesUnnamedLogsAndBadLineCounts) {
  EXPECT_EQ(client->command("tail /etc/passwd")[0].rfind("ERR denied ", 0), 0U);
  for (const char* n : {"0", "-1", "1e9", "0x10", "10;", "99999999999"}) {
    const auto r = client->command(std::string("tail app ") + n);
    ASSERT_EQ(r.size(), 1U) << n;
    EXPECT_EQ(r[0].rfind("ERR denied ", 0), 0U) << n << ": " << r[0];
  }
}

TEST_F(Commands, LastlogShowsTheLastTenSystemLogLines) {
  const auto r = client->command("lastlog");
  ASSERT_EQ(r.size(), 11U) << joined(r);
  EXPECT_EQ(r[0], "| syslog line 6");
  EXPECT_EQ(r.back(), "OK lastlog lines=10");
}

TEST_F(Commands, ComphashIsSha1LikeTheSeed) {
  std::string expected;
  ASSERT_EQ(
      run_shell("openssl dgst -sha1 -r " + file("files/data.txt") + " | cut -d' ' -f1", &expected),
      0);
  expected.pop_back();
  const auto r = client->command("comphash " + file("files/data.txt"));
  ASSERT_EQ(r.size(), 1U);
  EXPECT_EQ(r[0], "OK sha1 " + expected + " bytes=15 path=" + file("files/data.txt"));
}

TEST_F(Commands, HashesWithTheRequestedAlgorithm) {
  for (const std::string& alg : std::vector<std::string>{"sha256", "sha512"}) {
    std::string expected;
    ASSERT_EQ(
        run_shell("openssl dgst -" + alg + " -r " + file("files/data.txt") + " | cut -d' ' -f1",
                  &expected),
        0);
    expected.pop_back();
    const auto r = client->command("hash " + alg + " " + file("files/data.txt"));
    ASSERT_EQ(r.size(), 1U);
    EXPECT_EQ(r[0].rfind("OK " + alg + " " + expected + " ", 0), 0U) << r[0];
  }
  EXPECT_EQ(client->command("hash md5 " + file("files/data.txt"))[0].rfind("ERR denied", 0), 0U);
}

TEST_F(Commands, RefusesPathsOutsideTheAllowedTree) {
  for (const std::string& p : {file("secret.txt"), file("files/../secret.txt"),
                               file("files//data.txt"), std::string("files/data.txt"),
                               file("files/%2e%2e/secret.txt"), std::string("/etc/shadow")}) {
    const auto r = client->command("hash sha256 " + p);
    ASSERT_EQ(r.size(), 1U) << p;
    EXPECT_TRUE(r[0].rfind("ERR denied", 0) == 0 || r[0].rfind("ERR notfound", 0) == 0)
        << p << ": " << r[0];
    EXPECT_EQ(r[0].find("canary"), std::string::npos);
  }
}

TEST_F(Commands, NeverFollowsSymlinks) {
  const auto r = client->command("hash sha256 " + file("files/link.txt"));
  ASSERT_EQ(r.size(), 1U);
  EXPECT_EQ(r[0].rfind("ERR denied", 0), 0U) << r[0];
}

TEST_F(Commands, RefusesNonRegularFiles) {
  ASSERT_EQ(::mkfifo(file("files/fifo").c_str(), 0600), 0);
  // Opening a FIFO without a writer would block for ever: any reply shows it did not.
  const auto r = client->command("hash sha256 " + file("files/fifo"));
  ASSERT_EQ(r.size(), 1U) << "a FIFO must never block: " << client->last_error();
  EXPECT_EQ(r[0].rfind("ERR denied", 0), 0U) << r[0];
  EXPECT_EQ(client->command("hash sha256 " + file("files/sub"))[0].rfind("ERR denied", 0), 0U);
  EXPECT_EQ(client->command("hash sha256 " + file("files/nope"))[0].rfind("ERR notfound", 0), 0U);
}

TEST_F(Commands, RunPassesArgumentsLiterallyWithACleanEnvironment) {
  const auto r = client->command("run echo-args '$(id)' \"a b;c\" *");
  ASSERT_EQ(r.size(), 2U) << joined(r);
  EXPECT_EQ(r[1].rfind("OK done exit=0 ", 0), 0U) << r[1];
  ASSERT_EQ(r[0].rfind("| ", 0), 0U);
  const auto j = nlohmann::json::parse(r[0].substr(2));
  EXPECT_EQ(j["argv"], (nlohmann::json{helper_path("argv-echo").string(), "fixed", "--", "$(id)",
                                       "a b;c", "*"}));
  EXPECT_EQ(j["env"], (nlohmann::json{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}));
  EXPECT_EQ(j["fds"], (nlohmann::json{0, 1, 2}));
  EXPECT_EQ(j["stdin"], "devnull");
  EXPECT_EQ(j["cwd"], "/");
}

TEST_F(Commands, RunRefusesArgumentsThePolicyDoesNotAllow) {
  const auto r = client->command("run slow 'Not A Marker'");
  ASSERT_EQ(r.size(), 1U);
  EXPECT_EQ(r[0].rfind("ERR denied ", 0), 0U) << r[0];
  EXPECT_EQ(client->command("run slow")[0].rfind("ERR denied ", 0), 0U)
      << "missing required argument";
  EXPECT_EQ(client->command("run /bin/sh")[0].rfind("ERR denied ", 0), 0U);
}

TEST_F(Commands, RunReportsNonZeroExitStatus) {
  const auto r = client->command("run fail");
  ASSERT_EQ(r.size(), 1U);
  EXPECT_EQ(r[0].rfind("ERR failed command exited with status 1 exit=1 ", 0), 0U) << r[0];
  const auto rec = agent.wait_for_audit("command_end", "exit", 1);
  EXPECT_EQ(rec["status"], "failed");
}

TEST_F(Commands, RunReportsAMissingProgram) {
  const auto r = client->command("run missing");
  ASSERT_EQ(r.size(), 1U);
  EXPECT_EQ(r[0].rfind("ERR notfound", 0), 0U) << r[0];
  EXPECT_EQ(client->command("ping"), std::vector<std::string>{"OK pong"});
}

TEST_F(Commands, RunStreamsOutputBeforeTheChildExitsAndTimesOut) {
  // Output streams, not waits for the exit: forker's line arrives while it still runs (its
  // time limit is 60 s), whatever the speed of the build.
  {
    const std::string forker_marker = unique_marker("stream");
    auto streamer = agent.connect("alice");
    ASSERT_TRUE(streamer->write("run forker " + forker_marker + "\n"));
    const auto line = streamer->read_line();
    ASSERT_TRUE(line.has_value()) << streamer->last_error();
    EXPECT_EQ(line->rfind("| child=", 0), 0U) << *line;
    EXPECT_FALSE(wait_no_process_with_marker(forker_marker, 0ms))
        << "the first line came only after the command had ended";
    streamer->reset();
    EXPECT_TRUE(wait_no_process_with_marker(forker_marker, 2s + scaled(2s)));
  }
  // And a command past its 1 s time limit is killed, after streaming what it printed.
  const std::string marker = unique_marker("slow");
  ASSERT_TRUE(client->write("run slow " + marker + "\n"));
  const auto first = client->read_line();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, "| sleeping");
  const auto rest = client->read_reply(1s + scaled(9s));
  ASSERT_EQ(rest.size(), 1U);
  EXPECT_EQ(rest[0].rfind("ERR timeout command exceeded its time limit of 1s; killed signal=15", 0),
            0U)
      << rest[0];
  EXPECT_TRUE(wait_no_process_with_marker(marker, 2s));
  const auto rec = agent.wait_for_audit("command_end", "status", "timeout");
  EXPECT_EQ(rec["signal"], 15);
}

TEST_F(Commands, RunKillsTheWholeTreeWhenTheClientDisconnects) {
  const std::string marker = unique_marker("forker");
  ASSERT_TRUE(client->write("run forker " + marker + "\n"));
  const auto line = client->read_line();
  ASSERT_TRUE(line.has_value());
  std::smatch m;
  ASSERT_TRUE(std::regex_search(*line, m, std::regex(R"(child=(\d+) grandchild=(\d+))"))) << *line;
  const pid_t child = std::stoi(m[1].str());
  const pid_t grandchild = std::stoi(m[2].str());
  EXPECT_TRUE(process_alive(child));
  EXPECT_TRUE(process_alive(grandchild));
  client->reset();
  EXPECT_TRUE(wait_no_process_with_marker(marker, 2s));
  // A killed process loses its command line (the marker) before it is a zombie: wait for the
  // pids themselves too.
  EXPECT_TRUE(wait_process_gone(child, 1s));
  EXPECT_TRUE(wait_process_gone(grandchild, 1s));
  const auto rec = agent.wait_for_audit("command_end", "client_gone", true);
  EXPECT_EQ(rec["signal"], 9);
}

// SECURITY-MATRIX D3: a grandchild that leaves the process group with setsid() and keeps stdout
// open neither holds the reply (bounded drain) nor survives the command (subreaper sweep).
TEST_F(Commands, RunLeavesNoEscapedDescendantsBehind) {
  const std::string marker = unique_marker("escaper");
  // The escapee keeps stdout open for 1000 s: a reply at all shows the drain is bounded.
  const auto r = client->command("run escaper " + marker);
  ASSERT_EQ(r.size(), 2U) << joined(r) << client->last_error();
  EXPECT_EQ(r[0].rfind("| escaped=", 0), 0U) << r[0];
  EXPECT_EQ(r[1].rfind("OK done exit=0 ", 0), 0U) << r[1];
  const pid_t escaped = std::stoi(r[0].substr(std::string("| escaped=").size()));
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (process_alive(escaped) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_FALSE(process_alive(escaped)) << "the setsid escapee survived";
}

TEST_F(Commands, RunKillsChildrenThatExceedTheOutputCap) {
  const auto r = client->command("run flood", 20s);
  ASSERT_FALSE(r.empty());
  EXPECT_EQ(r.back().rfind("ERR limit command output exceeded 65536 bytes; killed", 0), 0U)
      << r.back();
  EXPECT_LT(r.size(), 2000U);
  EXPECT_EQ(client->command("ping"), std::vector<std::string>{"OK pong"});
}

TEST_F(Commands, ReaderIsDeniedRunByExplicitDeny) {
  auto reader = agent.connect("ci-bot");
  const auto r = reader->command("run fail");
  ASSERT_EQ(r.size(), 1U);
  EXPECT_EQ(r[0].rfind("ERR denied ", 0), 0U) << r[0];
  const auto rec = agent.wait_for_audit("command", "principal", "ci-bot");
  EXPECT_EQ(rec["decision"], "deny");
  EXPECT_EQ(rec["rule"], "roles.reader.deny");
  EXPECT_EQ(rec["args"], nlohmann::json{"fail"});
}

TEST_F(Commands, AuditsEveryDecisionAndResult) {
  client->command("ping");
  client->command("tail app 1");
  client->command("tail nope");
  client->command("exit");
  client->wait_closed();
  agent.wait_for_audit("disconnect");
  std::vector<std::string> events;
  std::uint64_t last_seq = 0;
  for (const auto& r : agent.audit()) {
    EXPECT_GT(r["seq"].get<std::uint64_t>(), last_seq);
    last_seq = r["seq"].get<std::uint64_t>();
    EXPECT_TRUE(r.contains("ts"));
    if (r.value("principal", "") == "alice")
      events.push_back(r["event"].get<std::string>() + ":" +
                       r.value("decision", r.value("status", "")));
  }
  // ping runs nothing: one record, decision and outcome together.
  EXPECT_EQ(events,
            (std::vector<std::string>{"auth_ok:", "command:allow", "command:allow",
                                      "command_end:ok", "command:deny", "command_end:denied",
                                      "command:allow", "command_end:ok", "disconnect:"}));
}

}  // namespace
}  // namespace opsagent::testing

namespace opsagent::testing {
namespace {

TEST(CommandLimits, RefusesToHashFilesOverTheSizeCapAtOnce) {
  AgentProcess agent{AgentSpec{kTestPolicy, {{"limits", "{max_hash_bytes: 1MiB}"}}}};
  fs::create_directories(agent.dir() / "files");
  const fs::path sparse = agent.dir() / "files" / "huge.img";
  { std::ofstream(sparse) << ""; }
  fs::resize_file(sparse, std::uintmax_t{64} << 30);  // 64 GiB, sparse (SECURITY-MATRIX C11)
  auto client = agent.connect("alice");
  const auto r = client->command("hash sha256 " + sparse.string());
  ASSERT_EQ(r.size(), 1U);
  // Refused on the file's size, before reading any of it: the message names the full 64 GiB.
  EXPECT_EQ(
      r[0].rfind("ERR limit file is larger than max_hash_bytes (68719476736 > 1048576 bytes)", 0),
      0U)
      << r[0];
}

}  // namespace
}  // namespace opsagent::testing
