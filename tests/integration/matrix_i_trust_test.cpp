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

}  // namespace
}  // namespace opsagent::testing
