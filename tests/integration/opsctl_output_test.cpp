// opsctl's readable output against real agents over real TLS on loopback (issue 12): --collapse,
// --sort, the table, --quiet, stderr marked in grouped output, and colours only where asked
// for (a terminal without NO_COLOR, or --color=always). Exit statuses are those of the plain
// output modes.

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/opsctl_harness.hpp"
#include "tests/support/agent_process.hpp"

namespace opsagent::testing {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace opsctl;

std::string policy(const std::string& greet_argv) {
  return "identities:\n"
         "  - match: {cn: alice}\n"
         "    principal: alice\n"
         "    roles: [operator]\n"
         "roles:\n"
         "  operator:\n"
         "    commands: [ping, run]\n"
         "    run: [greet]\n"
         "commands:\n"
         "  greet:\n"
         "    argv: " +
         greet_argv + "\n";
}

// Two agents: on 127.0.0.38 `run greet` prints "same" and exits 0; on 127.0.0.39 it prints
// "other" and "warn" (stderr) and exits 2. The inventory names the first web10, web2, web1 and
// the second db2, db1 (one agent standing in for several hosts), in that order, and down1
// where nothing listens.
class OpsctlOutput : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    web_ = new AgentProcess(AgentSpec{policy("[/bin/echo, same]"), {}, "127.0.0.38"});
    db_ = new AgentProcess(
        AgentSpec{policy("[/bin/sh, -c, 'echo other; echo warn >&2; exit 2']"), {}, "127.0.0.39"});
    dir_ = new fs::path(make_temp_dir("opsctl-out"));
    const std::string web = "{address: 127.0.0.38, port: " + std::to_string(web_->port()) + "}";
    const std::string db = "{address: 127.0.0.39, port: " + std::to_string(db_->port()) + "}";
    std::ofstream(*dir_ / "fleet.yaml")
        << "hosts:\n  web10: " << web << "\n  web2: " << web << "\n  web1: " << web
        << "\n  db2: " << db << "\n  db1: " << db
        << "\n  down1: {address: 127.0.0.40, port: 1}\n"
           "groups:\n  web: [web10, web2, web1]\n  db: [db2, db1]\n";
  }
  static void TearDownTestSuite() {
    delete web_;
    delete db_;
    fs::remove_all(*dir_);
    delete dir_;
  }
  void SetUp() override {
    ASSERT_NE(web_->port(), 0);
    ASSERT_NE(db_->port(), 0);
  }

  static std::string inventory() { return (*dir_ / "fleet.yaml").string(); }
  static OpsctlRun opsctl(std::vector<std::string> args,
                          const std::map<std::string, std::string>& env = {}) {
    args.insert(args.begin(), {"-i", inventory(), "-t", "30s"});
    return run_opsctl(args, env);
  }

  static AgentProcess* web_;
  static AgentProcess* db_;
  static fs::path* dir_;
};
AgentProcess* OpsctlOutput::web_ = nullptr;
AgentProcess* OpsctlOutput::db_ = nullptr;
fs::path* OpsctlOutput::dir_ = nullptr;

TEST_F(OpsctlOutput, CollapseGroupsHostsWithTheSameOutputUnderOneHeader) {
  const auto r = opsctl({"--collapse", "web,db,down1", "run", "greet"});
  // The exit status of the same fan-out without --collapse: unreachable (68) before failed (1).
  EXPECT_EQ(r.exit_code, 68) << describe(r);
  EXPECT_EQ(r.out,
            "=== web10,web2,web1 (3 hosts, ok, exit 0)\nsame\n"
            "=== db2,db1 (2 hosts, failed, exit 2): command exited with status 2\nother\n"
            "=== down1 (1 host, unreachable): cannot connect to 127.0.0.40:1: Connection "
            "refused\n")
      << describe(r);
  // stderr lines are marked, once per group; the summary follows.
  EXPECT_EQ(r.err.rfind("! warn\nopsctl: 6 hosts in ", 0), 0U) << describe(r);
  EXPECT_TRUE(contains(r.err, ": 3 ok, 2 failed, 1 unreachable\n")) << describe(r);
}

TEST_F(OpsctlOutput, SortOrdersHostsByNameWithNumbersAsNumbers) {
  auto r = opsctl({"--collapse", "--sort", "web,db", "run", "greet"});
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  EXPECT_EQ(r.out,
            "=== db1,db2 (2 hosts, failed, exit 2): command exited with status 2\nother\n"
            "=== web1,web2,web10 (3 hosts, ok, exit 0)\nsame\n")
      << describe(r);

  r = opsctl({"--sort", "-j", "5", "web,db", "run", "greet"});
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  EXPECT_EQ(r.out, "db1   | other\ndb2   | other\nweb1  | same\nweb2  | same\nweb10 | same\n")
      << describe(r);
  EXPECT_EQ(r.err.rfind("db1   ! warn\ndb1   # failed: ", 0), 0U) << describe(r);

  r = opsctl({"-o", "grouped", "--sort", "web1,web10,db1", "run", "greet"});
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  const auto db1 = r.out.find("=== db1 (failed, exit 2, ");
  const auto web1 = r.out.find("=== web1 (ok, exit 0, ");
  const auto web10 = r.out.find("=== web10 (ok, exit 0, ");
  ASSERT_NE(db1, std::string::npos) << r.out;
  EXPECT_LT(db1, web1) << r.out;
  EXPECT_LT(web1, web10) << r.out;
  EXPECT_TRUE(contains(r.err, "! warn\n")) << describe(r);
}

TEST_F(OpsctlOutput, GroupedOutputMarksStderrLines) {
  const auto r = opsctl({"-o", "grouped", "db1", "run", "greet"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);  // one host: the remote status
  EXPECT_EQ(r.out.rfind("=== db1 (failed, exit 2, ", 0), 0U) << describe(r);
  EXPECT_TRUE(contains(r.out, "): command exited with status 2\nother\n")) << describe(r);
  EXPECT_EQ(r.err, "! warn\n") << describe(r);
}

TEST_F(OpsctlOutput, TableShowsOneRowPerHost) {
  const auto r = opsctl({"--table", "--sort", "web1,db1,down1", "run", "greet"});
  EXPECT_EQ(r.exit_code, 68) << describe(r);
  const auto lines = split_lines(r.out);
  ASSERT_EQ(lines.size(), 4U) << describe(r);
  EXPECT_EQ(lines[0], "HOST   STATUS       EXIT  DURATION  MESSAGE");
  EXPECT_EQ(lines[1].rfind("db1    failed          2  ", 0), 0U) << lines[1];
  EXPECT_EQ(lines[2].rfind("down1  unreachable     -  ", 0), 0U) << lines[2];
  EXPECT_TRUE(contains(lines[2], "  cannot connect to 127.0.0.40:1: Connection refused"))
      << lines[2];
  EXPECT_EQ(lines[3].rfind("web1   ok              0  ", 0), 0U) << lines[3];
  // No data lines anywhere, only the summary on stderr.
  EXPECT_FALSE(contains(r.out + r.err, "same")) << describe(r);
  EXPECT_FALSE(contains(r.err, "warn")) << describe(r);
  EXPECT_EQ(r.err.rfind("opsctl: 3 hosts in ", 0), 0U) << describe(r);
}

TEST_F(OpsctlOutput, QuietPrintsOnlyTheSummaryAndKeepsTheExitStatus) {
  auto r = opsctl({"-q", "web,db", "run", "greet"});
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  EXPECT_EQ(r.out, "") << describe(r);
  const auto lines = split_lines(r.err);
  ASSERT_EQ(lines.size(), 2U) << describe(r);
  EXPECT_TRUE(contains(lines[0], ": 3 ok, 2 failed")) << describe(r);
  EXPECT_EQ(lines[1], "opsctl:   failed: db2 db1") << describe(r);

  r = opsctl({"-q", "--no-summary", "web", "run", "greet"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out + r.err, "") << describe(r);

  r = opsctl({"-q", "--json", "web", "ping"});  // only the summary record
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  ASSERT_EQ(split_lines(r.out).size(), 1U) << describe(r);
  EXPECT_TRUE(contains(r.out, R"("type":"summary")")) << describe(r);
}

TEST_F(OpsctlOutput, OutputThatCannotBeWrittenIsAnErrorNotASuccess) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "/dev/full is not available";
  const auto to_full_disk = [](std::vector<std::string> args) {
    args.insert(args.begin(), {"-i", inventory(), "-t", "30s"});
    RunningOpsctl run = start_opsctl(args, {}, "/dev/full");
    return finish_opsctl(run);
  };
  // Every host succeeded, but what they said never reached the file: not a success (74).
  auto r = to_full_disk({"web", "run", "greet"});
  EXPECT_EQ(r.exit_code, 74) << describe(r);
  EXPECT_TRUE(contains(r.err, "opsctl: cannot write to standard output: No space left on device\n"))
      << describe(r);
  r = to_full_disk({"--json", "web1", "ping"});
  EXPECT_EQ(r.exit_code, 74) << describe(r);
  r = to_full_disk({"--help"});
  EXPECT_EQ(r.exit_code, 74) << describe(r);
  // A status that already reports a failure is kept: the remote command's 2 here.
  r = to_full_disk({"db1", "run", "greet"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "opsctl: cannot write to standard output")) << describe(r);
}

TEST_F(OpsctlOutput, ColoursOnlyOnATerminalWithoutNoColorOrWhenAsked) {
  const std::string csi = "\x1b[";
  const std::vector<std::string> args = {"-i",       inventory(), "-t",   "30s",
                                         "web1,db1", "run",       "greet"};
  // A pipe: no colours, unless --color=always.
  auto piped = run_opsctl(args);
  EXPECT_FALSE(contains(piped.out + piped.err, csi)) << describe(piped);
  std::vector<std::string> always = {"--color=always"};
  always.insert(always.end(), args.begin(), args.end());
  piped = run_opsctl(always, {{"NO_COLOR", "1"}});
  EXPECT_EQ(piped.exit_code, 1) << describe(piped);
  EXPECT_TRUE(contains(piped.out, "\x1b[36mweb1\x1b[0m | same\n")) << describe(piped);
  EXPECT_TRUE(contains(piped.err, "\x1b[36mdb1\x1b[0m  \x1b[31m!\x1b[0m warn\n"))
      << describe(piped);

  // A terminal: colours, but not with NO_COLOR, TERM=dumb or --color=never.
  const auto tty = run_on_pty(args, {}, 30s, {{"TERM", "xterm"}});
  EXPECT_EQ(tty.exit_code, 1) << tty.output;
  EXPECT_TRUE(contains(tty.output, "\x1b[36mweb1\x1b[0m | same")) << tty.output;
  const auto no_color = run_on_pty(args, {}, 30s, {{"TERM", "xterm"}, {"NO_COLOR", "1"}});
  EXPECT_EQ(no_color.exit_code, 1) << no_color.output;
  EXPECT_TRUE(contains(no_color.output, "web1 | same")) << no_color.output;
  std::vector<std::string> never = {"--color", "never"};
  never.insert(never.end(), args.begin(), args.end());
  const auto off = run_on_pty(never, {}, 30s, {{"TERM", "xterm"}});
  const auto dumb = run_on_pty(args, {}, 30s);
  for (const auto* run : {&no_color, &off, &dumb}) {
    // The progress line uses "\r\x1b[K" on a terminal; no SGR (colour) sequence appears.
    EXPECT_FALSE(contains(run->output, "\x1b[3")) << run->output;
    EXPECT_FALSE(contains(run->output, "\x1b[0m")) << run->output;
  }
}

TEST_F(OpsctlOutput, ListNamesGivesGroupsAndHostsForCompletion) {
  const auto r = run_opsctl({"-i", inventory(), "--list-names"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out, "all\ndb\nweb\nweb10\nweb2\nweb1\ndb2\ndb1\ndown1\n") << describe(r);
  const auto none = run_opsctl({"--list-names"});
  EXPECT_EQ(none.exit_code, 64) << describe(none);
}

}  // namespace
}  // namespace opsagent::testing
