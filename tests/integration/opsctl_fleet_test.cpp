// opsctl for real fleets, against real agents over real TLS on loopback (issue 12):
// interruption by SIGINT mid-fan-out (the agents' commands end, the summary says which hosts
// were done, cancelled or not started), Ctrl-C in the interactive shell, and the messages for
// unreadable certificate files.

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/opsctl_harness.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/sanitizer.hpp"

namespace opsagent::testing {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace opsctl;
using nlohmann::json;

std::string policy(const std::string& nap_argv) {
  return "identities:\n"
         "  - match: {cn: alice}\n"
         "    principal: alice\n"
         "    roles: [operator]\n"
         "roles:\n"
         "  operator:\n"
         "    commands: [ping, whoami, run]\n"
         "    run: [nap]\n"
         "commands:\n"
         "  nap:\n"
         "    argv: " +
         nap_argv + "\n";
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Two agents: on 127.0.0.36 `run nap` answers at once, on 127.0.0.37 it sleeps for a minute.
// The inventory names the first q1 and the second s1..s5 (one agent standing in for five
// hosts), in that order.
class OpsctlInterrupt : public ::testing::Test {
 protected:
  void SetUp() override {
    marker_ = unique_marker("opsctl-nap");
    quick_ =
        std::make_unique<AgentProcess>(AgentSpec{policy("[/bin/echo, rested]"), {}, "127.0.0.36"});
    slow_ = std::make_unique<AgentProcess>(
        AgentSpec{policy("[" + helper_path("sleeper").string() + ", \"60\", " + marker_ + "]"),
                  {},
                  "127.0.0.37"});
    ASSERT_NE(quick_->port(), 0);
    ASSERT_NE(slow_->port(), 0);
    dir_ = make_temp_dir("opsctl-int");
    std::string inv =
        "hosts:\n  q1: {address: 127.0.0.36, port: " + std::to_string(quick_->port()) + "}\n";
    for (int i = 1; i <= 5; ++i) {
      inv += "  s" + std::to_string(i) +
             ": {address: 127.0.0.37, port: " + std::to_string(slow_->port()) + "}\n";
    }
    std::ofstream(dir_ / "fleet.yaml") << inv;
  }
  void TearDown() override {
    // Whatever happened, no sleeper outlives the test.
    slow_.reset();
    fs::remove_all(dir_);
  }

  [[nodiscard]] std::string inventory() const { return (dir_ / "fleet.yaml").string(); }

  // Waits until `count` hosts print "sleeping" (their command runs on the agent).
  static bool wait_for_sleepers(const RunningOpsctl& run, std::size_t count) {
    const auto deadline = std::chrono::steady_clock::now() + 20s + scaled(20s);
    while (std::chrono::steady_clock::now() < deadline) {
      if (count_of(run.out(), "sleeping") >= count) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  std::string marker_;
  std::unique_ptr<AgentProcess> quick_;
  std::unique_ptr<AgentProcess> slow_;
  fs::path dir_;
};

TEST_F(OpsctlInterrupt, SigintMidFanOutCancelsRunningHostsAndSummarises) {
  // -j 3: q1 finishes at once, s1..s3 then run, s4 and s5 wait for a free slot.
  RunningOpsctl run = start_opsctl({"-i", inventory(), "-j", "3", "all", "run", "nap"});
  ASSERT_TRUE(wait_for_sleepers(run, 3)) << run.out() << run.err();
  ASSERT_TRUE(run.signal(SIGINT));
  const OpsctlRun r = finish_opsctl(run, 20s + scaled(20s));
  EXPECT_EQ(r.exit_code, 130) << describe(r);
  EXPECT_TRUE(contains(r.out, "q1 | rested\n")) << r.out;
  EXPECT_TRUE(contains(r.err, "opsctl: SIGINT: stopping")) << r.err;
  EXPECT_TRUE(
      contains(r.err, "opsctl: interrupted by SIGINT: 1 done, 3 cancelled, 2 not started\n"))
      << r.err;
  EXPECT_TRUE(contains(r.err, "opsctl: 6 hosts in ")) << r.err;
  EXPECT_TRUE(contains(r.err, ": 1 ok, 3 cancelled, 2 not started\n")) << r.err;
  EXPECT_TRUE(contains(r.err, "opsctl:   cancelled: s1 s2 s3\n")) << r.err;
  EXPECT_TRUE(contains(r.err, "opsctl:   not started: s4 s5\n")) << r.err;
  EXPECT_TRUE(contains(r.err, "s1 # cancelled: interrupted by SIGINT")) << r.err;
  // Closing the connections ended the commands on the agent.
  EXPECT_TRUE(wait_no_process_with_marker(marker_, 10s + scaled(10s)))
      << "the agent still runs a command opsctl abandoned";
}

TEST_F(OpsctlInterrupt, SigintInJsonModeWritesEveryResultAndTheSummaryRecord) {
  RunningOpsctl run = start_opsctl({"-i", inventory(), "--json", "-j", "3", "all", "run", "nap"});
  ASSERT_TRUE(wait_for_sleepers(run, 3)) << run.out() << run.err();
  ASSERT_TRUE(run.signal(SIGINT));
  const OpsctlRun r = finish_opsctl(run, 20s + scaled(20s));
  EXPECT_EQ(r.exit_code, 130) << describe(r);
  std::map<std::string, std::string> status;
  json summary;
  for (const auto& text : split_lines(r.out)) {
    const json j = json::parse(text, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << text;
    if (j["type"] == "result") status[j["host"]] = j["status"];
    if (j["type"] == "summary") summary = j;
  }
  EXPECT_EQ(status, (std::map<std::string, std::string>{{"q1", "ok"},
                                                        {"s1", "cancelled"},
                                                        {"s2", "cancelled"},
                                                        {"s3", "cancelled"},
                                                        {"s4", "not_started"},
                                                        {"s5", "not_started"}}));
  ASSERT_TRUE(summary.is_object()) << r.out;
  EXPECT_EQ(split_lines(r.out).back(), summary.dump()) << "the summary comes last";
  EXPECT_EQ(summary["interrupted"], "SIGINT");
  EXPECT_EQ(summary["hosts"], 6);
  EXPECT_EQ(summary["counts"]["ok"], 1);
  EXPECT_EQ(summary["counts"]["cancelled"], 3);
  EXPECT_EQ(summary["counts"]["not_started"], 2);
  EXPECT_EQ(summary["not_ok"]["not_started"], json({"s4", "s5"}));
  EXPECT_TRUE(wait_no_process_with_marker(marker_, 10s + scaled(10s)));
}

TEST_F(OpsctlInterrupt, SigtermStopsTheFanOutToo) {
  RunningOpsctl run = start_opsctl({"-i", inventory(), "-j", "2", "s1,s2", "run", "nap"});
  ASSERT_TRUE(wait_for_sleepers(run, 2)) << run.out() << run.err();
  ASSERT_TRUE(run.signal(SIGTERM));
  const OpsctlRun r = finish_opsctl(run, 20s + scaled(20s));
  EXPECT_EQ(r.exit_code, 143) << describe(r);
  EXPECT_TRUE(contains(r.err, "interrupted by SIGTERM: 0 done, 2 cancelled, 0 not started"))
      << r.err;
  EXPECT_TRUE(wait_no_process_with_marker(marker_, 10s + scaled(10s)));
}

TEST_F(OpsctlInterrupt, CtrlCInTheShellCancelsTheCommandAndKeepsTheShell) {
  const auto r = run_on_pty({"-i", inventory(), "s1"},
                            {{"s1> ", "run nap\n"},
                             {"| sleeping", "\x03"},
                             {"command cancelled; reconnecting", ""},
                             {"s1> ", "ping\n"},
                             {"OK pong", ""},
                             {"s1> ", "exit\n"},
                             {"OK bye", ""}},
                            30s + scaled(30s));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(count_of(r.output, "OK opsagent "), 2U) << "greeted again after reconnecting\n"
                                                    << r.output;
  EXPECT_TRUE(wait_no_process_with_marker(marker_, 10s + scaled(10s)));
}

TEST_F(OpsctlInterrupt, CtrlCAtTheShellPromptDoesNotEndTheShell) {
  const auto r = run_on_pty({"-i", inventory(), "q1"},
                            {{"q1> ", "\x03"}, {"", "ping\n"}, {"OK pong", ""}, {"q1> ", "\x04"}},
                            30s + scaled(30s));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "OK bye")) << r.output;
}

TEST(OpsctlFiles, MissingCertificateFileIsNamedWithoutAnOpenSslStack) {
  const auto r = run_opsctl({"--cert", "/nonexistent/alice.crt", "127.0.0.1:1", "ping"});
  EXPECT_EQ(r.exit_code, 78) << describe(r);
  EXPECT_EQ(r.err,
            "opsctl: /nonexistent/alice.crt: cannot read the client certificate: No such file or "
            "directory\n");
}

TEST(OpsctlCompletion, BashCompletionLoadsAndCompletesOptionsHostsAndCommands) {
  const fs::path dir = make_temp_dir("opsctl-compl");
  std::ofstream(dir / "fleet.yaml")
      << "defaults: {port: 1}\nhosts:\n  web1:\n  web2:\n  db1:\ngroups:\n  dbs: [db1]\n";
  const std::string script = std::string(OPSAGENT_SOURCE_DIR) + "/scripts/completion/opsctl.bash";
  const std::string bin_dir = fs::path(OPSCTL_BINARY).parent_path().string();
  std::string out;
  const int rc = run_shell(
      "PATH='" + bin_dir +
          "':$PATH bash --norc -c '"
          "source " +
          script +
          " && complete -p opsctl && "
          "COMP_WORDS=(opsctl --ou); COMP_CWORD=1; _opsctl; echo \"1:${COMPREPLY[*]}\"; "
          "COMP_WORDS=(opsctl -o g); COMP_CWORD=2; _opsctl; echo \"2:${COMPREPLY[*]}\"; "
          "COMP_WORDS=(opsctl -i " +
          (dir / "fleet.yaml").string() +
          " we); COMP_CWORD=3; _opsctl; "
          "echo \"3:${COMPREPLY[*]}\"; "
          "COMP_WORDS=(opsctl web1 pi); COMP_CWORD=2; _opsctl; echo \"4:${COMPREPLY[*]}\"; "
          "COMP_WORDS=(opsctl --json -i " +
          (dir / "fleet.yaml").string() +
          " web1,!d); COMP_CWORD=4; _opsctl; echo \"5:${COMPREPLY[*]}\"; "
          "COMP_WORDS=(opsctl -l d); COMP_CWORD=2; OPSCTL_INVENTORY=" +
          (dir / "fleet.yaml").string() + " _opsctl; echo \"6:${COMPREPLY[*]}\"' 2>&1",
      &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_TRUE(contains(out, "complete -F _opsctl opsctl")) << out;
  EXPECT_TRUE(contains(out, "1:--output\n")) << out;
  EXPECT_TRUE(contains(out, "2:grouped\n")) << out;
  EXPECT_TRUE(contains(out, "3:web1 web2\n")) << out;
  EXPECT_TRUE(contains(out, "4:ping\n")) << out;
  // Groups too, as the last term of a pattern (with its '!') and for --limit.
  EXPECT_TRUE(contains(out, "5:web1,!dbs web1,!db1\n")) << out;
  EXPECT_TRUE(contains(out, "6:dbs db1\n")) << out;
  fs::remove_all(dir);
}

TEST(OpsctlCompletion, ZshCompletionParses) {
  std::string out;
  if (run_shell("command -v zsh >/dev/null 2>&1", &out) != 0)
    GTEST_SKIP() << "zsh is not installed (scripts/install-deps.sh installs it)";
  const std::string script = std::string(OPSAGENT_SOURCE_DIR) + "/scripts/completion/_opsctl";
  EXPECT_EQ(run_shell("zsh -n '" + script + "' 2>&1", &out), 0) << out;
  EXPECT_EQ(out, "");
  // It declares every option of --help (the two lists must not drift apart).
  const std::string text = slurp(script);
  for (const std::string option :
       {"--inventory", "--limit", "--output", "--table", "--collapse", "--sort", "--quiet",
        "--color", "--serial", "--max-fail", "--list-names", "--retry-file"})
    EXPECT_TRUE(contains(text, option)) << option;
}

}  // namespace
}  // namespace opsagent::testing
