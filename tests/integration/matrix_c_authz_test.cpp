// SECURITY-MATRIX rows C1-C7 and C9-C11 (authorisation, arguments, paths, files) against the real
// agent over real TLS on loopback. Every test is named after its row; C8 is in
// matrix_bceg_test.cpp.

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "tests/support/agent_process.hpp"
#include "tests/support/test_pki.hpp"

namespace opsagent::testing {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using Strings = std::vector<std::string>;

// ---------------------------------------------------------------------------------------------
// Helpers

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  return all;
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string hex_digest(const std::string& data, const EVP_MD* md) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int size = 0;
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), out.data(), &size, md, nullptr), 1);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) {
    hex.push_back(kDigits[out[i] >> 4]);
    hex.push_back(kDigits[out[i] & 0x0f]);
  }
  return hex;
}

// A word of the line protocol that arrives as exactly `word` (docs/protocol.md, "Words and
// quoting"): single quotes unless the word holds one, else double quotes with \" and \\.
std::string quoted(const std::string& word) {
  if (word.find('\'') == std::string::npos) return "'" + word + "'";
  std::string out = "\"";
  for (const char c : word) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

// One request and the audit record of its decision. The decision is written before the command
// runs, so it is in the file by the time the reply arrives.
struct Exchange {
  std::vector<std::string> reply;
  json record;  ///< the newest `command` or `command_rejected` record
};

Exchange ask(const AgentProcess& agent, TlsClient& client, const std::string& line,
             std::chrono::milliseconds timeout = 10s) {
  Exchange e;
  e.reply = client.command(line, timeout);
  for (const auto& r : agent.audit()) {
    const std::string event = r.value("event", "");
    if (event == "command" || event == "command_rejected") e.record = r;
  }
  return e;
}

// A one-line `ERR <code> <reason>` reply whose decision the audit trail records with its rule and
// reason. `decision` "allow" is for requests the policy allowed but the agent then refused (a
// file that cannot be opened); the reason is then the rule's, not the error's.
void expect_refused(const Exchange& e, const std::string& code, const std::string& decision,
                    const std::string& rule) {
  ASSERT_EQ(e.reply.size(), 1U) << joined(e.reply);
  const std::string prefix = "ERR " + code + " ";
  ASSERT_TRUE(starts_with(e.reply[0], prefix)) << e.reply[0];
  const std::string message = e.reply[0].substr(prefix.size());
  EXPECT_FALSE(message.empty()) << "a refusal without a reason";
  ASSERT_TRUE(e.record.is_object()) << "no audit record";
  EXPECT_EQ(e.record.value("event", ""), "command") << e.record.dump();
  EXPECT_EQ(e.record.value("decision", ""), decision) << e.record.dump();
  if (!rule.empty()) {
    EXPECT_EQ(e.record.value("rule", ""), rule) << e.record.dump();
  }
  const std::string reason = e.record.value("reason", "");
  EXPECT_FALSE(reason.empty()) << e.record.dump();
  if (decision != "allow") {
    EXPECT_EQ(message, reason) << "the client and the audit disagree";
  }
}

void expect_denied(const Exchange& e, const std::string& rule) {
  expect_refused(e, "denied", "deny", rule);
}

// The JSON argv-echo printed, from a successful `run` reply.
json child_report(const std::vector<std::string>& reply) {
  if (reply.size() != 2 || !starts_with(reply[0], "| ") ||
      !starts_with(reply[1], "OK done exit=0 ")) {
    ADD_FAILURE() << "not an argv-echo reply:\n" << joined(reply);
    return nullptr;
  }
  auto j = json::parse(reply[0].substr(2), nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << reply[0];
  return j;
}

json argv_of(const std::vector<std::string>& reply) {
  const json report = child_report(reply);
  return report.is_object() ? report["argv"] : json();
}

// Number of `command_end` records that describe a process that ran (exit or signal).
std::size_t processes_run(const AgentProcess& agent) {
  std::size_t n = 0;
  for (const auto& r : agent.audit()) {
    if (r.value("event", "") == "command_end" && (r.contains("exit") || r.contains("signal"))) ++n;
  }
  return n;
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::istringstream in(read_text(task.path() / "children"));
    for (pid_t child = 0; in >> child;) out.push_back(child);
  }
  return out;
}

bool is_shell(const fs::path& exe) {
  static const std::set<std::string> kShells = {"sh",  "bash", "dash", "zsh",  "ksh",     "mksh",
                                                "ash", "csh",  "tcsh", "fish", "busybox", "yash"};
  return kShells.count(exe.filename().string()) != 0;
}

// Records the executable of every descendant of the agent while it lives (polling /proc).
class DescendantWatcher {
 public:
  explicit DescendantWatcher(pid_t agent) : agent_(agent), thread_([this] { loop(); }) {}
  ~DescendantWatcher() { stop(); }
  DescendantWatcher(const DescendantWatcher&) = delete;
  DescendantWatcher& operator=(const DescendantWatcher&) = delete;

  /// Stops watching; returns every executable seen (canonical paths).
  std::set<std::string> stop() {
    if (thread_.joinable()) {
      done_ = true;
      thread_.join();
    }
    return seen_;
  }
  [[nodiscard]] int scans() const { return scans_.load(); }

 private:
  void loop() {
    while (!done_) {
      std::vector<pid_t> todo = children_of(agent_);
      for (std::size_t i = 0; i < todo.size() && i < 256; ++i) {
        std::error_code ec;
        const fs::path exe = fs::read_symlink("/proc/" + std::to_string(todo[i]) + "/exe", ec);
        if (!ec) seen_.insert(exe.string());
        for (const pid_t grandchild : children_of(todo[i])) todo.push_back(grandchild);
      }
      ++scans_;
      std::this_thread::sleep_for(1ms);
    }
  }

  pid_t agent_;
  std::atomic<bool> done_{false};
  std::set<std::string> seen_;
  std::atomic<int> scans_{0};
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------------
// C1: default deny

const std::string kC1Policy = R"(
identities:
  - match: {cn: alice}
    principal: alice
    roles: [operator]
  - match: {cn: mallory}
    principal: mallory
    roles: []
roles:
  operator:
    commands: [ping, run]
    run: [echo-args]
logs:
  app: @DIR@/syslog
commands:
  echo-args:
    argv: [@HELPERS@/argv-echo, fixed]
    args:
      - {name: a, pattern: '.{0,200}', optional: true}
)";

// Every grantable verb, in each arity the protocol accepts, as a principal may send it.
std::vector<std::string> every_grantable_request(const fs::path& dir) {
  const std::string file = (dir / "syslog").string();
  return {"ping",
          "whoami",
          "lastlog",
          "tail app",
          "tail app 5",
          "comphash " + file,
          "hash sha256 " + file,
          "hash sha1 " + file,
          "run echo-args",
          "run echo-args x",
          "run " + helper_path("argv-echo").string()};
}

// The verbs `help` lists (first word of each data line).
std::set<std::string> help_verbs(TlsClient& client) {
  const auto r = client.command("help");
  EXPECT_FALSE(r.empty());
  EXPECT_EQ(r.empty() ? "" : r.back(), "OK help");
  std::set<std::string> verbs;
  for (std::size_t i = 0; i + 1 < r.size(); ++i) {
    EXPECT_TRUE(starts_with(r[i], "| ")) << r[i];
    std::istringstream in(r[i].substr(2));
    std::string verb;
    in >> verb;
    verbs.insert(verb);
  }
  return verbs;
}

const std::set<std::string> kBuiltins = {"exit", "help", "json", "quit"};

TEST(MatrixC, C1_IdentityWithoutRolesIsDeniedEveryGrantableCommand) {
  AgentProcess agent{AgentSpec{kC1Policy, {}}};
  std::string greeting;
  auto c = agent.connect("mallory", &greeting);
  EXPECT_TRUE(starts_with(greeting, "OK opsagent ")) << greeting;
  EXPECT_NE(greeting.find("principal=mallory"), std::string::npos) << greeting;
  const std::size_t ran_before = processes_run(agent);
  for (const auto& line : every_grantable_request(agent.dir())) {
    SCOPED_TRACE(line);
    const Exchange e = ask(agent, *c, line);
    expect_denied(e, "default-deny");
    EXPECT_NE(e.record.value("reason", "").find("no role of mallory allows"), std::string::npos)
        << e.record.dump();
    EXPECT_EQ(e.record.value("principal", ""), "mallory");
  }
  // Only the builtins remain, and they work.
  EXPECT_EQ(help_verbs(*c), kBuiltins);
  EXPECT_EQ(c->command("json on").size(), 1U);
  EXPECT_EQ(c->command("json off"), std::vector<std::string>{"OK json off"});
  EXPECT_EQ(processes_run(agent), ran_before) << "a denied request started a process";
}

TEST(MatrixC, C1_UnknownCommandsAreRejectedWithAReason) {
  AgentProcess agent{AgentSpec{kC1Policy, {}}};
  auto c = agent.connect("alice");
  std::vector<std::string> names = {
      "PING",   "Ping",   "pING",    "RUN",         "Run",    "HASH",   "Tail",   "shell",
      "sh",     "bash",   "exec",    "eval",        "system", "sudo",   "su",     "cat",
      "rm",     "id",     "kill",    "reload",      "reboot", "admin",  "debug",  "set",
      "config", "policy", "/bin/sh", "/usr/bin/id", "./run",  "../run", "run;id", "ping;id",
      "$(id)",  "`id`",   "help2",   "pingx",       "ru",     "run-",   "exit1",  "comphash2"};
  names.push_back(helper_path("argv-echo").string());
  // Random names from a fixed seed (reproducible), none of them a real verb.
  std::mt19937 rng(20240601);
  const std::string alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_.";
  std::uniform_int_distribution<std::size_t> length(1, 12);
  std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
  const std::set<std::string> real = {"help", "ping", "whoami", "lastlog", "tail", "comphash",
                                      "hash", "run",  "json",   "exit",    "quit"};
  while (names.size() < 80) {
    std::string name;
    for (std::size_t i = length(rng); i > 0; --i) name.push_back(alphabet[pick(rng)]);
    if (real.count(name) == 0) names.push_back(name);
  }
  const std::size_t ran_before = processes_run(agent);
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    const Exchange e = ask(agent, *c, quoted(name) + " x");
    expect_refused(e, "unknown", "reject", "protocol");
    EXPECT_EQ(e.record.value("command", ""), name);
  }
  EXPECT_EQ(processes_run(agent), ran_before);
  EXPECT_EQ(c->command("ping"), std::vector<std::string>{"OK pong"});
}

TEST(MatrixC, C1_PolicyThatMapsButGrantsNothingDeniesEverything) {
  // Two shapes of "empty": an identity without roles and no roles section at all, and an
  // identity whose only role is empty.
  for (const std::string& policy : Strings{std::string(R"(
identities:
  - match: {cn: alice}
    principal: alice
    roles: []
)"),
                                           std::string(R"(
identities:
  - match: {cn: alice}
    principal: alice
    roles: [nothing]
roles:
  nothing: {}
)")}) {
    SCOPED_TRACE(policy);
    AgentProcess agent{AgentSpec{policy, {}}};
    auto c = agent.connect("alice");
    for (const auto& line : every_grantable_request(agent.dir())) {
      SCOPED_TRACE(line);
      expect_denied(ask(agent, *c, line), "default-deny");
    }
    EXPECT_EQ(help_verbs(*c), kBuiltins);
    EXPECT_EQ(processes_run(agent), 0U);
  }
}

TEST(MatrixC, C1_EmptyIdentityListRefusesEveryCertificate) {
  AgentProcess agent{AgentSpec{"identities: []\n", {}}};
  for (const std::string& id : Strings{"alice", "ci-bot", "mallory"}) {
    SCOPED_TRACE(id);
    TlsClient c(agent.client_options(id));
    ASSERT_EQ(c.connect("127.0.0.1", agent.port()), "");
    const auto line = c.read_line();
    ASSERT_TRUE(line.has_value()) << c.last_error();
    EXPECT_TRUE(starts_with(*line, "ERR denied certificate ")) << *line;
    EXPECT_NE(line->find("is not mapped to a principal; bye"), std::string::npos) << *line;
    EXPECT_TRUE(c.wait_closed(5s));
  }
  // auth_denied records are queued, not awaited before the refusal: the last one may reach the
  // file a moment after its connection closed.
  const auto denials = [&agent] {
    const auto records = agent.audit();
    return std::count_if(records.begin(), records.end(),
                         [](const auto& r) { return r.value("event", "") == "auth_denied"; });
  };
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (denials() < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  std::size_t denied = 0;
  for (const auto& r : agent.audit()) {
    EXPECT_NE(r.value("event", ""), "auth_ok") << r.dump();
    EXPECT_NE(r.value("event", ""), "command") << r.dump();
    if (r.value("event", "") == "auth_denied") {
      ++denied;
      EXPECT_FALSE(r.value("reason", "").empty()) << r.dump();
    }
  }
  EXPECT_EQ(denied, 3U);
}

TEST(MatrixC, C1_ClientCannotNameAProgramInsteadOfACommand) {
  AgentProcess agent{AgentSpec{kC1Policy, {}}};
  auto c = agent.connect("alice");
  const std::string helper = helper_path("argv-echo").string();
  const std::size_t ran_before = processes_run(agent);
  for (const std::string& line :
       Strings{"run /bin/sh", "run /bin/sh -c id", "run " + helper, "run " + helper + " fixed",
               std::string("run argv-echo"), std::string("run ./argv-echo"),
               std::string("run ../echo-args"), std::string("run echo-args/../echo-args"),
               std::string("run ECHO-ARGS"), std::string("run 'echo-args '"),
               std::string("run ' echo-args'"), std::string("run echo-args*"),
               std::string("run /usr/bin/id"), std::string("run ''")}) {
    SCOPED_TRACE(line);
    const Exchange e = ask(agent, *c, line);
    expect_denied(e, "default-deny");
    EXPECT_NE(e.record.value("reason", "").find("no role of alice allows run"), std::string::npos)
        << e.record.dump();
  }
  // A program path as the verb is no command at all.
  for (const std::string& line : Strings{helper + " fixed", std::string("/bin/sh -c id")}) {
    SCOPED_TRACE(line);
    expect_refused(ask(agent, *c, line), "unknown", "reject", "protocol");
  }
  EXPECT_EQ(processes_run(agent), ran_before) << "a refused request started a process";
}

TEST(MatrixC, C1_NamedCommandsExecTheFixedAbsolutePathOfThePolicy) {
  // A hostile PATH in the agent's own environment changes nothing: there is no PATH search.
  const fs::path decoy = fs::temp_directory_path() / unique_marker("opsagent-c1-path");
  fs::create_directories(decoy);
  AgentProcess agent{AgentSpec{kC1Policy, {}, "127.0.0.1", {{"PATH", decoy.string()}}}};
  auto c = agent.connect("alice");
  const std::string helper = helper_path("argv-echo").string();
  Exchange e = ask(agent, *c, "run echo-args");
  EXPECT_EQ(argv_of(e.reply), (json{helper, "fixed"})) << "no client arguments: no --";
  EXPECT_EQ(e.record.value("decision", ""), "allow");
  EXPECT_EQ(e.record.value("rule", ""), "roles.operator.run");
  EXPECT_FALSE(e.record.value("reason", "").empty());
  e = ask(agent, *c, "run echo-args /bin/sh");
  EXPECT_EQ(argv_of(e.reply), (json{helper, "fixed", "--", "/bin/sh"}));
  EXPECT_TRUE(fs::path(helper).is_absolute());
  fs::remove_all(decoy);
}

// ---------------------------------------------------------------------------------------------
// C2: conflicting roles

std::string c2_policy(const std::string& granting, const std::string& revoking, bool deny_first) {
  const std::string roles = deny_first ? revoking + ", " + granting : granting + ", " + revoking;
  return R"(
identities:
  - match: {cn: alice}
    principal: alice
    roles: [)" +
         roles + R"(]
roles:
  )" + granting +
         R"(:
    commands: [ping, whoami, run, hash, tail]
    run: [echo-args]
    logs: [app]
    hash: {algorithms: [sha256], paths: ["@DIR@/files/**"]}
  )" + revoking +
         R"(:
    commands: [tail]
    deny: [run, hash, whoami]
    logs: [app]
logs:
  app: @DIR@/syslog
commands:
  echo-args:
    argv: [@HELPERS@/argv-echo, fixed]
    args: [{name: a, pattern: '.{0,200}', optional: true}]
)";
}

TEST(MatrixC, C2_ExplicitDenyWinsWhateverTheRoleOrder) {
  // Both listing orders, and both name orders (the deny role sorting first or last).
  for (const auto& [granting, revoking] : std::vector<std::pair<std::string, std::string>>{
           {"a-grant", "z-revoke"}, {"z-grant", "a-revoke"}}) {
    std::vector<std::vector<std::string>> outcomes;  // per listing order: reply + rule per line
    for (const bool deny_first : {false, true}) {
      SCOPED_TRACE(granting + " " + revoking + (deny_first ? " deny listed first" : ""));
      AgentProcess agent{AgentSpec{c2_policy(granting, revoking, deny_first), {}}};
      fs::create_directories(agent.dir() / "files");
      write_file(agent.dir() / "files" / "data.txt", "data\n");
      auto c = agent.connect("alice");
      std::vector<std::string> seen;
      for (const std::string& line : Strings{
               std::string("run echo-args x"), std::string("run echo-args"), std::string("whoami"),
               "hash sha256 " + (agent.dir() / "files" / "data.txt").string()}) {
        SCOPED_TRACE(line);
        const Exchange e = ask(agent, *c, line);
        expect_denied(e, "roles." + revoking + ".deny");
        seen.push_back(e.reply.empty() ? "" : e.reply[0]);
        seen.push_back(e.record.value("rule", ""));
      }
      Exchange e = ask(agent, *c, "ping");
      EXPECT_EQ(e.reply, std::vector<std::string>{"OK pong"});
      EXPECT_EQ(e.record.value("rule", ""), "roles." + granting + ".commands");
      seen.push_back(e.record.value("rule", ""));
      // Both roles allow tail: the rule named is the first role by name, never by listing.
      e = ask(agent, *c, "tail app 1");
      EXPECT_EQ(e.reply, (std::vector<std::string>{"| syslog line 15", "OK app lines=1"}));
      EXPECT_EQ(e.record.value("rule", ""), "roles." + std::min(granting, revoking) + ".logs");
      seen.push_back(e.record.value("rule", ""));
      EXPECT_EQ(help_verbs(*c),
                (std::set<std::string>{"exit", "help", "json", "ping", "quit", "tail"}));
      EXPECT_EQ(processes_run(agent), 0U);
      outcomes.push_back(seen);
    }
    ASSERT_EQ(outcomes.size(), 2U);
    EXPECT_EQ(outcomes[0], outcomes[1]) << "the decision depends on the order of roles";
  }
}

TEST(MatrixC, C2_AlgorithmAndPathMustBeGrantedByTheSameRole) {
  for (const bool reversed : {false, true}) {
    SCOPED_TRACE(reversed ? "roles [five-twelve, two-five-six]"
                          : "roles [two-five-six, five-twelve]");
    const std::string policy = std::string(R"(
identities:
  - match: {cn: alice}
    principal: alice
    roles: )") + (reversed ? "[five-twelve, two-five-six]" : "[two-five-six, five-twelve]") +
                               R"(
roles:
  two-five-six:
    commands: [hash]
    hash: {algorithms: [sha256], paths: ["@DIR@/a/**"]}
  five-twelve:
    commands: [hash]
    hash: {algorithms: [sha512], paths: ["@DIR@/b/*.txt"]}
)";
    AgentProcess agent{AgentSpec{policy, {}}};
    for (const char* sub : {"a", "b"}) {
      fs::create_directories(agent.dir() / sub);
      write_file(agent.dir() / sub / "f.txt", std::string("file in ") + sub + "\n");
    }
    const std::string a = (agent.dir() / "a" / "f.txt").string();
    const std::string b = (agent.dir() / "b" / "f.txt").string();
    auto c = agent.connect("alice");
    Exchange e = ask(agent, *c, "hash sha256 " + a);
    ASSERT_EQ(e.reply.size(), 1U);
    EXPECT_TRUE(starts_with(e.reply[0], "OK sha256 ")) << e.reply[0];
    EXPECT_EQ(e.record.value("rule", ""), "roles.two-five-six.hash.paths");
    e = ask(agent, *c, "hash sha512 " + b);
    ASSERT_EQ(e.reply.size(), 1U);
    EXPECT_TRUE(starts_with(e.reply[0], "OK sha512 ")) << e.reply[0];
    EXPECT_EQ(e.record.value("rule", ""), "roles.five-twelve.hash.paths");
    // Half a grant from each role adds up to nothing.
    for (const std::string& line : Strings{"hash sha512 " + a, "hash sha256 " + b}) {
      SCOPED_TRACE(line);
      expect_denied(ask(agent, *c, line), "default-deny");
    }
    // comphash (always SHA-1) needs only a path grant from a role that allows comphash: none.
    expect_denied(ask(agent, *c, "comphash " + a), "default-deny");
  }
}

// ---------------------------------------------------------------------------------------------
// C3, C4, C5: arguments of named commands

const std::string kExecPolicy = R"(
identities:
  - match: {cn: alice}
    principal: alice
    roles: [ops]
roles:
  ops:
    commands: [ping, tail, run]
    logs: [app]
    run: [echo, lines, sorter, digits, hold]
logs:
  app: @DIR@/syslog
tail: {max_lines: 100}
commands:
  echo:
    argv: [@HELPERS@/argv-echo, fixed]
    args:
      - {name: a1, pattern: '.{0,200}', optional: true}
      - {name: a2, pattern: '.{0,200}', optional: true}
      - {name: a3, pattern: '.{0,200}', optional: true}
      - {name: a4, pattern: '.{0,200}', optional: true}
      - {name: a5, pattern: '.{0,200}', optional: true}
      - {name: a6, pattern: '.{0,200}', optional: true}
      - {name: a7, pattern: '.{0,200}', optional: true}
      - {name: a8, pattern: '.{0,200}', optional: true}
  lines:
    argv: [@HELPERS@/argv-echo, tail, -n]
    args: [{name: count, pattern: '[1-9][0-9]{0,3}'}]
    end_of_options: false
  sorter:
    argv: [@HELPERS@/argv-echo, sort]
    args: [{name: file, pattern: '[A-Za-z0-9._=-]+'}]
  digits:
    argv: [@HELPERS@/argv-echo, digits]
    args: [{name: n, pattern: '\d+'}]
  hold:
    argv: [@HELPERS@/sleeper, "1000"]
    args:
      - {name: marker, pattern: '[a-z0-9-]+'}
      - {name: x1, pattern: '.{0,200}', optional: true}
      - {name: x2, pattern: '.{0,200}', optional: true}
      - {name: x3, pattern: '.{0,200}', optional: true}
    timeout: 20s
)";

TEST(MatrixC, C3_OptionsOutsideTheArgumentPatternsAreDenied) {
  AgentProcess agent{AgentSpec{kExecPolicy, {}}};
  auto c = agent.connect("alice");
  struct Case {
    std::string line;
    std::string code;
    std::string rule;
  };
  const std::vector<Case> cases = {
      // `lines` is `tail -n COUNT`: the client supplies an option's value, so only the
      // pattern stands between it and option injection.
      {"run lines -f", "denied", "commands.lines.args"},
      {"run lines --follow=name", "denied", "commands.lines.args"},
      {"run lines --pid=1", "denied", "commands.lines.args"},
      {"run lines --version", "denied", "commands.lines.args"},
      {"run lines -n10", "denied", "commands.lines.args"},
      {"run lines '10 -f'", "denied", "commands.lines.args"},
      {"run lines 10 -f", "denied", "commands.lines.args"},
      {"run lines 10 -- -x", "denied", "commands.lines.args"},
      {"run lines -- 10", "denied", "commands.lines.args"},
      // `sorter` is `sort FILE`: `-o FILE` would write a file.
      {"run sorter -o /tmp/owned", "denied", "commands.sorter.args"},
      {"run sorter '-o /tmp/owned'", "denied", "commands.sorter.args"},
      {"run sorter --output=/tmp/owned", "denied", "commands.sorter.args"},
      {"run digits -1", "denied", "commands.digits.args"},
      {"run digits --help", "denied", "commands.digits.args"},
      // The builtin tail: a log name and a count, nothing else.
      {"tail app -f", "denied", "tail.max_lines"},
      {"tail app --follow=name", "denied", "tail.max_lines"},
      {"tail app --pid=1", "denied", "tail.max_lines"},
      {"tail -f app", "denied", "default-deny"},
      {"tail --pid=1", "denied", "default-deny"},
      {"tail --version", "denied", "default-deny"},
  };
  for (const auto& tc : cases) {
    SCOPED_TRACE(tc.line);
    expect_refused(ask(agent, *c, tc.line), tc.code, "deny", tc.rule);
  }
  // Extra words are a usage error, not something to pass on.
  for (const std::string& line : Strings{"tail app 10 -f", "tail -n 10 app"}) {
    SCOPED_TRACE(line);
    expect_refused(ask(agent, *c, line), "usage", "reject", "protocol");
  }
  EXPECT_EQ(processes_run(agent), 0U) << "a refused request started a process";
  EXPECT_FALSE(fs::exists("/tmp/owned"));
}

TEST(MatrixC, C3_AgentInsertsDoubleDashBeforeClientOperands) {
  AgentProcess agent{AgentSpec{kExecPolicy, {}}};
  auto c = agent.connect("alice");
  const std::string echo = helper_path("argv-echo").string();
  struct Case {
    std::string line;
    json argv;
  };
  const std::vector<Case> cases = {
      // A pattern that allows a leading dash: the value still arrives as an operand after --.
      {"run sorter -o", {echo, "sort", "--", "-o"}},
      {"run sorter --output=x", {echo, "sort", "--", "--output=x"}},
      {"run sorter --version", {echo, "sort", "--", "--version"}},
      {"run sorter -", {echo, "sort", "--", "-"}},
      {"run echo -x --pid=1 -- -f", {echo, "fixed", "--", "-x", "--pid=1", "--", "-f"}},
      {"run echo --", {echo, "fixed", "--", "--"}},
      {"run echo '-n 10'", {echo, "fixed", "--", "-n 10"}},
      {"run digits 5", {echo, "digits", "--", "5"}},
      // No client arguments: nothing is appended.
      {"run echo", {echo, "fixed"}},
      // end_of_options: false (an option's value): no --, only the pattern protects.
      {"run lines 10", {echo, "tail", "-n", "10"}},
  };
  for (const auto& tc : cases) {
    SCOPED_TRACE(tc.line);
    const Exchange e = ask(agent, *c, tc.line);
    EXPECT_EQ(argv_of(e.reply), tc.argv);
    EXPECT_EQ(e.record.value("decision", ""), "allow") << e.record.dump();
    EXPECT_EQ(e.record.value("rule", ""), "roles.ops.run") << e.record.dump();
  }
}

TEST(MatrixC, C4_NumericArgumentsAreFullMatchedAndRangeChecked) {
  AgentProcess agent{AgentSpec{kExecPolicy, {}}};
  auto c = agent.connect("alice");
  // Each as written on the line (quoted where the word holds a space or is empty).
  const std::vector<std::string> bad = {
      "99999999999", "-1",   "1e9",    "0x10",  "' 10'", "'10 '", "10;",   "'10;x'", "10;x",
      "+10",         "010",  "0",      "00",    "1.5",   "''",    "10abc", "abc10",  "1_000",
      "10\\n",       "１０", "'10\"'", "'1 0'", "٣",     "10%",   "1,000", "2**31",  "-0",
  };
  for (const auto& word : bad) {
    SCOPED_TRACE(word);
    expect_denied(ask(agent, *c, "run lines " + word), "commands.lines.args");
    expect_denied(ask(agent, *c, "tail app " + word), "tail.max_lines");
  }
  // Range: the pattern allows 1-9999, the policy's tail.max_lines is 100.
  expect_denied(ask(agent, *c, "run lines 10000"), "commands.lines.args");
  expect_denied(ask(agent, *c, "tail app 101"), "tail.max_lines");
  // Anchored: `\d+` must match the whole argument.
  for (const std::string& word : Strings{"10;x", "x10", "'10 x'", "'10 '", "10;", "1-0"}) {
    SCOPED_TRACE(word);
    expect_denied(ask(agent, *c, "run digits " + word), "commands.digits.args");
  }
  EXPECT_EQ(processes_run(agent), 0U) << "a refused request started a process";
  // The boundaries that are allowed arrive unchanged.
  const std::string echo = helper_path("argv-echo").string();
  for (const std::string& n : Strings{"1", "10", "9999"}) {
    SCOPED_TRACE(n);
    EXPECT_EQ(argv_of(c->command("run lines " + n)), (json{echo, "tail", "-n", n}));
  }
  EXPECT_EQ(argv_of(c->command("run digits 007")), (json{echo, "digits", "--", "007"}));
  EXPECT_EQ(c->command("tail app 1"),
            (std::vector<std::string>{"| syslog line 15", "OK app lines=1"}));
  EXPECT_EQ(c->command("tail app 100").back(), "OK app lines=15");
}

TEST(MatrixC, C5_ShellMetacharactersReachArgvLiterally) {
  AgentProcess agent{AgentSpec{kExecPolicy, {}}};
  auto c = agent.connect("alice");
  const fs::path pwned = agent.dir() / "pwned";
  const std::vector<std::string> words = {";",
                                          "&",
                                          "&&",
                                          "|",
                                          "||",
                                          "$(id)",
                                          "`id`",
                                          ">",
                                          ">>",
                                          "<",
                                          "*",
                                          "?",
                                          "~",
                                          "~root",
                                          "{a,b}",
                                          "$HOME",
                                          "${IFS}",
                                          "a;b&c|d",
                                          "\\",
                                          "\"",
                                          "'",
                                          "!",
                                          "#comment",
                                          "$((1+1))",
                                          "<(id)",
                                          "a\\nb",
                                          "*.txt",
                                          "[a-z]*",
                                          "$'\\x41'",
                                          "2>&1",
                                          "%s%n",
                                          "{}",
                                          "> " + pwned.string() + "-1",
                                          "$(touch " + pwned.string() + "-2)",
                                          "`touch " + pwned.string() + "-3`",
                                          "; touch " + pwned.string() + "-4",
                                          "| touch " + pwned.string() + "-5",
                                          "&& touch " + pwned.string() + "-6 #",
                                          "x\" ; touch " + pwned.string() + "-7 ; \"",
                                          "x' ; touch " + pwned.string() + "-8 ; '"};
  const std::string echo = helper_path("argv-echo").string();
  DescendantWatcher watcher(agent.pid());
  for (std::size_t i = 0; i < words.size(); i += 8) {
    std::string line = "run echo";
    json expected = {echo, "fixed", "--"};
    for (std::size_t j = i; j < words.size() && j < i + 8; ++j) {
      line += " " + quoted(words[j]);
      expected.push_back(words[j]);
    }
    SCOPED_TRACE(line);
    const Exchange e = ask(agent, *c, line);
    EXPECT_EQ(argv_of(e.reply), expected);
    EXPECT_EQ(e.record["args"].size(), expected.size() - 2) << e.record.dump();
  }
  // Unquoted, too: nothing is expanded.
  EXPECT_EQ(argv_of(c->command("run echo ; & | * ~ $(id) `id` {a,b}")),
            (json{echo, "fixed", "--", ";", "&", "|", "*", "~", "$(id)", "`id`", "{a,b}"}));
  // A newline cannot be smuggled into an argument: LF ends the line, and what follows it is a
  // line of its own (here an unknown command); a bare CR is refused.
  ASSERT_TRUE(c->write("run echo 'a\nid'\n"));
  const auto first = c->read_reply();
  ASSERT_EQ(first.size(), 1U) << joined(first);
  EXPECT_TRUE(starts_with(first[0], "ERR usage ")) << first[0];
  const auto second = c->read_reply();
  ASSERT_EQ(second.size(), 1U) << joined(second);
  EXPECT_TRUE(starts_with(second[0], "ERR unknown ")) << second[0];
  const auto cr = c->command("run echo 'a\rid'");
  ASSERT_EQ(cr.size(), 1U) << joined(cr);
  EXPECT_TRUE(starts_with(cr[0], "ERR usage ")) << cr[0];

  const std::set<std::string> seen = watcher.stop();
  for (int i = 1; i <= 8; ++i) {
    EXPECT_FALSE(fs::exists(pwned.string() + "-" + std::to_string(i))) << "a shell ran: " << i;
  }
  for (const auto& exe : seen) EXPECT_FALSE(is_shell(exe)) << "the agent ran a shell: " << exe;
  std::printf("C5: %d /proc scans saw the agent's children as:", watcher.scans());
  for (const auto& exe : seen) std::printf(" %s", exe.c_str());
  std::printf("\n");
}

TEST(MatrixC, C5_NoShellIsEverExecuted) {
  AgentProcess agent{AgentSpec{kExecPolicy, {}}};
  auto c = agent.connect("alice");
  const std::string marker = unique_marker("c5-hold");
  ASSERT_TRUE(c->write("run hold " + marker + " '$(sh)' ';sh -c id' '`bash`'\n"));
  const auto first = c->read_line();
  ASSERT_TRUE(first.has_value()) << c->last_error();
  EXPECT_EQ(*first, "| sleeping");
  // The running command: the policy's program, exec'd by the agent's guard (never by a shell),
  // with the metacharacters as plain argv elements.
  std::vector<pid_t> found;
  std::vector<pid_t> todo = children_of(agent.pid());
  for (std::size_t i = 0; i < todo.size() && i < 256; ++i) {
    const std::string proc = "/proc/" + std::to_string(todo[i]);
    std::error_code ec;
    const fs::path exe = fs::read_symlink(proc + "/exe", ec);
    if (!ec) {
      EXPECT_FALSE(is_shell(exe)) << "the agent ran a shell: " << exe.string();
    }
    // opsagent-guard, the parent of every command, carries the command line after its own
    // arguments; the command itself is its child.
    const bool guard = !ec && exe.filename() == "opsagent-guard";
    if (!guard && read_text(proc + "/cmdline").find(marker) != std::string::npos) {
      found.push_back(todo[i]);
      EXPECT_EQ(exe.string(), fs::canonical(helper_path("sleeper")).string());
    }
    for (const pid_t grandchild : children_of(todo[i])) todo.push_back(grandchild);
  }
  ASSERT_EQ(found.size(), 1U) << "the sleeper is not a descendant of the agent";
  const std::string cmdline = read_text("/proc/" + std::to_string(found[0]) + "/cmdline");
  const std::string expected = helper_path("sleeper").string() + '\0' + "1000" + '\0' + "--" +
                               '\0' + marker + '\0' + "$(sh)" + '\0' + ";sh -c id" + '\0' +
                               "`bash`" + '\0';
  EXPECT_EQ(cmdline, expected);
  c->reset();
  EXPECT_TRUE(wait_no_process_with_marker(marker, 5s));
}

// ---------------------------------------------------------------------------------------------
// C6, C7, C9, C10, C11: files

// /proc/** and /dev/** are granted on purpose (a careless operator): the open checks, not the
// patterns, must refuse what lies there. The logs name files a careless operator (or someone who
// can write to a log directory) could make point anywhere.
const std::string kFilePolicy = R"(
identities:
  - match: {cn: alice}
    principal: alice
    roles: [files]
roles:
  files:
    commands: [ping, tail, comphash, hash]
    logs: [app, abs-link, rel-link, loop, fifo, dir, socket, zero, urandom, environ, self-fd]
    hash:
      algorithms: [sha1, sha256]
      paths: ["@DIR@/files/**", "@DIR@/logs/*.log", "/proc/**", "/dev/**"]
logs:
  app: @DIR@/syslog
  abs-link: @DIR@/logs/abs-link.log
  rel-link: @DIR@/logs/rel-link.log
  loop: @DIR@/logs/loop.log
  fifo: @DIR@/logs/fifo.log
  dir: @DIR@/logs/dir.log
  socket: @DIR@/logs/socket.log
  zero: /dev/zero
  urandom: /dev/urandom
  environ: /proc/self/environ
  self-fd: /proc/self/fd/0
)";

void make_socket(const fs::path& path) {
  const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(s, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(path.native().size(), sizeof addr.sun_path);
  std::memcpy(addr.sun_path, path.c_str(), path.native().size() + 1);
  EXPECT_EQ(::bind(s, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  ::close(s);  // the socket file stays
}

// The fixture tree in the agent's directory, with a canary outside the allowed roots that
// must never come back, as content or as a digest.
class FileTree {
 public:
  explicit FileTree(const fs::path& dir) : dir_(dir) {
    canary_ = unique_marker("opsagent-canary") + " do not disclose";
    sha1_ = hex_digest(canary_ + "\n", EVP_sha1());
    sha256_ = hex_digest(canary_ + "\n", EVP_sha256());
    for (const char* d :
         {"files/sub", "files/%2e%2e", "files2", "outside", "logs/dir.log", "logs/sub", "logs2"}) {
      fs::create_directories(dir / d);
    }
    for (const char* f : {"canary.txt", "outside/canary.txt", "files2/secret.txt", "logs2/x.log",
                          "logs/sub/x.log"}) {
      write_file(dir / f, canary_ + "\n");
    }
    write_file(dir / "files/data.txt", "hello opsagent\n");
    write_file(dir / "files/sub/inner.txt", "inner\n");
    write_file(dir / "files/%2e%2e/literal.txt", "literal\n");
    write_file(dir / "logs/app.log", "log line\n");
    // Symbolic links inside the allowed tree.
    fs::create_symlink(dir / "canary.txt", dir / "files/abs-link");
    fs::create_symlink("../canary.txt", dir / "files/rel-link");
    fs::create_symlink("data.txt", dir / "files/inner-link");
    fs::create_symlink("../../canary.txt", dir / "files/sub/up-link");
    fs::create_symlink(dir / "outside", dir / "files/dir-link");
    fs::create_symlink("../outside", dir / "files/rel-dir-link");
    fs::create_symlink("sub", dir / "files/inner-dir-link");
    fs::create_symlink("loop-b", dir / "files/loop-a");
    fs::create_symlink("loop-a", dir / "files/loop-b");
    fs::create_symlink("self-loop", dir / "files/self-loop");
    fs::create_symlink("/proc/self/fd/0", dir / "files/fd-link");
    fs::create_symlink("/proc/self/environ", dir / "files/environ-link");
    fs::create_symlink(dir / "canary.txt", dir / "logs/abs-link.log");
    fs::create_symlink("../canary.txt", dir / "logs/rel-link.log");
    fs::create_symlink("loop.log", dir / "logs/loop.log");
    EXPECT_EQ(::mkfifo((dir / "logs/fifo.log").c_str(), 0600), 0);
    make_socket(dir / "logs/socket.log");
  }

  [[nodiscard]] std::string path(const std::string& rel) const { return (dir_ / rel).string(); }
  [[nodiscard]] const std::string& canary() const { return canary_; }

  /// The reply discloses neither the canary nor its digests.
  void expect_no_leak(const std::vector<std::string>& reply) const {
    const std::string all = joined(reply);
    EXPECT_EQ(all.find(canary_), std::string::npos) << "canary content returned:\n" << all;
    EXPECT_EQ(all.find(sha1_), std::string::npos) << "canary SHA-1 returned:\n" << all;
    EXPECT_EQ(all.find(sha256_), std::string::npos) << "canary SHA-256 returned:\n" << all;
  }

 private:
  fs::path dir_;
  std::string canary_;
  std::string sha1_;
  std::string sha256_;
};

// hash sha256, hash sha1 and comphash of `path`.
std::vector<std::string> digest_requests(const std::string& path) {
  return {"hash sha256 " + path, "hash sha1 " + path, "comphash " + path};
}

TEST(MatrixC, C6_TraversalAndMalformedPathsAreDeniedLexically) {
  AgentProcess agent{AgentSpec{kFilePolicy, {}}};
  const FileTree tree(agent.dir());
  auto c = agent.connect("alice");
  std::string too_long = tree.path("files");  // PATH_MAX + 1 bytes, in 200-byte components
  while (too_long.size() < 4097) too_long += "/" + std::string(200, 'a');
  too_long.resize(4097);
  const std::vector<std::string> paths = {
      tree.path("files/../canary.txt"),
      tree.path("files/sub/../../canary.txt"),
      tree.path("files/sub/../inner.txt"),
      tree.path("files/./data.txt"),
      tree.path("files/.."),
      tree.path("files//data.txt"),
      tree.path("files/data.txt/"),
      tree.path("files/sub/"),
      tree.path("files/"),
      tree.path("files"),  // the root itself is never granted
      tree.path("canary.txt"),
      tree.path("outside/canary.txt"),
      "/etc/passwd",
      "/etc/shadow",
      "//etc/passwd",
      "files/data.txt",
      "./files/data.txt",
      "../canary.txt",
      "~/canary.txt",
      "''",
      too_long,
  };
  for (const auto& p : paths) {
    for (const auto& line : digest_requests(p)) {
      SCOPED_TRACE(line.substr(0, 120));
      const Exchange e = ask(agent, *c, line);
      expect_denied(e, "default-deny");
      tree.expect_no_leak(e.reply);
    }
  }
  const Exchange e = ask(agent, *c, "hash sha256 " + too_long);
  EXPECT_NE(e.record.value("reason", "").find("longer than 4096 bytes"), std::string::npos)
      << e.record.dump();
  EXPECT_EQ(e.record["args"][1].get<std::string>().size(),
            1024 + std::string("...[truncated, 4097 bytes]").size())
      << "long arguments are cut in the audit";
  // Control: the tree itself is served.
  const auto ok = c->command("hash sha256 " + tree.path("files/sub/inner.txt"));
  ASSERT_EQ(ok.size(), 1U);
  EXPECT_EQ(ok[0], "OK sha256 " + hex_digest("inner\n", EVP_sha256()) +
                       " bytes=6 path=" + tree.path("files/sub/inner.txt"));
}

TEST(MatrixC, C6_PercentEncodingIsNeverDecoded) {
  AgentProcess agent{AgentSpec{kFilePolicy, {}}};
  const FileTree tree(agent.dir());
  auto c = agent.connect("alice");
  // "%2e%2e" is a directory literally called so.
  const auto r = c->command("hash sha256 " + tree.path("files/%2e%2e/literal.txt"));
  ASSERT_EQ(r.size(), 1U);
  EXPECT_TRUE(starts_with(r[0], "OK sha256 " + hex_digest("literal\n", EVP_sha256()) + " "))
      << r[0];
  for (const std::string& rel :
       Strings{"files/%2e%2e/canary.txt", "files/%2E%2E/canary.txt", "files/%2e%2e%2fcanary.txt",
               "files/..%2fcanary.txt", "files/%252e%252e/canary.txt",
               "files/%2e%2e%2f%2e%2e%2fcanary.txt"}) {
    for (const auto& line : digest_requests(tree.path(rel))) {
      SCOPED_TRACE(line);
      const Exchange e = ask(agent, *c, line);
      expect_refused(e, "notfound", "allow", "roles.files.hash.paths");
      tree.expect_no_leak(e.reply);
    }
  }
}

TEST(MatrixC, C6_SiblingPrefixDirectoriesAreOutsideTheRoot) {
  AgentProcess agent{AgentSpec{kFilePolicy, {}}};
  const FileTree tree(agent.dir());
  auto c = agent.connect("alice");
  // Roots are @DIR@/files (files/**) and @DIR@/logs (logs/*.log): files2 and logs2 share a
  // string prefix only; logs/sub/x.log is one component too deep for `*.log`.
  for (const std::string& rel :
       Strings{"files2/secret.txt", "logs2/x.log", "logs/sub/x.log", "files2", "logsx.log"}) {
    for (const auto& line : digest_requests(tree.path(rel))) {
      SCOPED_TRACE(line);
      const Exchange e = ask(agent, *c, line);
      expect_denied(e, "default-deny");
      tree.expect_no_leak(e.reply);
    }
  }
  const auto ok = c->command("comphash " + tree.path("logs/app.log"));
  ASSERT_EQ(ok.size(), 1U);
  EXPECT_TRUE(starts_with(ok[0], "OK sha1 " + hex_digest("log line\n", EVP_sha1()) + " ")) << ok[0];
}

TEST(MatrixC, C6_NulByteRejectsTheWholeLine) {
  AgentProcess agent{AgentSpec{kFilePolicy, {}}};
  const FileTree tree(agent.dir());
  auto c = agent.connect("alice");
  for (const std::string& line :
       Strings{"hash sha256 " + tree.path("files/data.txt") + std::string(1, '\0') +
                   "/../../canary.txt",
               "comphash " + tree.path("files/abs-link") + std::string(1, '\0'),
               "tail app" + std::string(1, '\0') + "/../abs-link"}) {
    SCOPED_TRACE(line.substr(0, line.find('\0')));
    const Exchange e = ask(agent, *c, line);
    ASSERT_EQ(e.reply.size(), 1U) << joined(e.reply);
    EXPECT_TRUE(starts_with(e.reply[0], "ERR usage ")) << e.reply[0];
    EXPECT_EQ(e.record.value("event", ""), "command_rejected") << e.record.dump();
    EXPECT_FALSE(e.record.value("reason", "").empty()) << e.record.dump();
    tree.expect_no_leak(e.reply);
  }
  for (const auto& r : agent.audit()) EXPECT_NE(r.value("event", ""), "command") << r.dump();
  EXPECT_EQ(c->command("ping"), std::vector<std::string>{"OK pong"});
}

TEST(MatrixC, C6_TailNamesLogsAndNeverTakesPaths) {
  AgentProcess agent{AgentSpec{kFilePolicy, {}}};
  const FileTree tree(agent.dir());
  auto c = agent.connect("alice");
  for (const std::string& log :
       Strings{std::string("../syslog"), std::string("app/../app"), std::string("/etc/passwd"),
               tree.path("syslog"), tree.path("canary.txt"), std::string("%2e%2e"),
               std::string("ap"), std::string("app2"), std::string("APP"), std::string("'app '"),
               std::string("app/"), std::string("./app"), std::string("*"), std::string("''")}) {
    SCOPED_TRACE(log);
    const Exchange e = ask(agent, *c, "tail " + log + " 5");
    expect_denied(e, "default-deny");
    tree.expect_no_leak(e.reply);
  }
  EXPECT_EQ(c->command("tail app 1"),
            (std::vector<std::string>{"| syslog line 15", "OK app lines=1"}));
}

TEST(MatrixC, C7_SymlinksInsideTheAllowedTreeAreNeverFollowed) {
  AgentProcess agent{AgentSpec{kFilePolicy, {}}};
  const FileTree tree(agent.dir());
  auto c = agent.connect("alice");
  for (const std::string& rel :
       Strings{"files/abs-link", "files/rel-link", "files/sub/up-link", "files/dir-link/canary.txt",
               "files/rel-dir-link/canary.txt", "files/inner-link",
               "files/inner-dir-link/inner.txt", "files/fd-link", "files/environ-link"}) {
    for (const auto& line : digest_requests(tree.path(rel))) {
      SCOPED_TRACE(line);
      const Exchange e = ask(agent, *c, line);
      // The pattern matches; the open (RESOLVE_NO_SYMLINKS beneath the root) refuses.
      expect_refused(e, "denied", "allow", "roles.files.hash.paths");
      tree.expect_no_leak(e.reply);
    }
  }
  const auto ok = c->command("hash sha256 " + tree.path("files/data.txt"));
  ASSERT_EQ(ok.size(), 1U);
  EXPECT_TRUE(starts_with(ok[0], "OK sha256 ")) << ok[0];
}

TEST(MatrixC, C7_SymlinkLoopsFailAtOnce) {
  AgentProcess agent{AgentSpec{kFilePolicy, {}}};
  const FileTree tree(agent.dir());
  auto c = agent.connect("alice");
  for (const std::string& rel : Strings{"files/loop-a", "files/loop-b", "files/self-loop",
                                        "files/loop-a/x", "files/self-loop/self-loop"}) {
    for (const auto& line : digest_requests(tree.path(rel))) {
      SCOPED_TRACE(line);
      // A loop fails with ELOOP: a reply at all shows nothing kept following it.
      expect_refused(ask(agent, *c, line), "denied", "allow", "roles.files.hash.paths");
    }
  }
}

TEST(MatrixC, C7_MagicLinksUnderProcAreRefused) {
  AgentProcess agent{AgentSpec{kFilePolicy, {}}};
  const FileTree tree(agent.dir());
  auto c = agent.connect("alice");
  const std::string self = "/proc/" + std::to_string(agent.pid());
  std::vector<std::string> paths = {"/proc/self/fd/0",
                                    "/proc/self/fd/1",
                                    "/proc/self/fd/2",
                                    "/proc/thread-self/fd/0",
                                    self + "/cwd" + tree.path("canary.txt"),
                                    self + "/root" + tree.path("canary.txt"),
                                    self + "/exe"};
  // Every descriptor the agent has open (its audit log and policy among them, perhaps).
  std::error_code ec;
  for (const auto& fd : fs::directory_iterator(self + "/fd", ec)) {
    if (paths.size() >= 64) break;
    paths.push_back(fd.path().string());
  }
  for (const auto& p : paths) {
    SCOPED_TRACE(p);
    const Exchange e = ask(agent, *c, "hash sha256 " + p);
    ASSERT_EQ(e.reply.size(), 1U) << joined(e.reply);
    EXPECT_TRUE(starts_with(e.reply[0], "ERR denied ") || starts_with(e.reply[0], "ERR notfound "))
        << e.reply[0];
    tree.expect_no_leak(e.reply);
  }
}

TEST(MatrixC, C7_TailRefusesLogsThatAreSymlinks) {
  AgentProcess agent{AgentSpec{kFilePolicy, {}}};
  const FileTree tree(agent.dir());
  auto c = agent.connect("alice");
  for (const std::string& log : Strings{"abs-link", "rel-link", "loop", "self-fd"}) {
    SCOPED_TRACE(log);
    const Exchange e = ask(agent, *c, std::string("tail ") + log + " 5");
    expect_refused(e, "denied", "allow", std::string("roles.files.logs"));
    tree.expect_no_leak(e.reply);
  }
}

TEST(MatrixC, C9_HardLinksToASecretAreRefused) {
  AgentProcess agent{AgentSpec{kFilePolicy, {}}};
  const FileTree tree(agent.dir());
  // A second name for the canary, inside the allowed tree; and two names both inside it.
  fs::create_hard_link(tree.path("canary.txt"), tree.path("files/hard.txt"));
  write_file(tree.path("files/twin-a.txt"), "twin\n");
  fs::create_hard_link(tree.path("files/twin-a.txt"), tree.path("files/twin-b.txt"));
  write_file(tree.path("elsewhere.txt"), "was linked\n");
  fs::create_hard_link(tree.path("elsewhere.txt"), tree.path("files/linked.txt"));
  auto c = agent.connect("alice");
  for (const std::string& rel :
       Strings{"files/hard.txt", "files/twin-a.txt", "files/twin-b.txt", "files/linked.txt"}) {
    for (const auto& line : digest_requests(tree.path(rel))) {
      SCOPED_TRACE(line);
      const Exchange e = ask(agent, *c, line);
      expect_refused(e, "denied", "allow", "roles.files.hash.paths");
      EXPECT_NE(e.reply[0].find("hard link"), std::string::npos) << e.reply[0];
      tree.expect_no_leak(e.reply);
    }
  }
  // It is the link count that decides: with the other name gone the file is served.
  fs::remove(tree.path("elsewhere.txt"));
  const auto ok = c->command("hash sha256 " + tree.path("files/linked.txt"));
  ASSERT_EQ(ok.size(), 1U);
  EXPECT_TRUE(starts_with(ok[0], "OK sha256 " + hex_digest("was linked\n", EVP_sha256()) + " "))
      << ok[0];
}

TEST(MatrixC, C9_MountsBeneathTheRootAreNotCrossed) {
  // Needs a user + mount namespace (unshare -rm); probe it in a bounded way first.
  const fs::path probe = fs::temp_directory_path() / unique_marker("opsagent-c9-probe");
  fs::create_directories(probe / "a");
  fs::create_directories(probe / "b");
  std::string out;
  const int rc =
      run_shell("timeout 5 unshare -rm /bin/sh -c 'mount --bind " + (probe / "a").string() + " " +
                    (probe / "b").string() + " && mount -t tmpfs -o size=64k tmpfs " +
                    (probe / "a").string() + "' 2>&1",
                &out);
  fs::remove_all(probe);
  if (rc != 0) {
    std::printf("C9 mount case skipped: unshare -rm failed (%d): %s\n", rc, out.c_str());
    GTEST_SKIP() << "C9 mount case needs user and mount namespaces (unshare -rm): " << out;
  }
  const fs::path secret = fs::temp_directory_path() / unique_marker("opsagent-c9-secret");
  fs::create_directories(secret);
  const std::string canary = unique_marker("c9-mount-canary");
  write_file(secret / "secret.txt", canary + "\n");
  // The agent runs in its own user + mount namespace; before it starts, the wrapper bind-mounts
  // the secret directory and a tmpfs beneath the allowed root @DIR@/files ($2 is the config).
  AgentSpec spec{kFilePolicy, {}};
  spec.wrapper = {"/usr/bin/unshare",
                  "-rm",
                  "--",
                  "/bin/sh",
                  "-c",
                  "d=$(dirname \"$2\") && mkdir -p \"$d/files/bind\" \"$d/files/tmpfs\" && "
                  "mount --bind " +
                      secret.string() +
                      " \"$d/files/bind\" && "
                      "mount -t tmpfs -o size=64k tmpfs \"$d/files/tmpfs\" && "
                      "echo tmpfs-file > \"$d/files/tmpfs/t.txt\" && exec \"$0\" \"$@\""};
  {
    AgentProcess agent{spec};
    ASSERT_NE(agent.port(), 0) << agent.log();
    write_file(agent.dir() / "files" / "data.txt", "hello opsagent\n");
    auto c = agent.connect("alice");
    const auto ok = c->command("hash sha256 " + (agent.dir() / "files" / "data.txt").string());
    ASSERT_EQ(ok.size(), 1U);
    EXPECT_TRUE(starts_with(ok[0], "OK sha256 ")) << ok[0];
    for (const std::string& rel : Strings{"files/bind/secret.txt", "files/tmpfs/t.txt"}) {
      for (const auto& line : digest_requests((agent.dir() / rel).string())) {
        SCOPED_TRACE(line);
        const Exchange e = ask(agent, *c, line);
        expect_refused(e, "denied", "allow", "roles.files.hash.paths");
        EXPECT_NE(e.reply[0].find("mount point"), std::string::npos) << e.reply[0];
        EXPECT_EQ(e.reply[0].find(hex_digest(canary + "\n", EVP_sha256())), std::string::npos);
        EXPECT_EQ(e.reply[0].find(hex_digest(canary + "\n", EVP_sha1())), std::string::npos);
      }
    }
  }
  fs::remove_all(secret);
}

TEST(MatrixC, C10_ProcAndDevicesAreRefusedEvenWhenThePolicyGrantsThem) {
  const std::string secret = unique_marker("c10-environment-secret");
  AgentProcess agent{AgentSpec{kFilePolicy, {}, "127.0.0.1", {{"OPSAGENT_C10_SECRET", secret}}}};
  const FileTree tree(agent.dir());
  auto c = agent.connect("alice");
  const std::string self = "/proc/" + std::to_string(agent.pid());
  for (const std::string& p :
       Strings{"/proc/self/environ", self + "/environ", self + "/mem", self + "/cmdline",
               self + "/status", self + "/maps", std::string("/proc/version"),
               std::string("/proc/kcore"), std::string("/proc/sys/kernel/hostname"),
               std::string("/dev/zero"), std::string("/dev/urandom"), std::string("/dev/random"),
               std::string("/dev/null"), std::string("/dev/full"), std::string("/dev/tty"),
               std::string("/dev/shm")}) {
    for (const auto& line : digest_requests(p)) {
      SCOPED_TRACE(line);
      // /dev/zero and /dev/urandom never end and /proc/kcore is huge: a refusal, not a digest,
      // shows they were never read.
      const Exchange e = ask(agent, *c, line);
      ASSERT_EQ(e.reply.size(), 1U) << joined(e.reply);
      EXPECT_TRUE(starts_with(e.reply[0], "ERR denied ") ||
                  starts_with(e.reply[0], "ERR notfound "))
          << e.reply[0];
      EXPECT_EQ(e.reply[0].find(secret), std::string::npos);
    }
  }
  // Nothing blocked: the agent still answers.
  EXPECT_EQ(c->command("ping"), std::vector<std::string>{"OK pong"});
}

TEST(MatrixC, C10_FifoSocketAndDirectoryAreRefusedWithoutBlocking) {
  // One pool thread for alice: a FIFO that blocked it would hang or refuse every later file
  // command of hers.
  AgentProcess agent{
      AgentSpec{kFilePolicy, {{"limits", "{hash_threads: 2, max_file_ops_per_identity: 1}"}}}};
  const FileTree tree(agent.dir());
  ASSERT_EQ(::mkfifo(tree.path("files/fifo").c_str(), 0600), 0);
  make_socket(tree.path("files/socket"));
  auto c = agent.connect("alice");
  for (const std::string& rel : Strings{"files/fifo", "files/socket", "files/sub", "files/%2e%2e",
                                        "logs/fifo.log", "logs/socket.log", "logs/dir.log"}) {
    for (const auto& line : digest_requests(tree.path(rel))) {
      SCOPED_TRACE(line);
      // Opening the FIFO without a writer would block the only pool thread for ever, and every
      // later file command behind it: replies here and below show nothing blocked.
      const Exchange e = ask(agent, *c, line);
      expect_refused(e, "denied", "allow", "roles.files.hash.paths");
    }
  }
  const auto ok = c->command("hash sha256 " + tree.path("files/data.txt"));
  ASSERT_EQ(ok.size(), 1U);
  EXPECT_TRUE(starts_with(ok[0], "OK sha256 ")) << ok[0];
}

TEST(MatrixC, C10_TailRefusesDevicesPseudoFilesFifosSocketsAndDirectories) {
  const std::string secret = unique_marker("c10-environment-secret");
  AgentProcess agent{AgentSpec{kFilePolicy,
                               {{"limits", "{hash_threads: 2, max_file_ops_per_identity: 1}"}},
                               "127.0.0.1",
                               {{"OPSAGENT_C10_SECRET", secret}}}};
  const FileTree tree(agent.dir());
  auto c = agent.connect("alice");
  for (const std::string& log : Strings{"environ", "zero", "urandom", "fifo", "socket", "dir"}) {
    SCOPED_TRACE(log);
    // A FIFO, /dev/zero or /dev/urandom would block or never end: a refusal shows neither.
    const Exchange e = ask(agent, *c, "tail " + log + " 5");
    expect_refused(e, "denied", "allow", "roles.files.logs");
    EXPECT_EQ(joined(e.reply).find(secret), std::string::npos) << joined(e.reply);
  }
  EXPECT_EQ(c->command("tail app 1"),
            (std::vector<std::string>{"| syslog line 15", "OK app lines=1"}));
}

// The agent's read offset in its descriptor for `path`, or -1 while it has none open.
long long agent_offset(pid_t agent, const fs::path& path) {
  const std::string proc = "/proc/" + std::to_string(agent);
  std::error_code ec;
  for (const auto& fd : fs::directory_iterator(proc + "/fd", ec)) {
    std::error_code link_ec;
    if (fs::read_symlink(fd.path(), link_ec) != path) continue;
    std::istringstream in(read_text(proc + "/fdinfo/" + fd.path().filename().string()));
    for (std::string key; in >> key;) {
      if (key == "pos:") {
        long long pos = -1;
        in >> pos;
        return pos;
      }
    }
  }
  return -1;
}

// Waits until the agent has read part, not all, of `path`; false when its descriptor closed
// before that was seen (the hash was too quick), or after 5 s.
bool wait_mid_read(pid_t agent, const fs::path& path, long long size) {
  const auto deadline = Clock::now() + 5s;
  bool opened = false;
  while (Clock::now() < deadline) {
    const long long pos = agent_offset(agent, path);
    if (pos > 0 && pos < size) return true;
    if (pos < 0 && opened) return false;
    opened = opened || pos >= 0;
    std::this_thread::sleep_for(100us);
  }
  return false;
}

TEST(MatrixC, C11_SparseFileBeyondTheSizeCapIsRefusedAtOnce) {
  AgentProcess agent{AgentSpec{kFilePolicy, {}}};  // default limits.max_hash_bytes: 16GiB
  fs::create_directories(agent.dir() / "files");
  const fs::path huge = agent.dir() / "files" / "huge.img";
  write_file(huge, "");
  fs::resize_file(huge, std::uintmax_t{64} << 30);  // 64 GiB, sparse
  auto c = agent.connect("alice");
  for (const auto& line : digest_requests(huge.string())) {
    SCOPED_TRACE(line);
    const Exchange e = ask(agent, *c, line);
    expect_refused(e, "limit", "allow", "roles.files.hash.paths");
    // Refused on the file's size, before reading any of it: the message names all 64 GiB.
    EXPECT_NE(e.reply[0].find("max_hash_bytes (68719476736 > 17179869184 bytes)"),
              std::string::npos)
        << e.reply[0];
  }
  agent.wait_for_audit("command_end", "status", "limit");
  EXPECT_EQ(c->command("ping"), std::vector<std::string>{"OK pong"});
}

TEST(MatrixC, C11_FileTruncatedWhileHashedGivesAnErrorNeverACrash) {
  AgentProcess agent{AgentSpec{kFilePolicy, {}}};
  fs::create_directories(agent.dir() / "files");
  const fs::path file = agent.dir() / "files" / "shrinking.img";
  constexpr long long kSize = 256LL << 20;
  auto c = agent.connect("alice");
  int mid_hash = 0;
  for (int attempt = 0; attempt < 5 && mid_hash < 2; ++attempt) {
    SCOPED_TRACE(attempt);
    write_file(file, "");
    fs::resize_file(file, static_cast<std::uintmax_t>(kSize));
    ASSERT_TRUE(c->write("hash sha256 " + file.string() + "\n"));
    const bool caught = wait_mid_read(agent.pid(), file, kSize);
    fs::resize_file(file, attempt % 2 == 0 ? 0 : 4096);
    const auto r = c->read_reply(30s);
    ASSERT_EQ(r.size(), 1U) << joined(r);
    // A digest of the whole file (the hash won the race), or the refusal: never a digest of
    // part of it.
    const bool whole = starts_with(r[0], "OK sha256 ") &&
                       r[0].find(" bytes=" + std::to_string(kSize) + " ") != std::string::npos;
    const bool refused = starts_with(r[0], "ERR failed file changed while it was being hashed");
    EXPECT_TRUE(whole || refused) << r[0];
    if (caught && refused) ++mid_hash;
    ASSERT_TRUE(process_alive(agent.pid()));
    std::printf("C11 truncation attempt %d: %s%s\n", attempt, r[0].c_str(),
                caught ? " (truncated mid-hash)" : "");
  }
  EXPECT_GE(mid_hash, 1) << "never managed to truncate during a hash";
  // Still serving, on the same connection and a new one.
  write_file(agent.dir() / "files" / "data.txt", "hello opsagent\n");
  EXPECT_TRUE(starts_with(c->command("comphash " + (agent.dir() / "files/data.txt").string())[0],
                          "OK sha1 "));
  EXPECT_EQ(agent.connect("alice")->command("ping"), std::vector<std::string>{"OK pong"});
}

TEST(MatrixC, C11_FileGrowingWhileHashedStopsAtTheCap) {
  AgentProcess agent{AgentSpec{kFilePolicy, {{"limits", "{max_hash_bytes: 160MiB}"}}}};
  fs::create_directories(agent.dir() / "files");
  const fs::path file = agent.dir() / "files" / "growing.img";
  constexpr long long kSize = 128LL << 20;
  auto c = agent.connect("alice");
  int capped = 0;
  for (int attempt = 0; attempt < 5 && capped == 0; ++attempt) {
    SCOPED_TRACE(attempt);
    write_file(file, "");
    fs::resize_file(file, static_cast<std::uintmax_t>(kSize));
    ASSERT_TRUE(c->write("hash sha256 " + file.string() + "\n"));
    wait_mid_read(agent.pid(), file, kSize);
    fs::resize_file(file, std::uintmax_t{1} << 30);  // grows past the cap while being read
    const auto r = c->read_reply(30s);
    ASSERT_EQ(r.size(), 1U) << joined(r);
    // Either the hash finished before the file grew, or it stopped at the cap, or it noticed
    // the change at the end.
    const bool complete = starts_with(r[0], "OK sha256 ") &&
                          r[0].find(" bytes=" + std::to_string(kSize) + " ") != std::string::npos;
    const bool limited = starts_with(r[0], "ERR limit file is larger than ");
    const bool changed = starts_with(r[0], "ERR failed file changed while it was being hashed");
    EXPECT_TRUE(complete || limited || changed) << r[0];
    capped += limited ? 1 : 0;
    std::printf("C11 growth attempt %d: %s\n", attempt, r[0].c_str());
    ASSERT_TRUE(process_alive(agent.pid()));
  }
  EXPECT_EQ(capped, 1) << "the growing file was never caught by the cap";
  EXPECT_EQ(c->command("ping"), std::vector<std::string>{"OK pong"});
}

}  // namespace
}  // namespace opsagent::testing
