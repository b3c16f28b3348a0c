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

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, const std::string& text, mode_t mode = 0644) {
  { std::ofstream(p, std::ios::binary | std::ios::trunc) << text; }
  ASSERT_EQ(::chmod(p.c_str(), mode), 0) << p;
}

fs::path make_temp_dir(const std::string& prefix) {
  std::string tmpl = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
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

// ---- I10: YAML escapes that decode to control characters ----

// A directory with a valid agent.yaml and policy that the agent accepts (--check-config).
class ConfigFiles {
 public:
  ConfigFiles() : dir_(make_temp_dir("opsagent-i")) {}
  ~ConfigFiles() {
    if (!::testing::Test::HasFailure()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    } else {
      std::fprintf(stderr, "files kept in %s\n", dir_.c_str());
    }
  }
  ConfigFiles(const ConfigFiles&) = delete;
  ConfigFiles& operator=(const ConfigFiles&) = delete;

  [[nodiscard]] const fs::path& dir() const { return dir_; }
  [[nodiscard]] fs::path config() const { return dir_ / "agent.yaml"; }
  [[nodiscard]] fs::path policy() const { return dir_ / "policy.yaml"; }

  // agent.yaml with `audit_path` as the audit log (YAML text, already quoted as needed).
  [[nodiscard]] std::string config_text(const std::string& audit_path_yaml) const {
    const TestPki& pki = TestPki::get();
    return "listen: [\"127.0.0.1:0\"]\n"  // 1
           "tls: {certificate: " +
           pki.cert("server").string() +  // 2
           ", private_key: " + pki.key("server").string() + ", client_ca: " + pki.ca().string() +
           "}\n" + "audit: {path: " + audit_path_yaml + "}\n" +  // 3
           "policy: " + policy().string() + "\n";                // 4
  }

  static std::string policy_text(const std::string& argv0_yaml) {
    return "identities:\n"                // 1
           "  - match: {cn: alice}\n"     // 2
           "    principal: alice\n"       // 3
           "    roles: [operator]\n"      // 4
           "roles:\n"                     // 5
           "  operator:\n"                // 6
           "    commands: [ping, run]\n"  // 7
           "    run: [up]\n"              // 8
           "commands:\n"                  // 9
           "  up:\n"                      // 10
           "    argv: [" +
           argv0_yaml + "]\n";  // 11
  }

 private:
  fs::path dir_;
};

TEST(MatrixI, I10_ControlCharacterEscapesInConfigOrPolicyValuesStopTheAgent) {
  ConfigFiles f;
  const std::string audit = (f.dir() / "audit.jsonl").string();
  write_file(f.policy(), ConfigFiles::policy_text("/usr/bin/uptime"));
  write_file(f.config(), f.config_text(audit));
  const RunResult good = run_agent_binary({"--config", f.config().string(), "--check-config"});
  ASSERT_EQ(good.exit_code, 0) << good.output;

  // Each escape YAML turns into a control character, and raw control bytes (TAB inside a
  // value; the others are refused as bytes already).
  const std::vector<std::pair<std::string, std::string>> kEscapes = {
      {"\\0", "U+0000"}, {"\\e", "U+001B"},   {"\\x01", "U+0001"}, {"\\u0000", "U+0000"},
      {"\\t", "U+0009"}, {"\\x9b", "U+009B"}, {"\t", "U+0009"}};
  for (const auto& [escape, code] : kEscapes) {
    SCOPED_TRACE("escape " + escape);
    // A config path: audit.path on line 3, after "audit: {path: " (column 15).
    write_file(f.config(), f.config_text("\"" + audit + escape + "x\""));
    RunResult r = run_agent_binary({"--config", f.config().string()});
    EXPECT_EQ(r.exit_code, kExitConfig) << r.output;
    EXPECT_NE(r.output.find(f.config().string() + ":3:15: audit.path: control character " + code),
              std::string::npos)
        << r.output;
    EXPECT_FALSE(fs::exists(audit + escape.substr(0, 0))) << "the agent created its audit log";
    write_file(f.config(), f.config_text(audit));

    // A policy path: commands.up.argv[0] on line 11, column 12.
    write_file(f.policy(), ConfigFiles::policy_text("\"/usr/bin/uptime" + escape + "\""));
    r = run_agent_binary({"--config", f.config().string()});
    EXPECT_EQ(r.exit_code, kExitConfig) << r.output;
    EXPECT_NE(r.output.find(f.policy().string() +
                            ":11:12: commands.up.argv[0]: control character " + code),
              std::string::npos)
        << r.output;
    write_file(f.policy(), ConfigFiles::policy_text("/usr/bin/uptime"));
  }
}

// ---- I6: long lines through tail, lastlog and opsctl ----

struct OpsctlRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

OpsctlRun run_opsctl(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  const fs::path home = make_temp_dir("opsctl-i6");
  const TestPki& pki = TestPki::get();
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string key = entry.substr(0, entry.find('='));
    if (key.rfind("OPSCTL_", 0) == 0 || key == "HOME" || key.rfind("XDG_", 0) == 0) continue;
    env.push_back(entry);
  }
  env.push_back("HOME=" + home.string());
  env.push_back("OPSCTL_CERT=" + pki.cert("alice").string());
  env.push_back("OPSCTL_KEY=" + pki.key("alice").string());
  env.push_back("OPSCTL_CA=" + pki.ca().string());
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> full = {OPSCTL_BINARY};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : full) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, (home / "out").c_str(), O_WRONLY | O_CREAT, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, (home / "err").c_str(), O_WRONLY | O_CREAT, 0600);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  OpsctlRun r;
  if (rc != 0) {
    ADD_FAILURE() << "cannot start " << OPSCTL_BINARY;
    return r;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) != pid) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ADD_FAILURE() << "opsctl did not finish in time";
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(home / "out");
  r.err = slurp(home / "err");
  std::error_code ec;
  fs::remove_all(home, ec);
  return r;
}

// 1 MiB of control bytes (every C0 byte but LF, and DEL), then an ordinary line.
std::string control_line() {
  std::string line;
  line.reserve(1U << 20);
  for (std::size_t i = 0; line.size() < (1U << 20); ++i) {
    const auto c = static_cast<char>(i % 32);
    if (c != '\n') line.push_back(c);
    if (i % 97 == 0) line.push_back('\x7f');
  }
  line.resize(1U << 20);
  return line;
}

// What the agent shows of `bytes` in text mode: controls as \xNN (TAB kept).
std::string escaped_text(const std::string& bytes) {
  std::string out;
  for (const char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\t' || (c >= 0x20 && c < 0x7f)) {
      out.push_back(ch);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    }
  }
  return out;
}

constexpr std::size_t kMaxDataText = 16 * 1024;  // docs/protocol.md: lines over 16 KiB are split

TEST(MatrixI, I6_LongLinesOfControlBytesAreSplitIntoBoundedReplyLines) {
  AgentProcess agent(spec_for(kTestPolicy));
  ASSERT_NE(agent.port(), 0);
  const std::string line = control_line();
  for (const fs::path& log : {agent.dir() / "syslog"}) {
    std::ofstream out(log, std::ios::binary | std::ios::app);
    out << line << "\nafter the long line\n";
  }

  auto alice = agent.connect("alice");
  ASSERT_NE(alice, nullptr);
  // 4 MiB of escaped reply: a generous overall bound (progress, not speed; TSan under load took
  // more than the default 10 s once).
  constexpr auto kReplyTimeout = std::chrono::seconds(120);
  for (const std::string command : {"tail app 2", "lastlog"}) {
    SCOPED_TRACE(command);
    const auto reply = alice->command(command, kReplyTimeout);
    ASSERT_GE(reply.size(), 3u);
    EXPECT_EQ(reply.back().rfind("OK ", 0), 0u) << reply.back();
    std::string text;
    std::size_t data_lines = 0;
    for (std::size_t i = 0; i + 1 < reply.size(); ++i) {
      ASSERT_EQ(reply[i].rfind("| ", 0), 0u) << reply[i].substr(0, 80);
      ASSERT_LE(reply[i].size(), 2 + kMaxDataText) << "data line " << i;
      if (reply[i] == "| after the long line") break;
      if (reply[i].rfind("| syslog line ", 0) == 0) continue;  // lastlog's earlier lines
      text += reply[i].substr(2);
      ++data_lines;
    }
    const std::string expected = escaped_text(line);
    EXPECT_GE(data_lines, expected.size() / kMaxDataText);
    EXPECT_TRUE(text == expected) << "the pieces do not join to the escaped line";
    EXPECT_EQ(reply[reply.size() - 2], "| after the long line");
  }

  // JSON mode: each object's "line" is bounded as encoded, and the pieces give the bytes back.
  const auto on = alice->command("json on");
  ASSERT_EQ(on.size(), 1u);
  const auto reply = alice->command("tail app 2", kReplyTimeout);
  ASSERT_GE(reply.size(), 3u);
  std::string joined_line;
  for (std::size_t i = 0; i + 2 < reply.size(); ++i) {
    ASSERT_LE(reply[i].size(), kMaxDataText + 64) << "JSON data line " << i;
    joined_line += Json::parse(reply[i])["line"].get<std::string>();
  }
  EXPECT_TRUE(joined_line == line) << "the JSON pieces do not give the line back";
  EXPECT_EQ(Json::parse(reply[reply.size() - 2])["line"], "after the long line");

  // opsctl reads every line the agent sends and exits 0.
  const OpsctlRun r =
      run_opsctl({"127.0.0.1:" + std::to_string(agent.port()), "tail", "app", "2"}, 60s);
  EXPECT_EQ(r.exit_code, 0) << r.err.substr(0, 2000);
  EXPECT_NE(r.out.find("after the long line"), std::string::npos) << r.err.substr(0, 2000);
  EXPECT_GE(r.out.size(), escaped_text(line).size());
}

// ---- I7: links ----

TEST(MatrixI, I7_TailRefusesALogThatIsAHardLinkToAnotherFile) {
  AgentProcess agent(spec_for(kTestPolicy));
  ASSERT_NE(agent.port(), 0);
  const fs::path secret = agent.dir() / "secret";
  write_file(secret, "i7-canary-secret\n", 0600);
  fs::remove(agent.dir() / "syslog");
  fs::create_hard_link(secret, agent.dir() / "syslog");

  auto alice = agent.connect("alice");
  ASSERT_NE(alice, nullptr);
  for (const std::string command : {"tail app", "lastlog"}) {
    const auto reply = alice->command(command);
    const std::string text = joined(reply);
    EXPECT_EQ(text.find("i7-canary"), std::string::npos) << command << ":\n" << text;
    ASSERT_FALSE(reply.empty());
    EXPECT_EQ(reply.back(), "ERR denied file has several hard links") << command;
  }
  // With the second name gone the log is served again.
  fs::remove(secret);
  const auto reply = alice->command("tail app");
  EXPECT_EQ(reply.back().rfind("OK app", 0), 0u) << joined(reply);
}

TEST(MatrixI, I7_AHashRootSwappedForASymlinkIsNotFollowed) {
  // The policy grants @DIR@/files/**; files/ becomes a link to a directory holding a canary, and
  // then a directory above the root does.
  AgentProcess agent(spec_for(kTestPolicy));
  ASSERT_NE(agent.port(), 0);
  const fs::path root = agent.dir() / "files";
  fs::create_directories(root);
  write_file(root / "ok.txt", "fine\n");
  const fs::path elsewhere = agent.dir() / "elsewhere";
  fs::create_directories(elsewhere);
  write_file(elsewhere / "ok.txt", "i7-canary-elsewhere\n");

  auto alice = agent.connect("alice");
  ASSERT_NE(alice, nullptr);
  const std::string hash = "hash sha256 " + (root / "ok.txt").string();
  auto reply = alice->command(hash);
  ASSERT_EQ(reply.size(), 1u);
  EXPECT_EQ(reply[0].rfind("OK sha256 ", 0), 0u) << reply[0];

  fs::rename(root, agent.dir() / "files.real");
  fs::create_directory_symlink(elsewhere, root);
  reply = alice->command(hash);
  ASSERT_EQ(reply.size(), 1u);
  EXPECT_EQ(reply[0], "ERR denied the root " + root.string() +
                          " is or passes through a symbolic link; refusing");

  // A link in a directory above the root: the same.
  fs::remove(root);
  fs::rename(agent.dir() / "files.real", root);
  const fs::path nested_dir = agent.dir() / "nest";
  fs::create_directories(nested_dir / "real" / "files");
  write_file(nested_dir / "real" / "files" / "ok.txt", "nested\n");
  fs::create_directory_symlink(nested_dir / "real", nested_dir / "link");
  std::string nested_policy = kTestPolicy;
  const std::string granted = "@DIR@/files/**";
  nested_policy.replace(nested_policy.find(granted), granted.size(),
                        (nested_dir / "link" / "files" / "**").string());
  AgentProcess second(spec_for(nested_policy));
  ASSERT_NE(second.port(), 0);
  auto bob = second.connect("alice");
  ASSERT_NE(bob, nullptr);
  reply = bob->command("hash sha256 " + (nested_dir / "link" / "files" / "ok.txt").string());
  ASSERT_EQ(reply.size(), 1u);
  EXPECT_EQ(reply[0], "ERR denied the root " + (nested_dir / "link" / "files").string() +
                          " is or passes through a symbolic link; refusing");
}

// ---- I4: trust files ----

fs::path guard_binary() { return fs::path(OPSAGENT_BINARY).parent_path() / "opsagent-guard"; }

// Private copies of every trust file, each in a directory of its own, so that each file and
// each directory can be made unsafe in turn.
class TrustFiles {
 public:
  TrustFiles() : dir_(make_temp_dir("opsagent-i4")) {
    const TestPki& pki = TestPki::get();
    for (const char* sub : {"cert", "key", "ca", "crl", "guard", "audit", "policy"}) {
      fs::create_directory(dir_ / sub);
      ::chmod((dir_ / sub).c_str(), 0755);
    }
    fs::copy_file(pki.cert("server"), cert());
    fs::copy_file(pki.key("server"), key());
    ::chmod(key().c_str(), 0600);
    fs::copy_file(pki.ca(), ca());
    fs::copy_file(guard_binary(), guard());
    ::chmod(guard().c_str(), 0755);
    // An empty CRL of the test CA, so clients of that CA still verify with it loaded.
    const fs::path work = dir_ / "crl-work";
    fs::create_directory(work);
    { std::ofstream(work / "index.txt"); }
    {
      std::ofstream(work / "ca.cnf")
          << "[ca]\ndefault_ca = d\n[d]\ndatabase = " << (work / "index.txt").string()
          << "\ndefault_md = sha256\ndefault_crl_days = 30\n";
    }
    std::string out;
    if (run_shell("openssl ca -gencrl -batch -config " + (work / "ca.cnf").string() + " -keyfile " +
                      (pki.dir / "ca.key").string() + " -cert " + pki.ca().string() + " -out " +
                      crl().string() + " 2>&1",
                  &out) != 0) {
      ADD_FAILURE() << "cannot make a CRL:\n" << out;
    }
    for (const fs::path& p : {cert(), ca(), crl()}) ::chmod(p.c_str(), 0644);
    write_file(audit(), "", 0600);  // an existing audit log
  }
  ~TrustFiles() {
    if (!::testing::Test::HasFailure()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }
  TrustFiles(const TrustFiles&) = delete;
  TrustFiles& operator=(const TrustFiles&) = delete;

  [[nodiscard]] fs::path cert() const { return dir_ / "cert" / "server.crt"; }
  [[nodiscard]] fs::path key() const { return dir_ / "key" / "server.key"; }
  [[nodiscard]] fs::path ca() const { return dir_ / "ca" / "ca.crt"; }
  [[nodiscard]] fs::path crl() const { return dir_ / "crl" / "revoked.crl"; }
  [[nodiscard]] fs::path guard() const { return dir_ / "guard" / "opsagent-guard"; }
  [[nodiscard]] fs::path audit() const { return dir_ / "audit" / "audit.jsonl"; }
  [[nodiscard]] const fs::path& dir() const { return dir_; }

  // The agent.yaml sections that use these files.
  [[nodiscard]] std::map<std::string, std::string> sections() const {
    return {{"tls", "{certificate: " + cert().string() + ", private_key: " + key().string() +
                        ", client_ca: " + ca().string() + ", crl: " + crl().string() + "}"},
            {"exec", "{guard: " + guard().string() + "}"},
            {"audit", "{path: " + audit().string() + "}"}};
  }

  // What each file is called in the test output, with the mode that makes it unsafe.
  struct Case {
    std::string name;
    fs::path path;
    mode_t safe_mode;
    mode_t unsafe_mode;
    /// What the start-up error says about the file ("" for the general rule's message).
    std::string start_problem = {};
  };
  [[nodiscard]] std::vector<Case> cases() const {
    return {{"tls.client_ca", ca(), 0644, 0666},
            {"tls.crl", crl(), 0644, 0666},
            {"tls.certificate", cert(), 0644, 0666},
            {"tls.private_key", key(), 0600, 0666,
             // the key's own, stricter rule (no group/other access at all) speaks first
             key().string() + " has mode 0666; a private key must not be accessible by group or "
                              "others (chmod 600)"},
            {"exec.guard", guard(), 0755, 0777},
            {"audit log", audit(), 0600, 0666}};
  }

 private:
  fs::path dir_;
};

// Writes a full agent.yaml for a start-up check of `t` (policy: the test policy).
fs::path write_start_config(const TrustFiles& t) {
  const fs::path policy = t.dir() / "policy" / "policy.yaml";
  std::string text = kTestPolicy;
  for (auto pos = text.find("@DIR@"); pos != std::string::npos; pos = text.find("@DIR@")) {
    text.replace(pos, 5, t.dir().string());
  }
  for (auto pos = text.find("@HELPERS@"); pos != std::string::npos; pos = text.find("@HELPERS@")) {
    text.replace(pos, 9, OPSAGENT_HELPER_DIR);
  }
  { std::ofstream(policy) << text; }
  ::chmod(policy.c_str(), 0644);
  std::string config = "listen: [\"127.0.0.1:0\"]\npolicy: " + policy.string() + "\n";
  for (const auto& [k, v] : t.sections()) config += k + ": " + v + "\n";
  const fs::path file = t.dir() / "policy" / "agent.yaml";
  { std::ofstream(file) << config; }
  ::chmod(file.c_str(), 0644);
  return file;
}

TEST(MatrixI, I4_TrustFilesWritableByOthersAreRefusedAtStart) {
  TrustFiles t;
  const fs::path config = write_start_config(t);
  const RunResult good = run_agent_binary({"--config", config.string(), "--check-config"});
  ASSERT_EQ(good.exit_code, 0) << good.output;

  for (const auto& c : t.cases()) {
    SCOPED_TRACE(c.name);
    ASSERT_EQ(::chmod(c.path.c_str(), c.unsafe_mode), 0);
    RunResult r = run_agent_binary({"--config", config.string(), "--check-config"});
    EXPECT_EQ(r.exit_code, kExitConfig) << r.output;
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(c.unsafe_mode));
    const std::string problem =
        c.start_problem.empty()
            ? c.path.string() + ": mode " + mode + " lets group or others write it; refusing"
            : c.start_problem;
    EXPECT_NE(r.output.find(problem), std::string::npos) << r.output;
    ASSERT_EQ(::chmod(c.path.c_str(), c.safe_mode), 0);

    // The directory holding it, writable by others (no sticky bit): anyone could swap the file.
    const fs::path dir = c.path.parent_path();
    ASSERT_EQ(::chmod(dir.c_str(), 0777), 0);
    r = run_agent_binary({"--config", config.string(), "--check-config"});
    EXPECT_EQ(r.exit_code, kExitConfig) << r.output;
    EXPECT_NE(r.output.find(dir.string() + ": directory mode 0777 lets group or others replace "
                                           "the files in it; refusing"),
              std::string::npos)
        << r.output;
    ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
  }

  // A real start, not only --check-config: refused before it listens or touches the audit log.
  ASSERT_EQ(::chmod(t.ca().c_str(), 0666), 0);
  const RunResult r = run_agent_binary({"--config", config.string()});
  EXPECT_EQ(r.exit_code, kExitConfig) << r.output;
  EXPECT_EQ(r.output.find("listening on"), std::string::npos) << r.output;
  EXPECT_EQ(slurp(t.audit()), "") << "the audit log was written";
}

TEST(MatrixI, I4_TrustFilesOwnedByAnotherUserAreRefusedAtStart) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "chown to another user needs root; the mode half of I4 runs without it";
  }
  TrustFiles t;
  const fs::path config = write_start_config(t);
  constexpr uid_t kNobody = 65534;
  for (const auto& c : t.cases()) {
    SCOPED_TRACE(c.name);
    ASSERT_EQ(::chown(c.path.c_str(), kNobody, static_cast<gid_t>(-1)), 0);
    const RunResult r = run_agent_binary({"--config", config.string(), "--check-config"});
    EXPECT_EQ(r.exit_code, kExitConfig) << r.output;
    EXPECT_NE(r.output.find(c.path.string() +
                            ": owned by uid 65534, not by root or the agent's user; refusing"),
              std::string::npos)
        << r.output;
    ASSERT_EQ(::chown(c.path.c_str(), 0, static_cast<gid_t>(-1)), 0);
  }
  const fs::path dir = t.ca().parent_path();
  ASSERT_EQ(::chown(dir.c_str(), kNobody, static_cast<gid_t>(-1)), 0);
  const RunResult r = run_agent_binary({"--config", config.string(), "--check-config"});
  EXPECT_EQ(r.exit_code, kExitConfig) << r.output;
  EXPECT_NE(r.output.find(dir.string() + ": owned by uid 65534"), std::string::npos) << r.output;
  EXPECT_EQ(::chown(dir.c_str(), 0, static_cast<gid_t>(-1)), 0);
}

std::size_t count_events(const AgentProcess& agent, const std::string& event) {
  std::size_t n = 0;
  for (const auto& r : agent.audit()) n += r.value("event", "") == event ? 1 : 0;
  return n;
}

// Waits until the audit holds `n` records of `event`; returns the n-th.
Json wait_for_nth(const AgentProcess& agent, const std::string& event, std::size_t n) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
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

TEST(MatrixI, I4_TrustFilesMadeWritableByOthersAreRefusedAtReload) {
  TrustFiles t;
  // The audit log must not exist yet for AgentProcess's own checks; the agent creates it.
  fs::remove(t.audit());
  AgentSpec spec = spec_for(kTestPolicy);
  spec.sections = t.sections();
  AgentProcess agent(spec);
  ASSERT_NE(agent.port(), 0);
  // AgentProcess reads the audit at its own path: link it there.
  fs::create_symlink(t.audit(), agent.audit_path());
  auto alice = agent.connect("alice");
  ASSERT_NE(alice, nullptr);

  std::size_t tls_failures = 0;
  std::size_t trust_failures = 0;
  std::size_t tls_reloads = 0;
  for (const auto& c : t.cases()) {
    SCOPED_TRACE(c.name);
    const bool tls = c.name.rfind("tls.", 0) == 0;
    ASSERT_EQ(::chmod(c.path.c_str(), c.unsafe_mode), 0);
    agent.signal(SIGHUP);
    const Json failed = tls ? wait_for_nth(agent, "tls_reload_failed", ++tls_failures)
                            : wait_for_nth(agent, "trust_check_failed", ++trust_failures);
    ASSERT_FALSE(failed.is_null()) << agent.log();
    EXPECT_NE(failed.value("error", "").find(c.path.string() + ": mode "), std::string::npos)
        << failed.dump();
    if (tls) {
      EXPECT_EQ(count_events(agent, "tls_reload"), tls_reloads) << "an unsafe file was loaded";
    } else {
      // The guard and the audit log have their own step; the TLS files still reload.
      ASSERT_FALSE(wait_for_nth(agent, "tls_reload", ++tls_reloads).is_null()) << agent.log();
    }
    if (c.name == "exec.guard") {
      // Commands are refused while the guard is unsafe, and run again once it is fixed.
      const auto refused = alice->command("run echo-args i4");
      ASSERT_FALSE(refused.empty());
      EXPECT_EQ(
          refused.back().rfind(
              "ERR internal refusing to start commands: " + c.path.string() + ": mode 0777", 0),
          0u)
          << joined(refused);
    }
    ASSERT_EQ(::chmod(c.path.c_str(), c.safe_mode), 0);
    agent.signal(SIGHUP);
    ASSERT_FALSE(wait_for_nth(agent, "tls_reload", ++tls_reloads).is_null()) << agent.log();
  }
  const auto ok = alice->command("run echo-args i4");
  ASSERT_FALSE(ok.empty());
  EXPECT_EQ(ok.back().rfind("OK done exit=0", 0), 0u) << joined(ok);
  // The audit log was never reopened while it was unsafe, and is not left world-writable.
  struct stat st {};
  ASSERT_EQ(::stat(t.audit().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 022, 0u);
}

}  // namespace
}  // namespace opsagent::testing
