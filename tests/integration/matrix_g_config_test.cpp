// SECURITY-MATRIX group G (configuration and policy): rows G1, G2, G3, G4 and G6, against the
// real agent binary. Tests are named after their rows. (G5 is in matrix_bceg_test.cpp.)

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <netinet/in.h>
#include <regex>
#include <signal.h>
#include <spawn.h>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "tests/integration/test_policy.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/sanitizer.hpp"

extern char** environ;

namespace opsagent::testing {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Json = nlohmann::json;

constexpr int kExitConfig = 78;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// Shadow memory (and ASan's redzones) make the same parse several times larger: under TSan the
// 400k-node document peaked 71 MiB above a good run, over the unscaled 32 MiB budget.
constexpr long kSanitizerMemoryFactor = 4;
#else
constexpr long kSanitizerMemoryFactor = 1;
#endif
constexpr uid_t kNobody = 65534;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes a fresh file (any previous one, whatever its owner, is removed first) with `mode`.
void write_file(const fs::path& p, const std::string& text, mode_t mode = 0644) {
  std::error_code ec;
  fs::remove(p, ec);
  {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
  }
  ASSERT_EQ(::chmod(p.c_str(), mode), 0) << p;
}

std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

std::string regex_escape(const std::string& s) {
  static const std::regex kSpecial(R"([.^$|()\[\]{}*+?\\])");
  return std::regex_replace(s, kSpecial, R"(\$&)");
}

// A loopback port that was free a moment ago.
std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// True when a socket in LISTEN state has local port `port` (IPv4 or IPv6, any address).
bool port_listening(std::uint16_t port) {
  char hex[8];
  std::snprintf(hex, sizeof hex, ":%04X", static_cast<unsigned>(port));
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot;
      std::string local;
      std::string remote;
      std::string state;
      fields >> slot >> local >> remote >> state;
      if (state == "0A" && local.size() > 5 && local.compare(local.size() - 5, 5, hex) == 0) {
        return true;
      }
    }
  }
  return false;
}

// One run of the agent binary to completion, with what it cost.
struct AgentRun {
  int exit_code = -1;  ///< -1: killed by a signal or by the timeout
  int signal = 0;
  bool timed_out = false;
  std::string output;  ///< stdout + stderr
  std::chrono::milliseconds elapsed{0};
  double cpu_seconds = 0;  ///< user + system time of the agent
  long max_rss_kib = 0;    ///< the agent's peak resident set size (VmHWM at exit)
  bool listened = false;   ///< a listener on `watch_port` was seen while it ran
};

// GNU time reports its child's rusage. The agent is measured through it because the rusage
// wait4() returns for a process we spawn ourselves is polluted: posix_spawn shares our address
// space until exec, and the kernel folds the peak RSS of the address space left behind at exec
// into the new program's ru_maxrss, so it would report this test process's own peak.
constexpr const char* kGnuTime = "/usr/bin/time";

AgentRun run_agent(const std::vector<std::string>& args, const fs::path& log,
                   std::uint16_t watch_port = 0, std::chrono::milliseconds timeout = 20s) {
  const fs::path usage_file = log.string() + ".rusage";
  const bool measured = ::access(kGnuTime, X_OK) == 0;
  std::vector<std::string> full;
  if (measured) full = {kGnuTime, "-f", "%M %U %S", "-o", usage_file.string()};
  full.emplace_back(OPSAGENT_BINARY);
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : full) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);  // own group: a timeout kills both
  posix_spawnattr_setpgroup(&attr, 0);
  AgentRun r;
  pid_t pid = -1;
  const auto started = std::chrono::steady_clock::now();
  const int rc = ::posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    ADD_FAILURE() << "cannot start " << argv[0];
    return r;
  }
  const auto deadline = started + timeout;
  int status = 0;
  rusage usage{};
  while (true) {
    const pid_t done = ::wait4(pid, &status, WNOHANG, &usage);
    if (done == pid) break;
    if (watch_port != 0 && port_listening(watch_port)) r.listened = true;
    if (std::chrono::steady_clock::now() > deadline) {
      r.timed_out = true;
      ::kill(-pid, SIGKILL);
      ::wait4(pid, &status, 0, &usage);
      break;
    }
    std::this_thread::sleep_for(1ms);
  }
  r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  if (measured) {
    // GNU time exits with the command's status, or 128 + the signal that killed it; its last
    // line is our format (a line before it may say "Command exited with non-zero status").
    if (r.exit_code > 128) {
      r.signal = r.exit_code - 128;
      r.exit_code = -1;
    }
    std::istringstream in(read_all(usage_file));
    std::string line;
    std::string last;
    while (std::getline(in, line)) {
      if (!line.empty()) last = line;
    }
    std::istringstream fields(last);
    double user = 0;
    double system = 0;
    fields >> r.max_rss_kib >> user >> system;
    r.cpu_seconds = user + system;
    std::error_code ec;
    fs::remove(usage_file, ec);
  } else {
    // Without GNU time: CPU times are exact, the peak RSS is an upper bound (see above).
    r.max_rss_kib = usage.ru_maxrss;
    r.cpu_seconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                    static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  }
  r.output = read_all(log);
  return r;
}

const std::string kValidPolicy =
    "identities:\n"                   // 1
    "  - match: {cn: alice}\n"        // 2
    "    principal: alice\n"          // 3
    "    roles: [operator]\n"         // 4
    "roles:\n"                        // 5
    "  operator:\n"                   // 6
    "    commands: [ping, run]\n"     // 7
    "    run: [up]\n"                 // 8
    "commands:\n"                     // 9
    "  up:\n"                         // 10
    "    argv: [/usr/bin/uptime]\n";  // 11

// A directory with a valid agent.yaml (4 lines, listening on a fixed port), a valid policy, and
// a private copy of the server key (mode 0600) so tests may change its mode.
class ConfigDir {
 public:
  ConfigDir() {
    char tmpl[] = "/tmp/opsagent-g-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    const TestPki& pki = TestPki::get();
    fs::copy_file(pki.key("server"), key(), fs::copy_options::overwrite_existing);
    ::chmod(key().c_str(), 0600);
    port_ = free_port();
    write_file(policy(), kValidPolicy);
    write_file(config(), base_config());
  }
  ~ConfigDir() {
    if (!::testing::Test::HasFailure()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    } else {
      std::fprintf(stderr, "files kept in %s\n", dir_.c_str());
    }
  }
  ConfigDir(const ConfigDir&) = delete;
  ConfigDir& operator=(const ConfigDir&) = delete;

  [[nodiscard]] const fs::path& dir() const { return dir_; }
  [[nodiscard]] fs::path config() const { return dir_ / "agent.yaml"; }
  [[nodiscard]] fs::path policy() const { return dir_ / "policy.yaml"; }
  [[nodiscard]] fs::path key() const { return dir_ / "server.key"; }
  [[nodiscard]] fs::path audit() const { return dir_ / "audit.jsonl"; }
  [[nodiscard]] std::uint16_t port() const { return port_; }

  [[nodiscard]] std::string base_config() const {
    const TestPki& pki = TestPki::get();
    return "listen: [\"127.0.0.1:" + std::to_string(port_) + "\"]\n" +  // 1
           "tls: {certificate: " + pki.cert("server").string() +        // 2
           ", private_key: " + key().string() + ", client_ca: " + pki.ca().string() + "}\n" +
           "audit: {path: " + audit().string() + "}\n" +  // 3
           "policy: " + policy().string() + "\n";         // 4
  }

  // Starts the agent (or checks, with --check-config) with the files as they are now.
  AgentRun start(bool check_only = false, std::chrono::milliseconds timeout = 20s) const {
    std::vector<std::string> args = {"--config", config().string()};
    if (check_only) args.emplace_back("--check-config");
    return run_agent(args, dir_ / "out.log", port_, timeout);
  }

 private:
  fs::path dir_;
  std::uint16_t port_ = 0;
};

// The agent refused to start: configuration exit code, the message, and no side effects.
void expect_refused(const AgentRun& r, const ConfigDir& d, const std::string& what) {
  EXPECT_EQ(r.exit_code, kExitConfig) << what << "\n" << r.output;
  EXPECT_EQ(r.signal, 0) << what;
  EXPECT_FALSE(r.timed_out) << what;
  EXPECT_FALSE(r.listened) << what << ": a listener was opened";
  EXPECT_FALSE(port_listening(d.port())) << what;
  EXPECT_EQ(r.output.find("listening on"), std::string::npos) << what << "\n" << r.output;
  EXPECT_FALSE(fs::exists(d.audit())) << what << ": the audit log was created";
  EXPECT_NE(r.output.find("configuration error"), std::string::npos) << what << "\n" << r.output;
  EXPECT_EQ(r.output.find("terminate called"), std::string::npos) << what << "\n" << r.output;
}

// ----------------------------------------------------------------------------------------------
// G1: malformed YAML at start-up.

struct Malformed {
  std::string name;
  std::string text;
  std::string problem;  // what the message must say
};

std::vector<Malformed> malformed_variants(const std::string& valid_text,
                                          const std::string& empty_problem) {
  const std::string binary(
      "\x7f"
      "ELF\x02\x01\x01\x00\x00\x00\xff\xfe\x1b[31m\x00\x01",
      17);
  std::string tabbed = valid_text;
  tabbed.replace(tabbed.find('\n') + 1, 0, "extra:\n\t- tabbed\n");  // a tab-indented item
  std::string unclosed = valid_text;
  unclosed += "note: \"this quote is never closed\n";
  std::string tagged = valid_text;
  tagged.insert(tagged.find(": ") + 2, "!2 ");  // first key's value gets an explicit tag
  return {{"tab in indentation", tabbed, "tab character in indentation"},
          {"unclosed quote", unclosed, "unclosed quoted string"},
          {"explicit tag !2", tagged, "explicit tags are not allowed (found '!2')"},
          {"binary junk", binary, "control character in file"},
          {"binary junk after valid lines", valid_text + binary, "control character in file"},
          {"empty file", "", empty_problem}};
}

TEST(MatrixG, G1_MalformedConfigAtStartupExitsWithPositionAndOpensNoListener) {
  ConfigDir d;
  const std::regex located(regex_escape(d.config().string()) + R"(:\d+:\d+: )");
  for (const auto& m : malformed_variants(d.base_config(), "missing required key 'listen'")) {
    write_file(d.config(), m.text);
    const AgentRun r = d.start();
    expect_refused(r, d, "agent.yaml, " + m.name);
    EXPECT_TRUE(std::regex_search(r.output, located)) << m.name << ": no FILE:LINE:COLUMN in\n"
                                                      << r.output;
    EXPECT_NE(r.output.find(m.problem), std::string::npos) << m.name << "\n" << r.output;
  }
}

TEST(MatrixG, G1_MalformedPolicyAtStartupExitsWithPositionAndOpensNoListener) {
  ConfigDir d;
  const std::regex located(regex_escape(d.policy().string()) + R"(:\d+:\d+: )");
  for (const auto& m : malformed_variants(kValidPolicy, "the policy is empty")) {
    write_file(d.policy(), m.text);
    const AgentRun r = d.start();
    expect_refused(r, d, "policy.yaml, " + m.name);
    EXPECT_TRUE(std::regex_search(r.output, located)) << m.name << ": no FILE:LINE:COLUMN in\n"
                                                      << r.output;
    EXPECT_NE(r.output.find(m.problem), std::string::npos) << m.name << "\n" << r.output;
  }
}

// ----------------------------------------------------------------------------------------------
// G2: invalid policy on reload.

void replace_policy(const AgentProcess& agent, const std::string& text) {
  const fs::path tmp = agent.dir() / "policy.yaml.new";
  { std::ofstream(tmp, std::ios::binary | std::ios::trunc) << text; }
  ::chmod(tmp.c_str(), 0644);
  fs::rename(tmp, agent.dir() / "policy.yaml");
}

std::string substitute(std::string text, const AgentProcess& agent) {
  text = std::regex_replace(text, std::regex("@DIR@"), agent.dir().string());
  return std::regex_replace(text, std::regex("@HELPERS@"), std::string(OPSAGENT_HELPER_DIR));
}

// Waits until the audit holds `n` records of `event`; returns the n-th.
Json wait_for_nth(const AgentProcess& agent, const std::string& event, std::size_t n,
                  std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    std::size_t seen = 0;
    for (const auto& r : agent.audit()) {
      if (r.value("event", "") == event && ++seen == n) return r;
    }
    std::this_thread::sleep_for(10ms);
  } while (std::chrono::steady_clock::now() < deadline);
  ADD_FAILURE() << "no " << n << "th audit record " << event;
  return nullptr;
}

std::size_t count_events(const AgentProcess& agent, const std::string& event) {
  std::size_t n = 0;
  for (const auto& r : agent.audit()) n += r.value("event", "") == event ? 1 : 0;
  return n;
}

// kTestPolicy without the reader's `tail` grant: what a reload is trying to take away.
std::string stricter_policy(const AgentProcess& agent) {
  std::string stricter = kTestPolicy;
  const std::string grant = "commands: [ping, whoami, tail]\n    deny: [run]\n    logs: [app]\n";
  stricter.replace(stricter.find(grant), grant.size(),
                   "commands: [ping, whoami]\n    deny: [run]\n");
  return substitute(stricter, agent);
}

TEST(MatrixG, G2_InvalidPolicyOnReloadKeepsTheOldOneAndRecordsTheRejectedFilesHash) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  ASSERT_NE(agent.port(), 0);
  auto reader = agent.connect("ci-bot");
  ASSERT_EQ(reader->command("tail app 1")[0], "| syslog line 15");
  const std::string old_version = agent.wait_for_audit("agent_start")["policy_version"];
  const std::string stricter = stricter_policy(agent);

  struct Invalid {
    std::string name;
    std::string text;
  };
  std::string unclosed = stricter;
  unclosed.replace(unclosed.find("commands: [ping, whoami]"), 24, "commands: [ping, whoami");
  std::string unknown_key = stricter;
  unknown_key.replace(unknown_key.find("    deny: [run]\n"), 0, "    alow: [tail]\n");
  std::string undefined_role = stricter;
  undefined_role.replace(undefined_role.find("roles: [reader]"), 15, "roles: [reader, auditor]");
  const std::vector<Invalid> invalid = {
      {"malformed YAML", unclosed},
      {"unknown key", unknown_key},
      {"undefined role", undefined_role},
      {"duplicate key", stricter + "tail: {max_lines: 5}\ntail: {max_lines: 6}\n"},
  };
  const std::regex located(regex_escape((agent.dir() / "policy.yaml").string()) + R"(:\d+:\d+: )");
  std::size_t failures = 0;
  for (const auto& bad : invalid) {
    replace_policy(agent, bad.text);
    agent.signal(SIGHUP);
    const Json failed = wait_for_nth(agent, "policy_reload_failed", ++failures);
    ASSERT_FALSE(failed.is_null()) << bad.name;
    EXPECT_EQ(failed["policy"], (agent.dir() / "policy.yaml").string());
    EXPECT_EQ(failed["policy_version"], old_version) << bad.name;
    EXPECT_EQ(failed.value("rejected_sha256", ""), sha256_hex(bad.text))
        << bad.name << ": the record must identify the rejected file\n"
        << failed.dump();
    EXPECT_TRUE(std::regex_search(failed.value("error", ""), located)) << failed.dump();
    wait_for_nth(agent, "tls_reload", failures);  // the reload has run to its end

    // The old policy is still in force, for the open session and for a new one.
    EXPECT_EQ(reader->command("tail app 1")[0], "| syslog line 15") << bad.name;
    auto fresh = agent.connect("ci-bot");
    EXPECT_EQ(fresh->command("tail app 1")[0], "| syslog line 15") << bad.name;
  }
  EXPECT_EQ(count_events(agent, "policy_reload"), 0U);
  for (const auto& r : agent.audit()) {
    if (r["event"] == "auth_ok" || r["event"] == "command") {
      EXPECT_EQ(r["policy_version"], old_version);
    }
  }
  EXPECT_NE(agent.log().find("policy reload failed"), std::string::npos) << agent.log();

  // The next valid reload succeeds, and decisions follow it at once.
  replace_policy(agent, stricter);
  agent.signal(SIGHUP);
  const Json reloaded = wait_for_nth(agent, "policy_reload", 1);
  ASSERT_FALSE(reloaded.is_null());
  EXPECT_EQ(reloaded["old_version"], old_version);
  EXPECT_EQ(reloaded["policy_version"], sha256_hex(stricter).substr(0, 16));
  const auto denied = reader->command("tail app 1");
  ASSERT_EQ(denied.size(), 1U);
  EXPECT_EQ(denied[0].rfind("ERR denied", 0), 0U) << denied[0];
  EXPECT_EQ(reader->command("ping"), std::vector<std::string>{"OK pong"});
}

// ----------------------------------------------------------------------------------------------
// G3: duplicate keys, unknown keys, wrong types, out-of-range numbers.

struct BadKey {
  std::string name;
  std::string text;      // the whole file
  std::string key_path;  // the YAML path the message must name
  int line;              // where the offending key or value is
};

// Fragments appended to the valid 4-line agent.yaml (so they start on line 5).
std::vector<BadKey> bad_config_keys(const std::string& base) {
  return {
      {"duplicate key", base + "limits:\n  max_clients: 4\n  max_clients: 5\n",
       "limits.max_clients", 7},
      {"duplicate top-level key", base + "audit: {path: /tmp/x}\n", "audit", 5},
      {"unknown key", base + "alow: true\n", "alow", 5},
      {"misspelt nested key", base + "limits:\n  max_clinets: 5\n", "limits.max_clinets", 6},
      {"YAML 1.1 boolean yes", base + "lastlog:\n  journal_fallback: yes\n",
       "lastlog.journal_fallback", 6},
      {"YAML 1.1 boolean no", base + "lastlog: {journal_fallback: no}\n",
       "lastlog.journal_fallback", 5},
      {"YAML 1.1 boolean on", base + "lastlog: {journal_fallback: on}\n",
       "lastlog.journal_fallback", 5},
      {"YAML 1.1 boolean Off", base + "lastlog: {journal_fallback: Off}\n",
       "lastlog.journal_fallback", 5},
      {"quoted boolean", base + "lastlog: {journal_fallback: \"true\"}\n",
       "lastlog.journal_fallback", 5},
      {"quoted number", base + "limits: {max_clients: \"10\"}\n", "limits.max_clients", 5},
      {"quoted duration", base + "timeouts:\n  idle: \"10\"\n", "timeouts.idle", 6},
      {"duration without unit", base + "timeouts: {idle: 10}\n", "timeouts.idle", 5},
      {"number below range", base + "limits: {max_clients: 0}\n", "limits.max_clients", 5},
      {"number above range", base + "limits: {max_clients: 100001}\n", "limits.max_clients", 5},
      {"number overflowing 64 bits", base + "limits: {max_clients: 99999999999999999999999}\n",
       "limits.max_clients", 5},
      {"negative number", base + "lastlog: {lines: -1}\n", "lastlog.lines", 5},
      {"size above range", base + "limits: {max_line_bytes: 2MiB}\n", "limits.max_line_bytes", 5},
      {"duration above range", base + "timeouts: {handshake: 6m}\n", "timeouts.handshake", 5},
      {"hex number", base + "limits: {io_threads: 0x10}\n", "limits.io_threads", 5},
      {"list instead of map", base + "limits: [1, 2]\n", "limits", 5},
      {"map instead of string", base + "logging: {level: {x: 1}}\n", "logging.level", 5},
  };
}

std::vector<BadKey> bad_policy_keys() {
  const std::string& p = kValidPolicy;
  const auto after_line = [&p](int line, const std::string& insert) {
    std::size_t pos = 0;
    for (int i = 0; i < line; ++i) pos = p.find('\n', pos) + 1;
    return p.substr(0, pos) + insert + p.substr(pos);
  };
  return {
      {"duplicate key", after_line(7, "    commands: [ping]\n"), "roles.operator.commands", 8},
      {"duplicate top-level key", p + "roles: {}\n", "roles", 12},
      {"duplicate role", after_line(8, "  operator: {}\n"), "roles.operator", 9},
      {"unknown key alow", after_line(7, "    alow: [ping]\n"), "roles.operator.alow", 8},
      {"allow: yes", after_line(7, "    allow: yes\n"), "roles.operator.allow", 8},
      {"unknown match field",
       after_line(1, "  - match: {cm: bob}\n    principal: bob\n    roles: []\n"),
       "identities[0].match.cm", 2},
      {"YAML 1.1 boolean yes", p + "    end_of_options: yes\n", "commands.up.end_of_options", 12},
      {"YAML 1.1 boolean no", p + "    end_of_options: no\n", "commands.up.end_of_options", 12},
      {"YAML 1.1 boolean on", p + "    args: [{name: x, pattern: 'a', optional: on}]\n",
       "commands.up.args[0].optional", 12},
      {"quoted duration", p + "    timeout: \"10\"\n", "commands.up.timeout", 12},
      {"duration without unit", p + "    timeout: 10\n", "commands.up.timeout", 12},
      {"duration above range", p + "    timeout: 25h\n", "commands.up.timeout", 12},
      {"duration below range", p + "    timeout: 0ms\n", "commands.up.timeout", 12},
      {"size above range", p + "    max_output: 2GiB\n", "commands.up.max_output", 12},
      {"quoted number", p + "tail: {max_lines: \"10\"}\n", "tail.max_lines", 12},
      {"number below range", p + "tail: {max_lines: 0}\n", "tail.max_lines", 12},
      {"number above range", p + "tail: {max_lines: 1000001}\n", "tail.max_lines", 12},
      {"map instead of list", "identities: {cn: alice}\n", "identities", 1},
      {"list instead of string",
       std::regex_replace(p, std::regex("principal: alice"), "principal: [alice]"),
       "identities[0].principal", 3},
  };
}

void expect_key_rejected(const AgentRun& r, const ConfigDir& d, const fs::path& file,
                         const BadKey& bad) {
  expect_refused(r, d, file.filename().string() + ", " + bad.name);
  const std::regex located(regex_escape(file.string()) + ":" + std::to_string(bad.line) +
                           R"(:\d+: )" + regex_escape(bad.key_path) + ": ");
  EXPECT_TRUE(std::regex_search(r.output, located))
      << bad.name << ": expected " << file.filename() << ":" << bad.line << ":COL: " << bad.key_path
      << ": ... in\n"
      << r.output;
}

TEST(MatrixG, G3_DuplicateUnknownAndMistypedConfigKeysNameTheirYamlPath) {
  ConfigDir d;
  for (const auto& bad : bad_config_keys(d.base_config())) {
    write_file(d.config(), bad.text);
    expect_key_rejected(d.start(), d, d.config(), bad);
    const AgentRun check = d.start(/*check_only=*/true);
    EXPECT_EQ(check.exit_code, kExitConfig) << bad.name << ": --check-config\n" << check.output;
  }
}

TEST(MatrixG, G3_DuplicateUnknownAndMistypedPolicyKeysNameTheirYamlPath) {
  ConfigDir d;
  for (const auto& bad : bad_policy_keys()) {
    write_file(d.policy(), bad.text);
    expect_key_rejected(d.start(), d, d.policy(), bad);
  }
}

// ----------------------------------------------------------------------------------------------
// G4: hostile YAML: bounded time and memory, a clean error.

struct Hostile {
  std::string name;
  std::string text;       // written as is, unless `bytes` is set
  std::size_t bytes = 0;  // generate a file of this size (YAML list items) instead
  std::string expect;     // a word the message must contain
};

std::vector<Hostile> hostile_variants(const std::string& prefix, const std::string& key) {
  std::string bomb = prefix;
  bomb += "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n";
  for (char c = 'b'; c <= 'j'; ++c) {
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 9; ++i) bomb += std::string(i ? "," : "") + "*" + static_cast<char>(c - 1);
    bomb += "]\n";
  }
  std::string block_deep = prefix;
  for (int i = 0; i < 1000; ++i)
    block_deep += std::string(static_cast<std::size_t>(i), ' ') + "k:\n";
  std::string many_nodes = prefix + key + ": [";
  for (int i = 0; i < 400000; ++i) many_nodes += "0,";
  many_nodes += "0]\n";
  return {
      {"10k-deep flow sequences",
       prefix + key + ": " + std::string(10000, '[') + std::string(10000, ']') + "\n", 0,
       "nesting"},
      {"10k-deep flow maps",
       [&] {
         std::string s = prefix + key + ": ";
         for (int i = 0; i < 10000; ++i) s += "{a: ";
         return s + "1" + std::string(10000, '}') + "\n";
       }(),
       0, "nesting"},
      {"1000-deep block maps", block_deep, 0, "nesting"},
      {"billion laughs (anchors and aliases)", bomb, 0, "anchor"},
      {"400k nodes", many_nodes, 0, "nodes"},
      {"5 MB scalar", prefix + key + ": " + std::string(5U << 20, 'a') + "\n", 0, "larger than"},
      {"100 MB file", "", 100U << 20, "larger than"},
  };
}

void write_big_file(const fs::path& p, std::size_t bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  const std::string chunk = [] {
    std::string s;
    while (s.size() < (1U << 20)) s += "- item item item item item item item\n";
    return s;
  }();
  for (std::size_t written = 0; written < bytes; written += chunk.size()) out << chunk;
}

void check_hostile(const std::string& which) {
  ConfigDir d;
  // The cost of a good run, for reference: --check-config on the valid files.
  const AgentRun baseline = d.start(/*check_only=*/true);
  ASSERT_EQ(baseline.exit_code, 0) << baseline.output;
  const long budget_kib = baseline.max_rss_kib + 32 * 1024 * kSanitizerMemoryFactor;
  const bool config = which == "config";
  const fs::path file = config ? d.config() : d.policy();
  const std::string prefix = config ? d.base_config() : kValidPolicy;
  auto variants = hostile_variants(prefix, "extra");
  // A huge scalar just under the size limit where a short name is expected.
  variants.push_back(config
                         ? Hostile{"1 MB scalar as a path",
                                   prefix.substr(0, prefix.find("policy: ")) + "policy: /" +
                                       std::string(1000000, 'p') + "\n",
                                   0, "policy"}
                         : Hostile{"1 MB scalar as a name",
                                   std::regex_replace(kValidPolicy, std::regex("principal: alice"),
                                                      "principal: " + std::string(1000000, 'n')),
                                   0, "principal"});
  for (const auto& h : variants) {
    if (h.bytes != 0) {
      write_big_file(file, h.bytes);
    } else {
      write_file(file, h.text);
    }
    const AgentRun r = d.start(false, scaled(10s) + 10s);
    expect_refused(r, d, which + ", " + h.name);
    // CPU time is the bound (a loaded machine stretches wall-clock time, not work done); the
    // wall-clock bound only catches a hang.
    EXPECT_LT(r.cpu_seconds, scaled_seconds(5.0)) << h.name;
    EXPECT_LT(r.elapsed, scaled(10s)) << h.name;
    EXPECT_LT(r.max_rss_kib, budget_kib) << h.name << ": peak RSS " << r.max_rss_kib
                                         << " KiB; a good run peaks at " << baseline.max_rss_kib;
    EXPECT_NE(r.output.find(file.string()), std::string::npos) << h.name << "\n" << r.output;
    EXPECT_NE(r.output.find(h.expect), std::string::npos) << h.name << "\n"
                                                          << r.output.substr(0, 2000);
    // One bounded line (ConfigError cuts messages at 2 KiB), not the hostile input echoed back.
    EXPECT_LT(r.output.size(), 4096U) << h.name << ": the error echoes the hostile input";
    std::cout << "[ G4 ] " << which << ", " << h.name << ": " << r.elapsed.count() << " ms ("
              << r.cpu_seconds << " s CPU), " << r.max_rss_kib << " KiB peak (good run "
              << baseline.max_rss_kib << " KiB)\n";
    std::error_code ec;
    fs::remove(file, ec);  // do not keep 100 MB around
  }
}

TEST(MatrixG, G4_HostileConfigYamlIsRejectedInBoundedTimeAndMemory) { check_hostile("config"); }
TEST(MatrixG, G4_HostilePolicyYamlIsRejectedInBoundedTimeAndMemory) { check_hostile("policy"); }

// ----------------------------------------------------------------------------------------------
// G6: unsafe files; --check-config.

TEST(MatrixG, G6_UnsafePolicyOrConfigFileIsRefusedAtStartAndByCheckConfig) {
  ConfigDir d;
  struct Case {
    std::string name;
    fs::path file;
    mode_t mode;
    uid_t owner;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"world-writable policy", d.policy(), 0666, 0, "mode 0666"},
      {"group-writable policy", d.policy(), 0620, 0, "mode 0620"},
      {"policy owned by nobody", d.policy(), 0644, kNobody, "owned by uid 65534"},
      {"world-writable agent.yaml", d.config(), 0646, 0, "mode 0646"},
      {"agent.yaml owned by nobody", d.config(), 0644, kNobody, "owned by uid 65534"},
  };
  for (const auto& c : cases) {
    if (c.owner != 0 && ::geteuid() != 0) {
      std::cout << "[ G6 ] skipping '" << c.name << "': needs root to chown\n";
      continue;
    }
    write_file(d.policy(), kValidPolicy);
    write_file(d.config(), d.base_config());
    ASSERT_EQ(::chmod(c.file.c_str(), c.mode), 0);
    if (c.owner != 0) {
      ASSERT_EQ(::chown(c.file.c_str(), c.owner, c.owner), 0);
    }
    const AgentRun r = d.start();
    expect_refused(r, d, c.name);
    EXPECT_NE(r.output.find(c.file.string()), std::string::npos) << c.name << "\n" << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.name << "\n" << r.output;
    const AgentRun check = d.start(/*check_only=*/true);
    expect_refused(check, d, c.name + " (--check-config)");
    EXPECT_EQ(check.output.find("configuration OK"), std::string::npos) << check.output;
  }
}

TEST(MatrixG, G6_PrivateKeyWiderThan0600IsRefusedAtStart) {
  ConfigDir d;
  for (const mode_t mode : {0640, 0604, 0644, 0660, 0610, 0602}) {
    ASSERT_EQ(::chmod(d.key().c_str(), mode), 0);
    const AgentRun r = d.start();
    char shown[8];
    std::snprintf(shown, sizeof shown, "%04o", static_cast<unsigned>(mode));
    expect_refused(r, d, std::string("key mode ") + shown);
    EXPECT_NE(r.output.find("tls.private_key"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(shown), std::string::npos) << r.output;
    EXPECT_NE(d.start(/*check_only=*/true).exit_code, 0) << shown;
  }
}

TEST(MatrixG, G6_CheckConfigValidatesAndExitsWithoutListening) {
  ConfigDir d;
  for (const mode_t mode : {0600, 0400}) {
    ASSERT_EQ(::chmod(d.key().c_str(), mode), 0);
    const AgentRun r = d.start(/*check_only=*/true);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("configuration OK"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(sha256_hex(kValidPolicy).substr(0, 16)), std::string::npos)
        << "the check names the policy version\n"
        << r.output;
    EXPECT_FALSE(r.listened) << "--check-config opened a listener";
    EXPECT_FALSE(fs::exists(d.audit())) << "--check-config created the audit log";
  }
  // Bad: a policy error and a config error each fail the check with the position.
  write_file(d.policy(), kValidPolicy + "bogus: 1\n");
  AgentRun r = d.start(/*check_only=*/true);
  expect_refused(r, d, "--check-config, bad policy");
  EXPECT_NE(r.output.find(d.policy().string() + ":12:1: bogus: "), std::string::npos) << r.output;
  write_file(d.policy(), kValidPolicy);
  write_file(d.config(), d.base_config() + "limits: {max_clients: 0}\n");
  r = d.start(/*check_only=*/true);
  expect_refused(r, d, "--check-config, bad config");
  EXPECT_NE(r.output.find(d.config().string() + ":5:"), std::string::npos) << r.output;
}

// A running agent re-checks its files on SIGHUP: an unsafe policy is refused like at start-up
// and the old policy stays in force.
TEST(MatrixG, G6_UnsafePolicyOnReloadIsRefusedAndTheOldPolicyStays) {
  AgentProcess agent{AgentSpec{kTestPolicy, {}}};
  ASSERT_NE(agent.port(), 0);
  auto reader = agent.connect("ci-bot");
  ASSERT_EQ(reader->command("tail app 1")[0], "| syslog line 15");
  const std::string old_version = agent.wait_for_audit("agent_start")["policy_version"];
  const fs::path policy = agent.dir() / "policy.yaml";
  const std::string stricter = stricter_policy(agent);

  struct Case {
    std::string name;
    mode_t mode;
    uid_t owner;
    std::string expect;
  };
  std::vector<Case> cases = {{"world-writable", 0666, 0, "mode 0666"},
                             {"group-writable", 0664, 0, "mode 0664"}};
  if (::geteuid() == 0) cases.push_back({"owned by nobody", 0644, kNobody, "owned by uid 65534"});
  std::size_t failures = 0;
  for (const auto& c : cases) {
    const fs::path tmp = agent.dir() / "policy.yaml.new";
    { std::ofstream(tmp, std::ios::binary | std::ios::trunc) << stricter; }
    ASSERT_EQ(::chmod(tmp.c_str(), c.mode), 0);
    if (c.owner != 0) {
      ASSERT_EQ(::chown(tmp.c_str(), c.owner, c.owner), 0);
    }
    fs::rename(tmp, policy);
    agent.signal(SIGHUP);
    const Json failed = wait_for_nth(agent, "policy_reload_failed", ++failures);
    ASSERT_FALSE(failed.is_null()) << c.name;
    EXPECT_EQ(failed["policy_version"], old_version);
    EXPECT_NE(failed.value("error", "").find(c.expect), std::string::npos) << failed.dump();
    EXPECT_EQ(failed.value("rejected_sha256", ""), sha256_hex(stricter)) << failed.dump();
    wait_for_nth(agent, "tls_reload", failures);
    EXPECT_EQ(reader->command("tail app 1")[0], "| syslog line 15") << c.name;
  }
  EXPECT_EQ(count_events(agent, "policy_reload"), 0U);
  // The same text, safely owned and moded, is accepted.
  ASSERT_EQ(::chown(policy.c_str(), ::geteuid(), ::getegid()), 0);
  ASSERT_EQ(::chmod(policy.c_str(), 0644), 0);
  agent.signal(SIGHUP);
  const Json reloaded = wait_for_nth(agent, "policy_reload", 1);
  ASSERT_FALSE(reloaded.is_null());
  EXPECT_EQ(reloaded["old_version"], old_version);
  EXPECT_EQ(reader->command("tail app 1")[0].rfind("ERR denied", 0), 0U);
}

TEST(MatrixG, G6_PrivateKeyWiderThan0600OnReloadIsRefusedAndTheOldContextStays) {
  // A private copy of the server key: the shared test PKI must not change under other tests.
  char tmpl[] = "/tmp/opsagent-g6key-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path key_dir = tmpl;
  const fs::path key = key_dir / "server.key";
  const TestPki& pki = TestPki::get();
  fs::copy_file(pki.key("server"), key);
  ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
  AgentSpec spec{kTestPolicy, {}};
  spec.sections["tls"] = "{certificate: " + pki.cert("server").string() +
                         ", private_key: " + key.string() + ", client_ca: " + pki.ca().string() +
                         "}";
  {
    AgentProcess agent{spec};
    ASSERT_NE(agent.port(), 0);
    std::size_t tls_failures = 0;
    for (const mode_t mode : {0644, 0640, 0604}) {
      ASSERT_EQ(::chmod(key.c_str(), mode), 0);
      agent.signal(SIGHUP);
      const Json failed = wait_for_nth(agent, "tls_reload_failed", ++tls_failures);
      ASSERT_FALSE(failed.is_null()) << std::oct << mode;
      EXPECT_NE(failed.value("error", "").find(key.string()), std::string::npos) << failed.dump();
      EXPECT_NE(failed.value("error", "").find("group or others"), std::string::npos)
          << failed.dump();
      // The old context stays: new connections are still served.
      auto c = agent.connect("alice");
      EXPECT_EQ(c->command("ping"), std::vector<std::string>{"OK pong"});
    }
    EXPECT_EQ(count_events(agent, "tls_reload"), 0U);
    ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
    agent.signal(SIGHUP);
    EXPECT_FALSE(wait_for_nth(agent, "tls_reload", 1).is_null());
    EXPECT_EQ(agent.connect("alice")->command("ping"), std::vector<std::string>{"OK pong"});
  }
  std::error_code ec;
  fs::remove_all(key_dir, ec);
}

}  // namespace
}  // namespace opsagent::testing
