// opsctl against real agents over real TLS on loopback: one host, a fleet of 20+ agents on
// 127.0.0.2..21 with hosts down, denying, timing out and presenting the wrong certificate,
// JSON output, inventories, and the interactive shell through a pseudo-terminal; and against a
// hostile fake agent that sends terminal escapes (SECURITY-MATRIX I11).

#include <algorithm>
#include <cstdint>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <poll.h>
#include <pty.h>
#include <set>
#include <signal.h>
#include <spawn.h>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <termios.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/opsctl_harness.hpp"
#include "tests/integration/test_policy.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/fake_agent.hpp"

extern char** environ;

namespace opsagent::testing {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;
using namespace opsctl;

constexpr int kFirstAgent = 2;  // 127.0.0.2
constexpr int kAgents = 20;     // .. 127.0.0.21
constexpr int kDeniedHost = 5;
constexpr int kTimeoutHost = 7;
constexpr int kFailedHost = 9;
constexpr int kWrongCertHost = 11;
const std::vector<int> kDownHosts = {30, 31, 32};  // nothing listens on port 1 there

std::string host_name(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "n%02d", i);
  return buf;
}

std::string policy_for(int i) {
  const std::string identities =
      "identities:\n"
      "  - match: {cn: alice}\n"
      "    principal: alice\n"
      "    roles: [operator]\n";
  if (i == kDeniedHost) {
    return identities +
           "roles:\n  operator:\n    commands: [ping, whoami]\n"
           "commands:\n  greet:\n    argv: [/bin/true]\n";
  }
  std::string greet;
  if (i == kTimeoutHost) {
    greet = "    argv: [" + helper_path("sleeper").string() + ", \"30\"]\n    timeout: 1s\n";
  } else if (i == kFailedHost) {
    greet = "    argv: [/bin/sh, -c, 'echo partial; exit 3']\n";
  } else {
    greet =
        "    argv: [/bin/sh, -c, 'echo \"hello from $0\"; echo \"second line $0\"; echo \"note "
        "$0\" >&2', " +
        host_name(i) + "]\n";
  }
  return identities + "roles:\n  operator:\n    commands: [ping, whoami, run]\n    run: [greet]\n" +
         "commands:\n  greet:\n" + greet;
}

// Twenty agents plus three addresses where nothing listens, shared by the fleet tests.
class OpsctlFleet : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(make_temp_dir("opsctl-fleet"));
    const TestPki& pki = TestPki::get();
    // A server certificate from the trusted CA, but for another name only.
    const std::string d = dir_->string();
    const std::string script =
        "set -e; cd " + d +
        "; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key "
        "2>/dev/null"
        "; chmod 600 other.key"
        "; openssl req -new -key other.key -subj /CN=other.example -out other.csr 2>/dev/null"
        "; printf "
        "'subjectAltName=DNS:other.example\\nextendedKeyUsage=serverAuth\\nkeyUsage=critical,"
        "digitalSignature\\n"
        "basicConstraints=critical,CA:FALSE\\n' > ext.cnf"
        "; openssl x509 -req -in other.csr -CA " +
        pki.ca().string() + " -CAkey " + (pki.dir / "ca.key").string() +
        " -set_serial 0x4242 -days 2 -sha256 -extfile ext.cnf -out other.crt 2>/dev/null";
    std::string out;
    ASSERT_EQ(run_shell(script + " 2>&1", &out), 0) << out;

    agents_ = new std::map<int, std::unique_ptr<AgentProcess>>();
    std::vector<std::future<std::unique_ptr<AgentProcess>>> starting;
    for (int i = kFirstAgent; i < kFirstAgent + kAgents; ++i) {
      AgentSpec spec{policy_for(i), {}, "127.0.0." + std::to_string(i)};
      if (i == kWrongCertHost) {
        spec.sections["tls"] = "{certificate: " + d + "/other.crt, private_key: " + d +
                               "/other.key, client_ca: " + pki.ca().string() + "}";
      }
      starting.push_back(
          std::async(std::launch::async, [spec] { return std::make_unique<AgentProcess>(spec); }));
    }
    int i = kFirstAgent;
    for (auto& f : starting) (*agents_)[i++] = f.get();

    std::string inv = "hosts:\n";
    for (const auto& [n, agent] : *agents_) {
      inv += "  " + host_name(n) + ": {address: 127.0.0." + std::to_string(n) +
             ", port: " + std::to_string(agent->port()) + "}\n";
    }
    for (const int n : kDownHosts)
      inv += "  down" + std::to_string(n) + ": {address: 127.0.0." + std::to_string(n) +
             ", port: 1}\n";
    inv += "groups:\n  broken: [n05, n07, n09, n11]\n  down: [down30, down31, down32]\n";
    std::ofstream(*dir_ / "fleet.yaml") << inv;
  }

  static void TearDownTestSuite() {
    delete agents_;  // stops every agent
    agents_ = nullptr;
    fs::remove_all(*dir_);
    delete dir_;
    dir_ = nullptr;
  }

  static std::string inventory() { return (*dir_ / "fleet.yaml").string(); }
  static std::size_t host_count() { return static_cast<std::size_t>(kAgents) + kDownHosts.size(); }
  static bool is_plain(int i) {
    return i != kDeniedHost && i != kTimeoutHost && i != kFailedHost && i != kWrongCertHost;
  }

  static fs::path* dir_;
  static std::map<int, std::unique_ptr<AgentProcess>>* agents_;
};

fs::path* OpsctlFleet::dir_ = nullptr;
std::map<int, std::unique_ptr<AgentProcess>>* OpsctlFleet::agents_ = nullptr;

TEST_F(OpsctlFleet, FanOutReportsEveryHostTheSummaryAndTheWorstStatus) {
  const auto r = run_opsctl({"-i", inventory(), "all", "run", "greet"});
  // No stopwatch: run_opsctl's timeout bounds the whole fan-out, and the summary below shows
  // every host was reached.
  EXPECT_EQ(r.exit_code, 67) << describe(r);  // a TLS failure outranks everything else
  EXPECT_TRUE(contains(r.err, "opsctl: 23 hosts in ")) << r.err;
  EXPECT_TRUE(
      contains(r.err, ": 16 ok, 1 failed, 1 denied, 3 unreachable, 1 timeout, 1 tls_error\n"))
      << r.err;
  EXPECT_TRUE(contains(r.err, "opsctl:   failed: n09\n")) << r.err;
  EXPECT_TRUE(contains(r.err, "opsctl:   denied: n05\n")) << r.err;
  EXPECT_TRUE(contains(r.err, "opsctl:   unreachable: down30 down31 down32\n")) << r.err;
  EXPECT_TRUE(contains(r.err, "opsctl:   timeout: n07\n")) << r.err;
  EXPECT_TRUE(contains(r.err, "opsctl:   tls_error: n11\n")) << r.err;
  EXPECT_FALSE(contains(r.err, "\r")) << "no progress line when stderr is not a terminal";

  // Prefixes are aligned to the longest name ("down30").
  for (int i = kFirstAgent; i < kFirstAgent + kAgents; ++i) {
    if (!is_plain(i)) continue;
    const std::string n = host_name(i);
    EXPECT_TRUE(contains(r.out, n + "    | hello from " + n + "\n")) << n << "\n" << r.out;
    EXPECT_TRUE(contains(r.out, n + "    | second line " + n + "\n")) << n;
    EXPECT_TRUE(contains(r.err, n + "    ! note " + n + "\n")) << n;
  }
  EXPECT_TRUE(contains(r.out, "n09    | partial\n")) << r.out;
  EXPECT_TRUE(contains(r.err, "n09    # failed: command exited with status 3")) << r.err;
  EXPECT_TRUE(contains(r.err, "n05    # denied: ")) << r.err;
  EXPECT_TRUE(contains(r.err, "n07    # timeout: ")) << r.err;
  EXPECT_TRUE(contains(r.err, "n11    # tls_error: TLS handshake failed")) << r.err;
  EXPECT_TRUE(contains(r.err, "IP address mismatch")) << r.err;
  EXPECT_TRUE(contains(r.err, "down30 # unreachable: cannot connect to 127.0.0.30:1")) << r.err;
}

TEST_F(OpsctlFleet, JsonOutputParsesAndHoldsEveryLine) {
  const auto r = run_opsctl({"-i", inventory(), "--json", "-j", "8", "all", "run", "greet"});
  EXPECT_EQ(r.exit_code, 67) << describe(r);
  std::map<std::string, std::vector<json>> lines;
  std::map<std::string, json> results;
  json summary;
  for (const auto& text : split_lines(r.out)) {
    const json j = json::parse(text, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << text;
    if (j["type"] == "summary") {
      EXPECT_TRUE(summary.is_null()) << "one summary record";
      summary = j;
      continue;
    }
    EXPECT_TRUE(summary.is_null()) << "the summary record comes last: " << text;
    ASSERT_TRUE(j.contains("host")) << text;
    const std::string host = j["host"];
    if (j["type"] == "result") {
      EXPECT_EQ(results.count(host), 0U) << "two results for " << host;
      EXPECT_TRUE(j["duration_ms"].is_number_integer()) << text;
      results[host] = j;
    } else {
      EXPECT_EQ(j["type"], "line") << text;
      EXPECT_EQ(results.count(host), 0U) << "a line after the result: " << text;
      lines[host].push_back(j);
    }
  }
  ASSERT_EQ(results.size(), host_count()) << r.out;
  for (int i = kFirstAgent; i < kFirstAgent + kAgents; ++i) {
    const std::string n = host_name(i);
    if (!is_plain(i)) continue;
    EXPECT_EQ(results[n]["status"], "ok") << results[n];
    EXPECT_EQ(results[n]["exit"], 0) << results[n];
    ASSERT_EQ(lines[n].size(), 3U) << n;
    std::vector<std::string> out_lines;
    for (const auto& l : lines[n]) {
      if (l["stream"] == "stdout") out_lines.push_back(l["line"]);
      if (l["stream"] == "stderr") {
        EXPECT_EQ(l["line"], "note " + n);
      }
    }
    EXPECT_EQ(out_lines, (std::vector<std::string>{"hello from " + n, "second line " + n}));
  }
  EXPECT_EQ(results["n09"]["status"], "failed");
  EXPECT_EQ(results["n09"]["exit"], 3);
  EXPECT_EQ(results["n09"]["code"], "failed");
  ASSERT_EQ(lines["n09"].size(), 1U);
  EXPECT_EQ(lines["n09"][0]["line"], "partial");
  EXPECT_EQ(results["n05"]["status"], "denied");
  EXPECT_EQ(results["n05"]["code"], "denied");
  EXPECT_FALSE(results["n05"].contains("exit"));
  EXPECT_EQ(results["n07"]["status"], "timeout");
  EXPECT_EQ(results["n07"]["signal"], 15);
  EXPECT_EQ(results["n11"]["status"], "tls_error");
  for (const int d : kDownHosts) {
    const json& res = results["down" + std::to_string(d)];
    EXPECT_EQ(res["status"], "unreachable") << res;
    EXPECT_EQ(res["code"], "connect") << res;
  }
  // One record sums it up for scripts, with the hosts of each status but ok.
  EXPECT_EQ(summary["hosts"], host_count()) << summary;
  EXPECT_EQ(summary["counts"]["ok"], 16) << summary;
  EXPECT_EQ(summary["counts"]["unreachable"], 3) << summary;
  EXPECT_EQ(summary["not_ok"]["denied"], json({"n05"})) << summary;
  EXPECT_TRUE(summary["interrupted"].is_null()) << summary;
  // The summary still goes to stderr, out of jq's way.
  EXPECT_TRUE(
      contains(r.err, ": 16 ok, 1 failed, 1 denied, 3 unreachable, 1 timeout, 1 tls_error\n"))
      << r.err;
}

TEST_F(OpsctlFleet, AllOkFanOutExitsZeroAndGroupedOutputKeepsHostsTogether) {
  const auto r = run_opsctl(
      {"-i", inventory(), "-o", "grouped", "-j", "2", "n0[2-4],n1*,!n11", "run", "greet"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(contains(r.err, "opsctl: 12 hosts in ")) << r.err;
  EXPECT_TRUE(contains(r.err, ": 12 ok\n")) << r.err;
  for (const std::string n : {"n02", "n03", "n04", "n10", "n12", "n21"}) {
    if (n == "n21") {
      EXPECT_FALSE(contains(r.out, "=== n21")) << r.out;
      continue;
    }
    const std::string block = "=== " + n + " (ok, exit 0, ";
    const auto at = r.out.find(block);
    ASSERT_NE(at, std::string::npos) << r.out;
    const auto body = r.out.substr(r.out.find('\n', at) + 1);
    EXPECT_EQ(body.rfind("hello from " + n + "\nsecond line " + n + "\n", 0), 0U) << r.out;
  }
}

TEST_F(OpsctlFleet, SingleHostStreamsOutputAndPassesTheExitStatusThrough) {
  auto r = run_opsctl({"-i", inventory(), "n02", "run", "greet"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out, "hello from n02\nsecond line n02\n");
  EXPECT_EQ(r.err, "note n02\n");

  r = run_opsctl({"-i", inventory(), "n02", "ping"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out, "pong\n");

  r = run_opsctl({"-i", inventory(), "n09", "run", "greet"});
  EXPECT_EQ(r.exit_code, 3) << describe(r);
  EXPECT_EQ(r.out, "partial\n");
  EXPECT_EQ(r.err, "");

  // Without an inventory: HOST:PORT.
  r = run_opsctl({"127.0.0.3:" + std::to_string((*agents_)[3]->port()), "whoami"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "principal: alice\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "alice roles=operator\n")) << r.out;
}

TEST_F(OpsctlFleet, SingleHostFailuresHaveTheirOwnExitStatusAndOneLine) {
  struct Case {
    std::vector<std::string> args;
    int exit_code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"n05", "run", "greet"}, 65, "opsctl: n05: denied: "},
      {{"n02", "frobnicate"}, 66, "opsctl: n02: error: command not found: frobnicate"},
      {{"n02", "run"}, 66, "opsctl: n02: error: usage: run"},
      {{"n11", "ping"}, 67, "opsctl: n11: tls_error: TLS handshake failed"},
      {{"down30", "ping"}, 68, "opsctl: down30: unreachable: cannot connect to 127.0.0.30:1"},
      {{"n07", "run", "greet"}, 69, "opsctl: n07: timeout: command exceeded its time limit of 1s"},
      {{"-t", "300ms", "n07", "run", "greet"},
       69,
       "opsctl: n07: timeout: no complete reply within 300ms"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"-i", inventory()};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const auto r = run_opsctl(args);
    EXPECT_EQ(r.exit_code, c.exit_code) << describe(r);
    EXPECT_EQ(r.err.rfind(c.message, 0), 0U) << describe(r);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
  }
}

TEST_F(OpsctlFleet, UntrustedAgentOrRefusedClientIsATlsFailure) {
  const TestPki& pki = TestPki::get();
  // We do not trust the agent's CA.
  auto r =
      run_opsctl({"-i", inventory(), "--ca", pki.rogue_dir.string() + "/ca.crt", "n02", "ping"});
  EXPECT_EQ(r.exit_code, 67) << describe(r);
  EXPECT_TRUE(contains(r.err, "certificate verify failed")) << r.err;
  // The agent does not trust ours.
  r = run_opsctl({"-i", inventory(), "n02", "ping"},
                 {{"OPSCTL_CERT", pki.rogue_cert("alice").string()},
                  {"OPSCTL_KEY", pki.rogue_key("alice").string()}});
  EXPECT_EQ(r.exit_code, 67) << describe(r);
  EXPECT_TRUE(contains(r.err, "opsctl: n02: tls_error: ")) << r.err;
  // Trusted but unmapped: the agent says so in place of the greeting.
  r = run_opsctl({"-i", inventory(), "n02", "ping"}, {{"OPSCTL_CERT", pki.cert("mallory").string()},
                                                      {"OPSCTL_KEY", pki.key("mallory").string()}});
  EXPECT_EQ(r.exit_code, 65) << describe(r);
  EXPECT_TRUE(contains(r.err, "not mapped to a principal")) << r.err;
}

TEST_F(OpsctlFleet, InteractiveShellThroughAPseudoTerminal) {
  const auto r = run_on_pty({"-i", inventory(), "n02"}, {{"n02> ", "ping\n"},
                                                         {"OK pong", ""},
                                                         {"n02> ", "run greet\n"},
                                                         {"OK done exit=0", ""},
                                                         {"n02> ", "exit\n"},
                                                         {"OK bye", ""}});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "OK opsagent ")) << r.output;
  EXPECT_TRUE(contains(r.output, "principal=alice")) << r.output;
  EXPECT_TRUE(contains(r.output, "| hello from n02")) << r.output;
  EXPECT_TRUE(contains(r.output, "! note n02")) << r.output;
}

TEST_F(OpsctlFleet, InteractiveShellEndsOnEndOfInput) {
  const auto r = run_on_pty({"-i", inventory(), "n03"},
                            {{"n03> ", "whoami\n"}, {"OK alice", ""}, {"n03> ", "\x04"}});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "OK bye")) << r.output;
}

TEST_F(OpsctlFleet, ProgressLineOnlyOnATerminal) {
  const auto fan = run_on_pty({"-i", inventory(), "n0[2-6]", "run", "greet"}, {});
  EXPECT_EQ(fan.exit_code, 65) << fan.output;
  EXPECT_TRUE(contains(fan.output, " hosts done, ")) << fan.output;
  EXPECT_TRUE(contains(fan.output, "opsctl: 5 hosts in ")) << fan.output;
}

// The hosts a pattern reached, from the JSON results of a real `ping` on each.
std::set<std::string> pinged(const std::vector<std::string>& args) {
  const auto r = run_opsctl(args);
  std::set<std::string> hosts;
  for (const auto& text : split_lines(r.out)) {
    const json j = json::parse(text, nullptr, false);
    if (!j.is_discarded() && j["type"] == "result") hosts.insert(j["host"].get<std::string>());
  }
  if (hosts.empty()) ADD_FAILURE() << describe(r);
  return hosts;
}

TEST_F(OpsctlFleet, AnsiblePatternOperatorsSelectTheHostsThatAreContacted) {
  using S = std::set<std::string>;
  const auto ping = [](const std::string& pattern, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"-i", inventory(), "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(pattern);
    args.emplace_back("ping");
    return pinged(args);
  };
  S plain;
  for (int i = kFirstAgent; i < kFirstAgent + kAgents; ++i) {
    if (i != kDeniedHost && i != kTimeoutHost && i != kFailedHost && i != kWrongCertHost)
      plain.insert(host_name(i));
  }
  // `!` alone: all but those.
  EXPECT_EQ(ping("!broken:!down"), plain);
  // `&`: intersection; `:` and `,` unions.
  EXPECT_EQ(ping("n0*:&broken"), (S{"n05", "n07", "n09"}));
  EXPECT_EQ(ping("n02:n03"), (S{"n02", "n03"}));
  // ~regex over host and group names.
  EXPECT_EQ(ping("~^n1[0-3]$"), (S{"n10", "n11", "n12", "n13"}));
  EXPECT_EQ(ping("~^dow"), (S{"down30", "down31", "down32"}));
  // --limit after the pattern, also from a file (a retry file).
  EXPECT_EQ(ping("broken", {"--limit", "n0*"}), (S{"n05", "n07", "n09"}));
  const fs::path retry = *dir_ / "retry.txt";
  std::ofstream(retry) << "# hosts to retry\nn02\n\nn03\n";
  EXPECT_EQ(ping("all", {"--limit", "@" + retry.string()}), (S{"n02", "n03"}));
  const auto none = run_opsctl({"-i", inventory(), "--limit", "down", "n02", "ping"});
  EXPECT_EQ(none.exit_code, 64) << describe(none);
  EXPECT_TRUE(contains(none.err, "selects no host")) << none.err;
}

std::vector<json> json_lines(const std::string& out) {
  std::vector<json> v;
  for (const auto& text : split_lines(out)) v.push_back(json::parse(text, nullptr, false));
  return v;
}

TEST_F(OpsctlFleet, RetryReconnectsUnreachableHostsButNeverRerunsACommand) {
  const auto r =
      run_opsctl({"-i", inventory(), "--json", "--retry", "2", "n09,down30", "run", "greet"});
  EXPECT_EQ(r.exit_code, 68) << describe(r);
  std::map<std::string, json> results;
  std::size_t partial = 0;
  for (const auto& j : json_lines(r.out)) {
    if (j["type"] == "result") results[j["host"]] = j;
    if (j["type"] == "line" && j["line"] == "partial") ++partial;
  }
  EXPECT_EQ(results["down30"]["attempts"], 3) << results["down30"];
  EXPECT_TRUE(contains(results["down30"]["message"], "(3 attempts)")) << results["down30"];
  // The command that ran and failed was not sent again.
  EXPECT_EQ(results["n09"]["status"], "failed");
  EXPECT_FALSE(results["n09"].contains("attempts")) << results["n09"];
  EXPECT_EQ(partial, 1U) << r.out;
  EXPECT_EQ(run_opsctl({"--retry", "11", "x:1", "ping"}).exit_code, 64);
}

TEST_F(OpsctlFleet, RetryFileListsHostsThatWereNotOkForLimit) {
  const fs::path retry = *dir_ / "greet.retry";
  auto r = run_opsctl(
      {"-i", inventory(), "--retry-file", retry.string(), "broken,n02,down31", "run", "greet"});
  EXPECT_EQ(r.exit_code, 67) << describe(r);
  EXPECT_EQ(slurp(retry), "n05\nn07\nn09\nn11\ndown31\n");
  r = run_opsctl({"-i", inventory(), "--limit", "@" + retry.string(), "--list-targets", "all"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(split_lines(r.out).size(), 5U) << r.out;
  r = run_opsctl({"-i", inventory(), "--retry-file", retry.string(), "n02,n03", "ping"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(slurp(retry), "") << "all ok: nothing to retry";
}

TEST_F(OpsctlFleet, SerialRunsRollingBatches) {
  const auto r = run_opsctl(
      {"-i", inventory(), "--json", "--serial", "2", "-j", "8", "n02,n03,n04,n06,n08", "ping"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  std::vector<std::string> order;
  json summary;
  for (const auto& j : json_lines(r.out)) {
    if (j["type"] == "result") order.push_back(j["host"]);
    if (j["type"] == "summary") summary = j;
  }
  ASSERT_EQ(order.size(), 5U) << r.out;
  // A batch starts only when the one before is done, so results come batch by batch.
  EXPECT_EQ(std::set<std::string>(order.begin(), order.begin() + 2),
            (std::set<std::string>{"n02", "n03"}));
  EXPECT_EQ(std::set<std::string>(order.begin() + 2, order.begin() + 4),
            (std::set<std::string>{"n04", "n06"}));
  EXPECT_EQ(order[4], "n08");
  EXPECT_EQ(summary["serial"], 2);
  EXPECT_EQ(summary["batches"], 3);
  EXPECT_TRUE(contains(r.err, "opsctl: 3 batches of up to 2 hosts (--serial)\n")) << r.err;
  // 40% of 5 hosts: batches of 2.
  const auto pct =
      run_opsctl({"-i", inventory(), "--serial", "40%", "n02,n03,n04,n06,n08", "ping"});
  EXPECT_TRUE(contains(pct.err, "3 batches of up to 2 hosts")) << pct.err;
}

TEST_F(OpsctlFleet, MaxFailStopsStartingHostsOnceExceeded) {
  const auto r = run_opsctl(
      {"-i", inventory(), "--max-fail", "1", "-j", "1", "broken,n02,n03", "run", "greet"});
  EXPECT_EQ(r.exit_code, 65) << describe(r);
  EXPECT_TRUE(contains(r.err,
                       "opsctl: stopped: more than 1 hosts failed (--max-fail), 4 not "
                       "started\n"))
      << r.err;
  EXPECT_TRUE(contains(r.err, "opsctl:   not started: n09 n11 n02 n03\n")) << r.err;
  EXPECT_FALSE(contains(r.out, "hello from n02")) << r.out;
  // 50% of 6 hosts: 3 failures allowed.
  const auto pct = run_opsctl({"-i", inventory(), "--json", "--max-fail", "50%", "-j", "1",
                               "broken,n02,n03", "run", "greet"});
  json summary;
  for (const auto& j : json_lines(pct.out)) {
    if (j["type"] == "summary") summary = j;
  }
  EXPECT_EQ(summary["max_fail"], 3) << pct.out;
  EXPECT_EQ(summary["max_fail_stopped"], true) << pct.out;
  EXPECT_EQ(summary["counts"]["not_started"], 2) << pct.out;
}

TEST_F(OpsctlFleet, IniInventoryReachesTheAgents) {
  std::string ini = "[web]\n";
  for (const int i : {2, 3, 4}) {
    ini += host_name(i) + " ansible_host=127.0.0." + std::to_string(i) +
           " opsagent_port=" + std::to_string((*agents_)[i]->port()) + "\n";
  }
  ini += "[lb]\nn06 ansible_host=127.0.0.6 opsagent_port=" + std::to_string((*agents_)[6]->port()) +
         "\n[prod:children]\nweb\nlb\n";
  const fs::path file = *dir_ / "fleet.ini";
  std::ofstream(file) << ini;
  EXPECT_EQ(pinged({"-i", file.string(), "--json", "prod:!n03", "ping"}),
            (std::set<std::string>{"n02", "n04", "n06"}));
  std::ofstream(*dir_ / "bad.ini") << "[web]\nn02 opsagent_port\n";
  const auto bad = run_opsctl({"-i", (*dir_ / "bad.ini").string(), "web", "ping"});
  EXPECT_EQ(bad.exit_code, 78) << describe(bad);
  EXPECT_TRUE(contains(bad.err, "bad.ini:2:5: expected key=value")) << bad.err;
}

TEST_F(OpsctlFleet, ExecutableInventoryIsRunWithList) {
  const fs::path script = *dir_ / "dynamic-inventory";
  {
    std::ofstream out(script);
    out << "#!/bin/sh\n[ \"$1\" = --list ] || exit 2\ncat <<'JSON'\n"
        << "{\"web\": {\"hosts\": [\"n02\", \"n03\"], \"vars\": {\"opsagent_port\": "
        << (*agents_)[2]->port() << "}},\n"
        << " \"prod\": {\"children\": [\"web\"]},\n"
        << " \"_meta\": {\"hostvars\": {\"n02\": {\"ansible_host\": \"127.0.0.2\"},\n"
        << "   \"n03\": {\"ansible_host\": \"127.0.0.3\", \"opsagent_port\": "
        << (*agents_)[3]->port() << "},\n"
        << "   \"n04\": {\"ansible_host\": \"127.0.0.4\", \"opsagent_port\": \""
        << (*agents_)[4]->port() << "\"}}}}\nJSON\n";
  }
  fs::permissions(script, fs::perms::owner_all);
  EXPECT_EQ(pinged({"-i", script.string(), "--json", "prod,ungrouped", "ping"}),
            (std::set<std::string>{"n02", "n03", "n04"}));
  const fs::path failing = *dir_ / "failing-inventory";
  std::ofstream(failing) << "#!/bin/sh\necho oops >&2\nexit 3\n";
  fs::permissions(failing, fs::perms::owner_all);
  const auto r = run_opsctl({"-i", failing.string(), "all", "ping"});
  EXPECT_EQ(r.exit_code, 78) << describe(r);
  EXPECT_TRUE(contains(r.err, "failing-inventory --list: exited with status 3")) << r.err;
}

TEST_F(OpsctlFleet, PinnedCertificateFingerprintIsCheckedBesidesTheCa) {
  std::string fp;
  ASSERT_EQ(run_shell("openssl x509 -in " + TestPki::get().cert("server").string() +
                          " -noout -fingerprint -sha256 | sed 's/.*=//'",
                      &fp),
            0);
  while (!fp.empty() && (fp.back() == '\n' || fp.back() == '\r')) fp.pop_back();
  ASSERT_EQ(fp.size(), 95U) << fp;
  const std::string wrong = "sha256:" + std::string(64, '0');
  const auto port = [](int i) { return std::to_string((*agents_)[i]->port()); };
  const fs::path native = *dir_ / "pinned.yaml";
  std::ofstream(native) << "hosts:\n"
                        << "  good: {address: 127.0.0.2, port: " << port(2) << ", fingerprint: \""
                        << fp << "\"}\n"
                        << "  bad: {address: 127.0.0.3, port: " << port(3) << ", fingerprint: \""
                        << wrong << "\"}\n";
  auto r = run_opsctl({"-i", native.string(), "good", "ping"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  r = run_opsctl({"-i", native.string(), "bad", "ping"});
  EXPECT_EQ(r.exit_code, 67) << describe(r);
  EXPECT_TRUE(contains(r.err, "opsctl: bad: tls_error: agent certificate SHA-256 fingerprint " +
                                  fp + " is not the pinned 00:00:"))
      << r.err;
  // Ansible: pinned for a whole group in its vars.
  const fs::path ansible = *dir_ / "pinned-ansible.yaml";
  std::ofstream(ansible) << "pinned:\n  vars: {opsagent_fingerprint: \"" << wrong
                         << "\"}\n  hosts:\n    n04: {ansible_host: 127.0.0.4, opsagent_port: "
                         << port(4) << "}\nok:\n  vars: {opsagent_fingerprint: \"" << fp
                         << "\"}\n  hosts:\n    n06: {ansible_host: 127.0.0.6, opsagent_port: "
                         << port(6) << "}\n";
  r = run_opsctl({"-i", ansible.string(), "all", "ping"});
  EXPECT_EQ(r.exit_code, 67) << describe(r);
  EXPECT_TRUE(contains(r.err, "1 ok, 1 tls_error")) << r.err;
  EXPECT_TRUE(contains(r.err, "opsctl:   tls_error: n04\n")) << r.err;
  // A malformed pin is a configuration error with its place.
  std::ofstream(*dir_ / "badpin.yaml") << "hosts:\n  a: {address: 127.0.0.2, port: 1, "
                                          "fingerprint: abc}\n";
  r = run_opsctl({"-i", (*dir_ / "badpin.yaml").string(), "a", "ping"});
  EXPECT_EQ(r.exit_code, 78) << describe(r);
  EXPECT_TRUE(contains(r.err, "badpin.yaml:2:")) << r.err;
}

TEST(OpsctlInventory, AnsibleYamlIniAndNativeInventoriesListTheSameTargets) {
  const fs::path dir = make_temp_dir("opsctl-inv");
  std::ofstream(dir / "native.yaml") << R"(# opsctl native inventory
defaults:
  port: 7443
hosts:
  web01: {address: 127.0.0.2}
  web02: {address: 127.0.0.3}
  web03: {address: 127.0.0.4, port: 7444}
  db1:
    address: 127.0.0.5
    server_name: db1.internal
  cache.example.com:
groups:
  web: [web01, web02, web03]
  prod: [web, db1]
)";
  std::ofstream(dir / "ansible.yaml") << R"(# the same fleet, as Ansible describes it
all:
  vars:
    opsagent_port: 7443
    ansible_user: deploy
  hosts:
    cache.example.com:
  children:
    prod:
      children:
        web:
          hosts:
            web[01:02]:
              ansible_port: 22
            web03:
              opsagent_port: 7444
          vars:
            ansible_become: true
        dbs:
          hosts:
            db1:
              ansible_host: 127.0.0.5
              opsagent_server_name: db1.internal
    web:
      hosts:
        web01:
          ansible_host: 127.0.0.2
        web02:
          ansible_host: 127.0.0.3
        web03:
          ansible_host: 127.0.0.4
)";
  std::ofstream(dir / "hosts.ini") << R"(# the same fleet, as an Ansible INI inventory
cache.example.com

[web]
web[01:02] ansible_port=22
web03 ansible_host=127.0.0.4 opsagent_port=7444

[dbs]
db1 ansible_host=127.0.0.5 opsagent_server_name=db1.internal

[prod:children]
web
dbs

[web]
web01 ansible_host=127.0.0.2
web02 ansible_host=127.0.0.3

[all:vars]
opsagent_port=7443
ansible_user=deploy
)";
  for (const std::string pattern :
       {"all", "web", "prod", "web0*,db1", "prod,!web02", "cache.example.com"}) {
    const auto ini = run_opsctl({"-i", (dir / "hosts.ini").string(), "--list-targets", pattern});
    EXPECT_EQ(ini.exit_code, 0) << describe(ini);
    auto c = split_lines(ini.out);
    std::sort(c.begin(), c.end());
    const auto native =
        run_opsctl({"-i", (dir / "native.yaml").string(), "--list-targets", pattern});
    const auto ansible =
        run_opsctl({"-i", (dir / "ansible.yaml").string(), "--list-targets", pattern});
    EXPECT_EQ(native.exit_code, 0) << describe(native);
    EXPECT_EQ(ansible.exit_code, 0) << describe(ansible);
    auto a = split_lines(native.out);
    auto b = split_lines(ansible.out);
    EXPECT_FALSE(a.empty()) << pattern;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    EXPECT_EQ(a, b) << pattern << "\nnative:\n" << native.out << "ansible:\n" << ansible.out;
    EXPECT_EQ(a, c) << pattern << "\nnative:\n" << native.out << "ini:\n" << ini.out;
  }
  const auto all = run_opsctl({"-i", (dir / "native.yaml").string(), "--list-targets", "all"});
  EXPECT_EQ(all.out,
            "web01\t127.0.0.2\t7443\t127.0.0.2\n"
            "web02\t127.0.0.3\t7443\t127.0.0.3\n"
            "web03\t127.0.0.4\t7444\t127.0.0.4\n"
            "db1\t127.0.0.5\t7443\tdb1.internal\n"
            "cache.example.com\tcache.example.com\t7443\tcache.example.com\n");
  fs::remove_all(dir);
}

TEST(OpsctlErrors, UsageAndConfigurationErrorsHaveTheirCodes) {
  const fs::path dir = make_temp_dir("opsctl-err");
  std::ofstream(dir / "bad.yaml") << "hosts:\n  web1: {address: 10.0.0.1, prot: 7443}\n";
  auto r = run_opsctl({"-i", (dir / "bad.yaml").string(), "web1", "ping"});
  EXPECT_EQ(r.exit_code, 78) << describe(r);
  EXPECT_TRUE(contains(r.err, "bad.yaml:2:")) << r.err;
  EXPECT_TRUE(contains(r.err, "prot")) << r.err;

  r = run_opsctl({"--frobnicate", "x", "ping"});
  EXPECT_EQ(r.exit_code, 64) << describe(r);
  r = run_opsctl({});
  EXPECT_EQ(r.exit_code, 64) << describe(r);
  r = run_opsctl({"10.0.0.1", "ping"});  // no port anywhere
  EXPECT_EQ(r.exit_code, 64) << describe(r);
  EXPECT_TRUE(contains(r.err, "no port")) << r.err;
  r = run_opsctl({"127.0.0.1:1", "ping"}, {{"OPSCTL_CERT", ""}});
  EXPECT_EQ(r.exit_code, 78) << describe(r);
  EXPECT_TRUE(contains(r.err, "--cert")) << r.err;
  r = run_opsctl({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(contains(r.out, "Exit status:")) << r.out;
  fs::remove_all(dir);
}

// ---- SECURITY-MATRIX I11: nothing from the network or an inventory reaches the terminal raw --

const std::string kEsc = "\x1b";
const std::string kRlo = "\xE2\x80\xAE";  // U+202E RIGHT-TO-LEFT OVERRIDE
const std::string kLri = "\xE2\x81\xA6";  // U+2066 LEFT-TO-RIGHT ISOLATE
const std::string kCsi = "\xC2\x9B";      // U+009B, the C1 CSI
const std::string kClearLine = "clear" + kEsc + "[2J screen";
const std::string kClipboardLine = "clip" + kEsc + "]52;c;ZXZpbA==\a board";
const std::string kForgedLine = "innocent\rn02 | forged";
const std::string kBidiLine = "bidi " + kRlo + "txt.exe";
const std::string kErrLine = "err" + kCsi + "31m c1, \x7f del, \xff bad, " + kLri + "iso";

// What a hostile agent with a valid certificate sends: a greeting with an escape in it, then for
// every command the same data lines (stdout, stderr, a line that is not protocol, a JSON-form
// line whose escape decodes to a raw ESC) and a final line that depends on the command: `run`
// ends in "OK done ... exit=0", `ping` in an OK answer opsctl shows as output (OSC 52 and a bidi
// override in it), `whoami` in an error whose message holds a bare CR, and anything else in
// "OK bye".
FakeAgentScript hostile_script() {
  FakeAgentScript script;
  script.greeting =
      "OK opsagent 0.1.0 ready host=evil" + kEsc + "]0;pwned\a principal=alice roles=operator\n";
  script.reply = [](const std::string& command) {
    std::string out = "| " + kClearLine + "\n| " + kClipboardLine + "\n| " + kForgedLine + "\n| " +
                      kBidiLine + "\n! " + kErrLine + "\n" + kEsc + "[2Jnot a reply line\n" +
                      R"({"type":"stdout","line":"json \u001b[2J \u202e esc"})" + "\n";
    if (command.rfind("run", 0) == 0) {
      out += "OK done" + kEsc + "[31m exit=0\n";
    } else if (command == "ping") {
      out += "OK pong" + kEsc + "]52;c;cGluZw==\a " + kRlo + "evil\n";
    } else if (command == "whoami") {
      out += "ERR denied no" + kEsc + "[2J\rforged " + kRlo + "reason\n";
    } else {
      out += "OK bye\n";
    }
    return out;
  };
  return script;
}

// The first thing in `s` a terminal would act on or show misleadingly: a C0 control other than
// LF and TAB, DEL, a C1 control (UTF-8 encoded), a bidi embedding, override or isolate, or
// invalid UTF-8 (a lone 0x9B is a CSI on 8-bit terminals). Empty when there is none.
std::string terminal_hazard(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const std::string at = " at byte " + std::to_string(i) + " of:\n" + s;
    if (b < 0x80) {
      if ((b < 0x20 && b != '\n' && b != '\t') || b == 0x7f)
        return "control byte " + std::to_string(b) + at;
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if ((b & 0xE0U) == 0xC0U) {
      len = 2;
      cp = b & 0x1FU;
    } else if ((b & 0xF0U) == 0xE0U) {
      len = 3;
      cp = b & 0x0FU;
    } else if ((b & 0xF8U) == 0xF0U) {
      len = 4;
      cp = b & 0x07U;
    } else {
      return "invalid UTF-8" + at;
    }
    if (i + len > s.size()) return "truncated UTF-8" + at;
    for (std::size_t k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0U) != 0x80U) return "invalid UTF-8" + at;
      cp = (cp << 6U) | (c & 0x3FU);
    }
    if (cp <= 0x9F) return "C1 control or overlong form" + at;
    if ((cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069))
      return "bidi control" + at;
    i += len;
  }
  return {};
}

void expect_terminal_safe(const OpsctlRun& r, const std::string& what) {
  EXPECT_EQ(terminal_hazard(r.out), "") << what << " (stdout)";
  EXPECT_EQ(terminal_hazard(r.err), "") << what << " (stderr)";
}

class OpsctlHostileAgent : public ::testing::Test {
 protected:
  void SetUp() override {
    agent_ = std::make_unique<FakeAgent>(hostile_script());
    ASSERT_NE(agent_->port(), 0);
    dir_ = make_temp_dir("opsctl-i11");
    // Two names for the one fake agent: a fan-out of two hosts.
    std::ofstream(dir_ / "evil.yaml")
        << "defaults:\n  port: " << agent_->port()
        << "\nhosts:\n  evil1: {address: 127.0.0.1}\n  evil2: {address: 127.0.0.1}\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  [[nodiscard]] std::string single() const { return "127.0.0.1:" + std::to_string(agent_->port()); }
  [[nodiscard]] std::string inventory() const { return (dir_ / "evil.yaml").string(); }

  std::unique_ptr<FakeAgent> agent_;
  fs::path dir_;
};

TEST_F(OpsctlHostileAgent, I11_EveryHumanOutputModeEscapesControlsFromTheNetwork) {
  struct Case {
    std::vector<std::string> args;
    int exit_code;
  };
  const std::vector<Case> cases = {
      {{single(), "run", "greet"}, 0},
      {{single(), "ping"}, 0},
      {{single(), "whoami"}, 65},
      {{"-o", "prefix", single(), "run", "greet"}, 0},
      {{"-o", "grouped", single(), "whoami"}, 65},
      {{"-i", inventory(), "evil1,evil2", "run", "greet"}, 0},
      {{"-i", inventory(), "evil1,evil2", "ping"}, 0},
      {{"-i", inventory(), "evil1,evil2", "whoami"}, 65},
      {{"-i", inventory(), "-o", "grouped", "all", "run", "greet"}, 0},
      {{"-i", inventory(), "-o", "grouped", "all", "whoami"}, 65},
      {{"-i", inventory(), "--collapse", "all", "run", "greet"}, 0},
      {{"-i", inventory(), "--sort", "all", "run", "greet"}, 0},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"-t", "20s"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const auto r = run_opsctl(args);
    std::string what;
    for (const auto& a : c.args) what += a + " ";
    SCOPED_TRACE(what);
    EXPECT_EQ(r.exit_code, c.exit_code) << describe(r);
    expect_terminal_safe(r, what);
    // The escapes are shown, not dropped: the operator sees what the agent tried.
    EXPECT_TRUE(contains(r.out, R"(clear\x1B[2J screen)")) << describe(r);
    EXPECT_TRUE(contains(r.out, R"(innocent\x0Dn02 | forged)")) << describe(r);
    EXPECT_TRUE(contains(r.out, R"(bidi \u202Etxt.exe)")) << describe(r);
    EXPECT_TRUE(contains(r.err, R"(err\u009B31m c1, \x7F del, )")) << describe(r);
  }
}

// With --color=always the only escape sequences are opsctl's own SGR codes around its framing.
TEST_F(OpsctlHostileAgent, I11_ColoursWrapOnlyOpsctlsFramingInEveryView) {
  const auto strip_sgr = [](std::string s) {
    for (const std::string sgr :
         {"\x1b[0m", "\x1b[1m", "\x1b[31m", "\x1b[1;31m", "\x1b[32m", "\x1b[33m", "\x1b[36m"}) {
      for (auto at = s.find(sgr); at != std::string::npos; at = s.find(sgr))
        s.erase(at, sgr.size());
    }
    return s;
  };
  for (const std::vector<std::string>& view : {std::vector<std::string>{"-o", "prefix"},
                                               {"-o", "grouped"},
                                               {"--collapse"},
                                               {"--table"},
                                               {"--sort", "-o", "grouped"}}) {
    for (const std::string command : {"run", "whoami"}) {
      std::vector<std::string> args = {"-t", "20s", "--color=always", "-i", inventory()};
      args.insert(args.end(), view.begin(), view.end());
      args.insert(args.end(), {"all", command});
      if (command == "run") args.emplace_back("greet");
      auto r = run_opsctl(args);
      SCOPED_TRACE(view.back() + " " + command);
      EXPECT_EQ(r.exit_code, command == "run" ? 0 : 65) << describe(r);
      EXPECT_TRUE(contains(r.out, "\x1b[")) << describe(r);  // colours are on
      r.out = strip_sgr(r.out);
      r.err = strip_sgr(r.err);
      expect_terminal_safe(r, "--color=always " + view.back() + " " + command);
    }
  }
}

TEST_F(OpsctlHostileAgent, I11_JsonOutputIsAsciiWithEscapesAndKeepsTheBytes) {
  for (const std::string& target : {std::string("evil1"), std::string("evil1,evil2")}) {
    for (const std::string command : {"run", "ping", "whoami"}) {
      std::vector<std::string> args = {"-t", "20s", "-i", inventory(), "--json", target, command};
      if (command == "run") args.emplace_back("greet");
      const auto r = run_opsctl(args);
      SCOPED_TRACE(target + " " + command);
      expect_terminal_safe(r, "--json " + command);
      for (const char ch : r.out)
        ASSERT_LT(static_cast<unsigned char>(ch), 0x80) << "non-ASCII byte in JSON:\n" << r.out;
      EXPECT_TRUE(contains(r.out, R"(\u202e)")) << r.out;
      std::set<std::string> lines;
      for (const auto& l : split_lines(r.out)) {
        const json j = json::parse(l, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << l;
        if (j.value("type", "") == "line") lines.insert(j.value("line", ""));
      }
      // jq gets the agent's bytes back exactly; only the terminal is spared them.
      EXPECT_EQ(lines.count(kClearLine), 1U) << r.out;
      EXPECT_EQ(lines.count(kForgedLine), 1U) << r.out;
      EXPECT_EQ(lines.count(kBidiLine), 1U) << r.out;
    }
  }
}

TEST_F(OpsctlHostileAgent, I11_RawBytesOnlyWithTheFlagAndOnlyForDataLines) {
  auto r = run_opsctl({"-t", "20s", "--raw-bytes", single(), "ping"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  // The command's lines pass exactly as received ...
  EXPECT_TRUE(contains(r.out, kClearLine + "\n")) << describe(r);
  EXPECT_TRUE(contains(r.out, kClipboardLine + "\n")) << describe(r);
  EXPECT_TRUE(contains(r.out, kForgedLine + "\n")) << describe(r);
  EXPECT_TRUE(contains(r.out, kBidiLine + "\n")) << describe(r);
  EXPECT_TRUE(contains(r.err, kErrLine + "\n")) << describe(r);
  // ... but the final line's answer and opsctl's own messages stay escaped.
  EXPECT_TRUE(contains(r.out, R"(pong\x1B]52;c;cGluZw==\x07 \u202Eevil)")) << describe(r);
  EXPECT_FALSE(contains(r.out, "pong" + kEsc)) << describe(r);
  EXPECT_FALSE(contains(r.err, kEsc + "[2Jnot a reply line")) << describe(r);

  r = run_opsctl({"-t", "20s", "--raw-bytes", single(), "whoami"});
  EXPECT_EQ(r.exit_code, 65) << describe(r);
  EXPECT_TRUE(contains(r.err, R"(no\x1B[2J\x0Dforged \u202Ereason)")) << describe(r);
  EXPECT_FALSE(contains(r.err, "\rforged")) << describe(r);

  // Never where lines of several hosts or prefixes share the output.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"-i", inventory(), "--raw-bytes", "all", "ping"},
        std::vector<std::string>{"--raw-bytes", "-o", "prefix", single(), "ping"},
        std::vector<std::string>{"--raw-bytes", "--json", single(), "ping"},
        std::vector<std::string>{"--raw-bytes", single()}}) {
    r = run_opsctl(args);
    EXPECT_EQ(r.exit_code, 64) << describe(r);
    EXPECT_TRUE(contains(r.err, "--raw-bytes")) << describe(r);
  }
  EXPECT_TRUE(contains(run_opsctl({"--help"}).out, "--raw-bytes")) << "documented in --help";
}

TEST_F(OpsctlHostileAgent, I11_InteractiveShellEscapesTheGreetingAndReplies) {
  const auto r = run_on_pty({single()}, {{"> ", "run greet\n"},
                                         {"OK done", ""},
                                         {"> ", "ping\n"},
                                         {"OK pong", ""},
                                         {"> ", "whoami\n"},
                                         {"ERR denied", ""},
                                         {"> ", "exit\n"},
                                         {"OK bye", ""}});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // The terminal and libedit add their own CR and escapes; what must be missing is the agent's.
  for (const std::string& hostile : {kEsc + "[2J", kEsc + "]52", kEsc + "]0;pwned", kEsc + "[31m",
                                     kRlo, kLri, kCsi, std::string("\x7f"), std::string("\xff"),
                                     std::string("innocent\rn02"), std::string("no") + kEsc}) {
    EXPECT_FALSE(contains(r.output, hostile)) << "raw bytes of the agent reached the terminal:\n"
                                              << r.output;
  }
  EXPECT_TRUE(contains(r.output, R"(OK opsagent 0.1.0 ready host=evil\x1B]0;pwned\x07)"))
      << r.output;
  EXPECT_TRUE(contains(r.output, R"(| clear\x1B[2J screen)")) << r.output;
  EXPECT_TRUE(contains(r.output, R"(OK done\x1B[31m exit=0)")) << r.output;
}

TEST(OpsctlInventoryI11, I11_InventoryNamesWithControlsAreRefusedWithFileAndLine) {
  const fs::path dir = make_temp_dir("opsctl-inv-i11");
  struct Case {
    std::string file;
    std::string text;
    std::string where;
  };
  const std::vector<Case> cases = {
      {"native-esc.yaml", "defaults: {port: 7443}\nhosts:\n  \"web\\e[2J\": {address: 10.0.0.1}\n",
       "native-esc.yaml:3:"},
      {"native-cr.yaml", "hosts:\n  web1: {address: \"10.0.0.1\\rn02 | forged\", port: 7443}\n",
       "native-cr.yaml:2:"},
      {"native-bidi.yaml", "hosts:\n  web1:\ngroups:\n  \"g" + kRlo + "x\": [web1]\n",
       "native-bidi.yaml:4:"},
      {"ansible-nl.yaml", "all:\n  hosts:\n    \"web1\\nweb2\":\n", "ansible-nl.yaml:3:"},
      {"ansible-osc.yaml",
       "all:\n  hosts:\n    web1:\n      ansible_host: \"10.0.0.1\\e]52;c;eA==\\a\"\n",
       "ansible-osc.yaml:4:"},
      {"ansible-c1.yaml", "all:\n  children:\n    \"g\\x9b31m\":\n      hosts:\n        web1:\n",
       "ansible-c1.yaml:3:"},
  };
  for (const auto& c : cases) {
    std::ofstream(dir / c.file) << c.text;
    const auto r = run_opsctl({"-i", (dir / c.file).string(), "--list-targets", "all"});
    SCOPED_TRACE(c.file);
    EXPECT_EQ(r.exit_code, 78) << describe(r);
    EXPECT_TRUE(contains(r.err, c.where)) << describe(r);
    expect_terminal_safe(r, c.file);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace opsagent::testing
