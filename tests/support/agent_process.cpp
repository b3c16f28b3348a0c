#include "tests/support/agent_process.hpp"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <regex>
#include <signal.h>
#include <spawn.h>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/support/sanitizer.hpp"

extern char** environ;

namespace opsagent::testing {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

fs::path make_temp_dir(const std::string& prefix) {
  std::string tmpl = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

pid_t spawn_with_log(const std::vector<std::string>& args, const fs::path& log,
                     const std::map<std::string, std::string>& env = {}) {
  // The test's environment with `env` applied on top (same variable: `env` wins).
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    if (env.count(entry.substr(0, entry.find('='))) == 0) env_strings.push_back(entry);
  }
  for (const auto& [name, value] : env) env_strings.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

// True once `pid` catches SIGTERM (SigCgt in /proc/PID/status), i.e. it would stop cleanly.
bool handles_sigterm(pid_t pid) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("SigCgt:", 0) == 0) {
      const unsigned long long caught = std::stoull(line.substr(7), nullptr, 16);
      return (caught & (1ULL << (SIGTERM - 1))) != 0;
    }
  }
  return false;
}

}  // namespace

fs::path helper_path(const std::string& name) { return fs::path(OPSAGENT_HELPER_DIR) / name; }

std::string unique_marker(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

bool process_alive(pid_t pid) {
  const std::string status = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (status.empty()) return false;
  const auto close_paren = status.rfind(')');
  return close_paren != std::string::npos && close_paren + 2 < status.size() &&
         status[close_paren + 2] != 'Z';
}

bool wait_process_gone(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (process_alive(pid)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

bool wait_no_process_with_marker(const std::string& marker, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    bool found = false;
    for (const auto& entry : fs::directory_iterator("/proc")) {
      const std::string name = entry.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      const std::string cmdline = read_file(entry.path() / "cmdline");
      if (cmdline.find(marker) != std::string::npos && process_alive(std::stoi(name))) {
        found = true;
        break;
      }
    }
    if (!found) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
}

AgentProcess::AgentProcess(AgentSpec spec) {
  const TestPki& pki = TestPki::get();
  dir_ = make_temp_dir("opsagent-it");
  std::string policy = spec.policy_yaml;
  for (const auto& [from, to] : {std::pair<std::string, std::string>{"@DIR@", dir_.string()},
                                 {"@HELPERS@", std::string(OPSAGENT_HELPER_DIR)}}) {
    for (auto pos = policy.find(from); pos != std::string::npos;
         pos = policy.find(from, pos + to.size())) {
      policy.replace(pos, from.size(), to);
    }
  }
  write_file(dir_ / "policy.yaml", policy);
  std::string syslog;
  for (int i = 1; i <= 15; ++i) syslog += "syslog line " + std::to_string(i) + "\n";
  write_file(dir_ / "syslog", syslog);

  std::map<std::string, std::string> sections = {
      {"listen", "[\"" + spec.listen_host + ":0\"]"},
      {"tls", "{certificate: " + pki.cert("server").string() + ", private_key: " +
                  pki.key("server").string() + ", client_ca: " + pki.ca().string() + "}"},
      {"audit", "{path: " + (dir_ / "audit.jsonl").string() + "}"},
      {"policy", (dir_ / "policy.yaml").string()},
      {"lastlog", "{path: " + (dir_ / "syslog").string() + ", lines: 10, journal_fallback: false}"},
      {"logging", "{level: debug}"},
  };
  // Tests run as root here, and most run commands: allowed explicitly, as an operator must.
  if (::geteuid() == 0) sections["run_as"] = "{allow_root: true}";
  for (auto& [k, v] : spec.sections) sections[k] = v;
  std::string config;
  for (const auto& [k, v] : sections) config += k + ": " + v + "\n";
  write_file(dir_ / "agent.yaml", config);

  std::vector<std::string> argv = spec.wrapper;
  argv.insert(argv.end(), {OPSAGENT_BINARY, "--config", (dir_ / "agent.yaml").string()});
  pid_ = spawn_with_log(argv, dir_ / "agent.log", spec.env);
  if (pid_ < 0) {
    ADD_FAILURE() << "cannot start " << OPSAGENT_BINARY;
    return;
  }
  // Compiled once: tests start agents from several threads (OpsctlFleet), and compiling a
  // std::regex fills libstdc++'s per-locale ctype<char>::narrow() cache without any
  // synchronisation, which ThreadSanitizer rightly reports as a data race.
  static const std::regex listening(R"(listening on (\S+):(\d+))");
  // Generous: a fixture may start twenty sanitizer-built agents at once on a loaded machine, and
  // an agent that fails exits, which the loop sees at once.
  const auto deadline = std::chrono::steady_clock::now() + scaled(30s);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string text = log();
    std::smatch m;
    if (port_ == 0 && std::regex_search(text, m, listening)) {
      port_ = static_cast<std::uint16_t>(std::stoi(m[2].str()));
    }
    // The agent logs "listening" before it installs its signal handlers; a SIGTERM in between
    // (a short test under ThreadSanitizer) would kill it with the default action instead of
    // stopping it. Ready means both.
    if (port_ != 0 && handles_sigterm(pid_)) return;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      ADD_FAILURE() << "opsagent exited during start-up:\n" << text << "\nconfig:\n" << config;
      return;
    }
    std::this_thread::sleep_for(10ms);
  }
  ADD_FAILURE() << (port_ == 0 ? "opsagent did not report its port:\n"
                               : "opsagent did not install its SIGTERM handler:\n")
                << log();
}

AgentProcess::~AgentProcess() {
  if (pid_ > 0) {
    const int rc = stop();
    EXPECT_EQ(rc, 0) << "opsagent did not stop cleanly; log:\n" << log();
  }
  for (const auto& line : [this] {
         std::vector<std::string> lines;
         std::istringstream in(read_file(audit_path()));
         for (std::string l; std::getline(in, l);) lines.push_back(l);
         return lines;
       }()) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "audit line is not JSON: " << line;
  }
  if (!::testing::Test::HasFailure()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  } else {
    std::fprintf(stderr, "agent files kept in %s\n", dir_.c_str());
  }
}

int AgentProcess::stop(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      if (WIFSIGNALED(status)) {
        std::fprintf(stderr, "opsagent was killed by signal %d (%s) while stopping\n",
                     WTERMSIG(status), ::strsignal(WTERMSIG(status)));
      }
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    std::this_thread::sleep_for(10ms);
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return -1;
}

bool AgentProcess::signal(int sig) const {
  if (pid_ <= 0) {
    ADD_FAILURE() << "no running agent to send signal " << sig << " to";
    return false;
  }
  if (::kill(pid_, sig) != 0) {
    ADD_FAILURE() << "kill(" << pid_ << ", " << sig << "): " << std::strerror(errno);
    return false;
  }
  return true;
}

void AgentProcess::kill_hard() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

std::string AgentProcess::log() const { return read_file(dir_ / "agent.log"); }

ClientOptions AgentProcess::client_options(const std::string& identity) const {
  const TestPki& pki = TestPki::get();
  ClientOptions o;
  o.ca = pki.ca();
  if (!identity.empty()) {
    o.cert = pki.cert(identity);
    o.key = pki.key(identity);
  }
  return o;
}

std::unique_ptr<TlsClient> AgentProcess::connect(const std::string& identity,
                                                 std::string* greeting) {
  auto client = std::make_unique<TlsClient>(client_options(identity));
  const std::string err = client->connect("127.0.0.1", port_);
  EXPECT_EQ(err, "") << "connect as " << identity;
  auto line = client->read_line();
  EXPECT_TRUE(line.has_value()) << "no greeting: " << client->last_error();
  if (line && greeting != nullptr) *greeting = *line;
  return client;
}

std::vector<nlohmann::json> AgentProcess::audit() const {
  std::vector<nlohmann::json> out;
  std::string text = read_file(audit_path());
  // A record the agent is writing right now may be visible in part: only complete lines count
  // while it runs (the destructor checks the whole file once the agent has stopped).
  text.erase(text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1);
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) {
      ADD_FAILURE() << "audit line is not JSON: " << line;
      continue;
    }
    out.push_back(std::move(j));
  }
  return out;
}

nlohmann::json AgentProcess::wait_for_audit(const std::string& event, const std::string& field,
                                            const nlohmann::json& value,
                                            std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    for (const auto& rec : audit()) {
      if (rec.value("event", "") != event) continue;
      if (!field.empty() && (!rec.contains(field) || rec[field] != value)) continue;
      return rec;
    }
    std::this_thread::sleep_for(20ms);
  } while (std::chrono::steady_clock::now() < deadline);
  ADD_FAILURE() << "no audit record " << event << " " << field << "=" << value.dump() << " in:\n"
                << read_file(audit_path());
  return nullptr;
}

RunResult run_agent_binary(const std::vector<std::string>& args,
                           std::chrono::milliseconds timeout) {
  const fs::path dir = make_temp_dir("opsagent-run");
  std::vector<std::string> full = {OPSAGENT_BINARY};
  full.insert(full.end(), args.begin(), args.end());
  RunResult r;
  const pid_t pid = spawn_with_log(full, dir / "out.log");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (true) {
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  r.output = read_file(dir / "out.log");
  std::error_code ec;
  fs::remove_all(dir, ec);
  return r;
}

}  // namespace opsagent::testing
