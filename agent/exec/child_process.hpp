#pragma once
// Starting a subprocess safely: posix_spawn (no fork in a threaded process), never a shell,
// exactly the given environment, stdin from /dev/null, stdout/stderr to fresh pipes, every other
// descriptor closed, its own process group. A pidfd tracks it so exits can be awaited without
// SIGCHLD handlers. Thread-safe: ChildProcess is a move-only owner used by one strand.

#include <filesystem>
#include <string>
#include <sys/types.h>
#include <vector>

#include "agent/common/error.hpp"
#include "agent/common/unique_fd.hpp"

namespace opsagent::exec {

struct SpawnSpec {
  std::vector<std::string> argv;                  ///< argv[0] is an absolute path; no PATH lookup
  std::vector<std::string> environment;           ///< "KEY=value", the complete environment
  std::filesystem::path working_directory = "/";  ///< must exist; opened before the spawn
  /// Must equal the agent's process umask, which start-up sets to the configured value
  /// (posix_spawn has no umask action); spawn() refuses a mismatch with ErrorCode::internal.
  mode_t umask = 077;
  /// opsagent-guard (agent/guard/guard_main.cpp). When set, it is the process spawned: it runs
  /// argv as its own child, kills whatever the command leaves behind, and kills the whole tree
  /// if the agent dies, even by SIGKILL, and starts it with every signal at its default
  /// disposition and unblocked. Empty: argv is spawned directly (tests of this file); glibc's
  /// posix_spawn then leaves its two reserved signals (32, 33) ignored in the child.
  std::filesystem::path guard;
  long max_processes = 0;  ///< RLIMIT_NPROC for the command (guard only); 0: not set
  long uid = -1;           ///< run the command as this user and group (guard only); -1: ours
  long gid = -1;
};

/// How a child ended.
struct ExitStatus {
  int code = -1;   ///< exit code, or -1 when killed by a signal
  int signal = 0;  ///< terminating signal, or 0
};

/// A running child that is the leader of its own process group (the guard, when one is used:
/// it exits the way the command did, so callers need not know). The destructor SIGKILLs the
/// group and reaps the child if that has not happened yet (no zombies, no orphans left behind).
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(ChildProcess&& /*other*/) noexcept;
  ChildProcess& operator=(ChildProcess&& /*other*/) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  /// Readable when the child has exited (poll/epoll). Owned here.
  [[nodiscard]] int pidfd() const noexcept { return pidfd_.get(); }
  /// Read ends of the child's stdout and stderr; callers take them (e.g. into asio pipes).
  UniqueFd take_stdout() noexcept { return std::move(stdout_); }
  UniqueFd take_stderr() noexcept { return std::move(stderr_); }

  /// Sends `sig` to the whole process group (child and its descendants that stayed in it).
  void signal_group(int sig) const noexcept;
  /// Non-blocking reap: the status once the child has exited, else nothing (ok() == false
  /// with code internal "running"). Reaps exactly once.
  Result<ExitStatus> try_reap() noexcept;
  [[nodiscard]] bool reaped() const noexcept { return reaped_; }

 private:
  friend Result<ChildProcess> spawn(const SpawnSpec& spec);
  pid_t pid_ = -1;
  bool reaped_ = false;
  UniqueFd pidfd_;
  UniqueFd stdout_;
  UniqueFd stderr_;
};

/// Starts `spec`. Errors: usage (empty argv, relative argv[0], NUL bytes, malformed environment),
/// notfound (no such program or working directory), denied (not executable), busy (out of
/// descriptors or processes), internal (including a umask mismatch).
/// The pipes are O_CLOEXEC|O_NONBLOCK on our side.
Result<ChildProcess> spawn(const SpawnSpec& spec);

}  // namespace opsagent::exec
