#pragma once
// Running the real opsctl binary in tests: with alice's certificate from the test PKI and a
// HOME without a config file, its stdout and stderr captured (run_opsctl), started in the
// background so a test can signal it (start_opsctl), or on a pseudo-terminal (run_on_pty).
// Header-only: shared by opsctl_test.cpp and opsctl_fleet_test.cpp.

#include <chrono>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <poll.h>
#include <pty.h>
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

#include "tests/support/agent_process.hpp"

extern char** environ;

namespace opsagent::testing::opsctl {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline fs::path make_temp_dir(const std::string& prefix) {
  std::string tmpl = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// The environment opsctl runs with: alice's files, a HOME without a config file, no NO_COLOR
// unless `extra` sets it; `extra` replaces inherited variables of the same name.
inline std::vector<std::string> opsctl_env(const fs::path& home,
                                           const std::map<std::string, std::string>& extra) {
  const TestPki& pki = TestPki::get();
  std::map<std::string, std::string> vars = {{"HOME", home.string()},
                                             {"OPSCTL_CERT", pki.cert("alice").string()},
                                             {"OPSCTL_KEY", pki.key("alice").string()},
                                             {"OPSCTL_CA", pki.ca().string()}};
  for (const auto& [k, v] : extra) vars[k] = v;
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string key = entry.substr(0, entry.find('='));
    if (key.rfind("OPSCTL_", 0) == 0 || key == "HOME" || key.rfind("XDG_", 0) == 0 ||
        key == "NO_COLOR" || vars.count(key) != 0)
      continue;
    out.push_back(entry);
  }
  for (const auto& [k, v] : vars) {
    if (!v.empty()) out.push_back(k + "=" + v);
  }
  return out;
}

struct OpsctlRun {
  int exit_code = -1;  // -1: killed after the timeout
  std::string out;
  std::string err;
  std::chrono::milliseconds elapsed{0};
};

/// An opsctl started in the background; its stdout and stderr go to files in `dir`.
struct RunningOpsctl {
  pid_t pid = -1;  // -1: not started (never pass it to kill)
  fs::path dir;
  std::chrono::steady_clock::time_point started;

  [[nodiscard]] std::string out() const { return slurp(dir / "out"); }
  [[nodiscard]] std::string err() const { return slurp(dir / "err"); }
  /// Sends `sig` to this opsctl (never to pid 0 or -1).
  bool signal(int sig) const { return pid > 0 && ::kill(pid, sig) == 0; }
};

/// `stdout_file`, when given, is opened for stdout instead of a file in `dir` (e.g. /dev/full).
inline RunningOpsctl start_opsctl(const std::vector<std::string>& args,
                                  const std::map<std::string, std::string>& extra_env = {},
                                  const fs::path& stdout_file = {}) {
  RunningOpsctl run;
  run.dir = make_temp_dir("opsctl-run");
  std::vector<std::string> full = {OPSCTL_BINARY};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : full) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env = opsctl_env(run.dir, extra_env);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  const fs::path out = stdout_file.empty() ? run.dir / "out" : stdout_file;
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, (run.dir / "err").c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  pid_t pid = -1;
  run.started = std::chrono::steady_clock::now();
  const int rc = ::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    ADD_FAILURE() << "cannot start " << OPSCTL_BINARY;
    return run;
  }
  run.pid = pid;
  return run;
}

/// Waits for a started opsctl to exit (killing it after `timeout`) and collects its output.
inline OpsctlRun finish_opsctl(RunningOpsctl& run, std::chrono::milliseconds timeout = 30s) {
  OpsctlRun r;
  if (run.pid <= 0) return r;
  int status = 0;
  while (true) {
    if (::waitpid(run.pid, &status, WNOHANG) == run.pid) {
      r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      break;
    }
    if (std::chrono::steady_clock::now() - run.started > timeout) {
      ::kill(run.pid, SIGKILL);
      ::waitpid(run.pid, &status, 0);
      ADD_FAILURE() << "opsctl did not finish within " << timeout.count() << " ms";
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  run.pid = -1;
  r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - run.started);
  r.out = run.out();
  r.err = run.err();
  fs::remove_all(run.dir);
  return r;
}

inline OpsctlRun run_opsctl(const std::vector<std::string>& args,
                            const std::map<std::string, std::string>& extra_env = {},
                            std::chrono::milliseconds timeout = 30s) {
  RunningOpsctl run = start_opsctl(args, extra_env);
  return finish_opsctl(run, timeout);
}

inline std::string describe(const OpsctlRun& r) {
  return "exit " + std::to_string(r.exit_code) + "\n--- stdout:\n" + r.out + "--- stderr:\n" +
         r.err;
}

// Runs opsctl on a pseudo-terminal; returns everything it wrote, after `script` is played:
// each pair is (wait for this text, then send that). Text is sent once the line editor reads
// (see below), except a lone Ctrl-C, which interrupts a running command.
struct PtyRun {
  std::string output;
  int exit_code = -1;
};

// libedit prints its prompt before it switches the terminal to raw mode; a Ctrl-D sent in
// between would be taken by the line discipline (canonical mode) and lost in the switch. The
// pty master reports the terminal's mode, so wait for that rather than for time.
inline bool line_editor_is_reading(int master) {
  termios t{};
  return ::tcgetattr(master, &t) == 0 && (t.c_lflag & ICANON) == 0;
}

inline PtyRun run_on_pty(const std::vector<std::string>& args,
                         const std::vector<std::pair<std::string, std::string>>& script,
                         std::chrono::milliseconds timeout = 20s,
                         const std::map<std::string, std::string>& extra_env = {}) {
  const fs::path home = make_temp_dir("opsctl-pty");
  std::vector<std::string> full = {OPSCTL_BINARY};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : full) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::map<std::string, std::string> vars = {{"TERM", "dumb"}};
  for (const auto& [k, v] : extra_env) vars[k] = v;
  std::vector<std::string> env = opsctl_env(home, vars);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  PtyRun r;
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  if (pid == 0) {
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  if (pid < 0) {
    ADD_FAILURE() << "forkpty failed";
    return r;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t step = 0;
  std::size_t searched_from = 0;
  bool eof = false;
  while (!eof && std::chrono::steady_clock::now() < deadline) {
    if (step < script.size()) {
      const auto at = r.output.find(script[step].first, searched_from);
      if (at != std::string::npos &&
          (script[step].second.empty() || script[step].second == "\x03" ||
           line_editor_is_reading(master))) {
        searched_from = at + script[step].first.size();
        const std::string& send = script[step].second;
        EXPECT_EQ(::write(master, send.data(), send.size()), static_cast<ssize_t>(send.size()));
        ++step;
        continue;
      }
    }
    pollfd p{master, POLLIN, 0};
    if (::poll(&p, 1, 10) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) {
      eof = true;  // EIO once the child has gone and closed the terminal
    } else {
      r.output.append(buf, static_cast<std::size_t>(n));
    }
  }
  EXPECT_EQ(step, script.size()) << "script stopped at step " << step << "; output:\n" << r.output;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline && ::waitpid(pid, &status, WNOHANG) != pid) {
    std::this_thread::sleep_for(10ms);
  }
  if (::waitpid(pid, &status, WNOHANG) == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    ADD_FAILURE() << "opsctl did not exit; output:\n" << r.output;
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  ::close(master);
  fs::remove_all(home);
  return r;
}

}  // namespace opsagent::testing::opsctl
