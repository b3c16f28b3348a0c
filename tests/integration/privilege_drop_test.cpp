// Privilege drop (issue 10): an agent started as root binds, opens its files, then becomes
// run_as.user with its supplementary groups and no capability before it accepts anyone; commands
// as root are refused unless the configuration allows them. Observed from outside, in
// /proc/PID/status of the real agent, and over real TLS.

#include <filesystem>
#include <fstream>
#include <grp.h>
#include <pwd.h>
#include <sstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/support/agent_process.hpp"
#include "tests/support/sanitizer.hpp"

namespace opsagent::testing {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kIdPolicy = R"(
identities:
  - match: {cn: alice}
    principal: alice
    roles: [operator]
roles:
  operator:
    commands: [ping, run]
    run: [id]
commands:
  id:
    argv: [/usr/bin/id]
)";

// The value of `key` ("Uid", "Groups", "CapEff", ...) in /proc/PID/status, whitespace trimmed.
std::string status_field(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) != 0) continue;
    std::istringstream words(line.substr(key.size() + 1));
    std::string word;
    std::string out;
    while (words >> word) out += (out.empty() ? "" : " ") + word;
    return out;
  }
  return "<no " + key + " line>";
}

// The server certificate, key and CA copied into a directory of their own, the key given to
// `owner` (0600): what a reload after the drop must be able to read.
class OwnedTlsFiles {
 public:
  explicit OwnedTlsFiles(uid_t owner) {
    std::string templ = (fs::temp_directory_path() / "opsagent-tls-XXXXXX").string();
    dir_ = ::mkdtemp(templ.data());
    ::chmod(dir_.c_str(), 0755);
    const TestPki& pki = TestPki::get();
    fs::copy_file(pki.cert("server"), dir_ / "server.crt");
    fs::copy_file(pki.ca(), dir_ / "ca.crt");
    fs::copy_file(pki.key("server"), dir_ / "server.key");
    ::chmod((dir_ / "server.crt").c_str(), 0644);
    ::chmod((dir_ / "ca.crt").c_str(), 0644);
    ::chmod((dir_ / "server.key").c_str(), 0600);
    EXPECT_EQ(::chown((dir_ / "server.key").c_str(), owner, static_cast<gid_t>(-1)), 0);
  }
  ~OwnedTlsFiles() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  OwnedTlsFiles(const OwnedTlsFiles&) = delete;
  OwnedTlsFiles& operator=(const OwnedTlsFiles&) = delete;

  [[nodiscard]] std::string section() const {
    return "{certificate: " + (dir_ / "server.crt").string() +
           ", private_key: " + (dir_ / "server.key").string() +
           ", client_ca: " + (dir_ / "ca.crt").string() + "}";
  }

 private:
  fs::path dir_;
};

TEST(PrivilegeDrop, AgentBecomesRunAsUserWithItsGroupsAndNoCapabilities) {
  if (::geteuid() != 0) GTEST_SKIP() << "the agent can drop privileges only when started as root";
  const struct passwd* pw = ::getpwnam("nobody");
  const struct group* gr = ::getgrnam("nogroup");
  ASSERT_NE(pw, nullptr);
  ASSERT_NE(gr, nullptr);
  const std::string uid = std::to_string(pw->pw_uid);
  const std::string gid = std::to_string(gr->gr_gid);

  const OwnedTlsFiles tls(pw->pw_uid);
  AgentProcess agent(
      AgentSpec{kIdPolicy, {{"tls", tls.section()}, {"run_as", "{user: nobody, group: nogroup}"}}});
  ASSERT_NE(agent.port(), 0);
  // The port is logged once bound, just before the drop; the drop is logged before any accept.
  const auto deadline = std::chrono::steady_clock::now() + scaled(10s);
  while (agent.log().find("dropped privileges") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }

  // Real, effective, saved and filesystem ids; nogroup is nobody's only group in /etc/group.
  EXPECT_EQ(status_field(agent.pid(), "Uid"), uid + " " + uid + " " + uid + " " + uid);
  EXPECT_EQ(status_field(agent.pid(), "Gid"), gid + " " + gid + " " + gid + " " + gid);
  const std::string groups = status_field(agent.pid(), "Groups");
  EXPECT_TRUE(groups.empty() || groups == gid) << groups;  // never 0 or root's groups
  for (const char* cap : {"CapEff", "CapPrm", "CapInh", "CapAmb"}) {
    EXPECT_EQ(status_field(agent.pid(), cap), "0000000000000000") << cap;
  }
  EXPECT_NE(agent.log().find("dropped privileges: user nobody"), std::string::npos) << agent.log();

  // Commands run as the agent's user: no exec.user needed, nothing refused.
  auto client = agent.connect("alice");
  ASSERT_NE(client, nullptr);
  const auto reply = client->command("run id");
  ASSERT_FALSE(reply.empty());
  EXPECT_EQ(reply.front().rfind("| uid=" + uid + "(nobody) gid=" + gid, 0), 0U) << reply.front();
  EXPECT_EQ(reply.back().rfind("OK done exit=0", 0), 0U) << reply.back();

  // The audit log created by root at start-up now belongs to nobody, so reopening it works.
  struct stat st {};
  ASSERT_EQ(::stat(agent.audit_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, pw->pw_uid);

  // Reload as the dropped user: agent.yaml, the policy and the TLS files are read again. The
  // test directory is 0700 root (mkdtemp); an operator's /etc/opsagent is 0755.
  ::chmod(agent.dir().c_str(), 0755);
  ASSERT_TRUE(agent.signal(SIGHUP));
  EXPECT_FALSE(agent.wait_for_audit("config_reload").is_null()) << agent.log();
  EXPECT_FALSE(agent.wait_for_audit("policy_reload").is_null()) << agent.log();
  EXPECT_FALSE(agent.wait_for_audit("tls_reload").is_null()) << agent.log();
  auto after = agent.connect("alice");
  ASSERT_NE(after, nullptr);
  EXPECT_EQ(after->command("ping").back(), "OK pong");
}

TEST(PrivilegeDrop, RefusesCommandsAsRootUnlessTheConfigSaysSo) {
  if (::geteuid() != 0) GTEST_SKIP() << "only an agent running as root can run commands as root";
  AgentProcess agent(AgentSpec{kIdPolicy, {{"run_as", "{allow_root: false}"}}});
  ASSERT_NE(agent.port(), 0);
  EXPECT_NE(agent.log().find("every `run` will be refused"), std::string::npos) << agent.log();
  auto client = agent.connect("alice");
  ASSERT_NE(client, nullptr);
  const auto refused = client->command("run id");
  ASSERT_EQ(refused.size(), 1U);
  EXPECT_EQ(refused.front().rfind("ERR denied commands would run as root", 0), 0U)
      << refused.front();
  EXPECT_NE(refused.front().find("run_as.allow_root: true"), std::string::npos);
  EXPECT_EQ(client->command("ping").back(), "OK pong");  // the session goes on

  AgentProcess allowed(AgentSpec{kIdPolicy, {{"run_as", "{allow_root: true}"}}});
  auto root_client = allowed.connect("alice");
  ASSERT_NE(root_client, nullptr);
  const auto ran = root_client->command("run id");
  ASSERT_FALSE(ran.empty());
  EXPECT_EQ(ran.front().rfind("| uid=0(root)", 0), 0U) << ran.front();
}

}  // namespace
}  // namespace opsagent::testing
