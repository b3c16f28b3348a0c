#pragma once
// The real opsagent binary, started for one test in its own temporary directory with a
// generated config, on a loopback port chosen by the kernel. Stopped with SIGTERM at the end.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/test_pki.hpp"
#include "tests/support/tls_client.hpp"

namespace opsagent::testing {

/// What to start. `sections` replaces or adds top-level agent.yaml sections, e.g.
/// {"limits", "{max_clients: 2}"}; the defaults cover listen, tls, audit, policy and lastlog.
struct AgentSpec {
  std::string policy_yaml;  ///< the whole policy file; @DIR@ and @HELPERS@ are replaced by the
                            ///< agent's directory and the directory of the helper programs
  std::map<std::string, std::string> sections{};  ///< agent.yaml top-level key -> YAML value
  std::string listen_host = "127.0.0.1";
  std::map<std::string, std::string> env{};  ///< environment variables set (or replaced) for the
                                             ///< agent on top of the test's own environment
  std::vector<std::string>
      wrapper{};  ///< a program that execs the agent, e.g. {"/usr/bin/prlimit",
                  ///< "--nofile=64", "--"}; it must keep the pid (exec)
};

class AgentProcess {
 public:
  /// Writes the files and starts the agent; waits until it logs its listening port.
  /// On failure the test fails (ADD_FAILURE) and port() is 0.
  explicit AgentProcess(AgentSpec spec);
  ~AgentProcess();
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  /// The agent's pid, or -1 once it has exited: never pass it to kill(2), use signal().
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }
  [[nodiscard]] std::filesystem::path audit_path() const { return dir_ / "audit.jsonl"; }

  /// A client for `identity` ("alice", "ci-bot", ...), connected and past the greeting.
  /// `greeting` receives the greeting line.
  std::unique_ptr<TlsClient> connect(const std::string& identity, std::string* greeting = nullptr);
  /// Client options for `identity` (empty: no certificate).
  [[nodiscard]] ClientOptions client_options(const std::string& identity) const;

  /// Every audit record so far (each line must parse as JSON; a test fails otherwise).
  [[nodiscard]] std::vector<nlohmann::json> audit() const;
  /// Waits until an audit record with `event` (and matching `field`=`value` when given) exists.
  nlohmann::json wait_for_audit(const std::string& event, const std::string& field = "",
                                const nlohmann::json& value = nullptr,
                                std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  /// The agent's stderr so far.
  [[nodiscard]] std::string log() const;
  /// Sends `sig` to the agent; false (and a test failure) when no agent is running, e.g. it
  /// failed to start or was stopped. Use it instead of ::kill(pid(), sig): pid() is -1 then,
  /// and kill(-1, sig) signals every process the test may signal (as root: everything).
  bool signal(int sig) const;
  /// SIGTERM and wait; returns the exit status (or -1 after a SIGKILL).
  int stop(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  /// SIGKILL and reap, like a crash or an OOM kill; the fixture then expects no clean stop.
  void kill_hard();

 private:
  std::filesystem::path dir_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

/// Result of running the agent binary to completion (for configuration error tests).
struct RunResult {
  int exit_code = -1;
  std::string output;  ///< stdout + stderr
};
RunResult run_agent_binary(const std::vector<std::string>& args,
                           std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// Path of a helper program built with the tests (argv-echo, sleeper, forker, flood).
std::filesystem::path helper_path(const std::string& name);

/// True when /proc shows a process `pid` that is not a zombie.
bool process_alive(pid_t pid);
/// Waits until no process has `marker` in its command line; true when none is left. A killed
/// process loses its command line before it is a zombie: to know that a given process is gone,
/// wait for its pid with wait_process_gone().
bool wait_no_process_with_marker(const std::string& marker, std::chrono::milliseconds timeout);
/// Waits until `pid` is gone or a zombie (process_alive() false); true when it is.
bool wait_process_gone(pid_t pid, std::chrono::milliseconds timeout);
/// A string unique to this test run, for command-line markers.
std::string unique_marker(const std::string& prefix);

}  // namespace opsagent::testing
