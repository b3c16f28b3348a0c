#include "agent/exec/child_process.hpp"

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <spawn.h>
#include <string_view>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>
#include <utility>

#include "agent/common/trusted_file.hpp"
#include "agent/exec/orphan_reaper.hpp"

// Umask policy. posix_spawn has no umask action and umask(2) is process-wide (shared by all
// threads), so temporarily switching it around posix_spawn would race with every other thread
// that creates a file — and a permissive child umask could widen the mode of, say, a freshly
// rotated audit log. Instead the agent sets its own umask once at start-up, before any thread
// exists, to the configured child umask (its own files are created with explicit modes and
// fchmod'ed, so they do not depend on it). Children inherit it; spawn() only verifies that
// SpawnSpec::umask equals the process umask and refuses to start the child otherwise (fail
// closed: a child never runs with a umask other than the one it was configured with).

namespace opsagent::exec {
namespace {

constexpr int kStatusFd = 3;  // the guard's status pipe (agent/guard/guard_main.cpp)

std::string errno_text(int err) { return std::generic_category().message(err); }

// posix_spawn's C handles, destroyed on every path out of spawn().
struct FileActions {
  posix_spawn_file_actions_t actions{};
  int init_error = posix_spawn_file_actions_init(&actions);
  FileActions() = default;
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
  ~FileActions() {
    if (init_error == 0) posix_spawn_file_actions_destroy(&actions);
  }
};

struct SpawnAttributes {
  posix_spawnattr_t attributes{};
  int init_error = posix_spawnattr_init(&attributes);
  SpawnAttributes() = default;
  SpawnAttributes(const SpawnAttributes&) = delete;
  SpawnAttributes& operator=(const SpawnAttributes&) = delete;
  ~SpawnAttributes() {
    if (init_error == 0) posix_spawnattr_destroy(&attributes);
  }
};

// The umask without changing it: umask(2) can only be read by setting it, which would race
// with other threads, so ask the kernel (Linux >= 4.7).
Result<mode_t> process_umask() {
  UniqueFd fd(::open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error{ErrorCode::internal, "cannot read the umask: " + errno_text(errno)};
  std::array<char, 1024> buffer{};
  ssize_t n = -1;
  do {
    n = ::read(fd.get(), buffer.data(), buffer.size() - 1);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return Error{ErrorCode::internal, "cannot read the umask"};
  const std::string_view status(buffer.data(), static_cast<std::size_t>(n));
  const auto at = status.find("\nUmask:\t");
  if (at == std::string_view::npos) {
    return Error{ErrorCode::internal, "the kernel does not report the umask"};
  }
  mode_t mask = 0;
  for (std::size_t i = at + 8; i < status.size() && status[i] >= '0' && status[i] <= '7'; ++i) {
    mask = static_cast<mode_t>(mask * 8 + static_cast<mode_t>(status[i] - '0'));
  }
  return mask;
}

std::string octal(mode_t mode) {
  std::array<char, 16> text{};
  (void)std::snprintf(text.data(), text.size(), "%04o", static_cast<unsigned>(mode));
  return text.data();
}

Error spawn_error(int err, const std::string& program) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return {ErrorCode::notfound, "no such program: " + program};
    case EACCES:
    case EPERM:
    case EISDIR:
      return {ErrorCode::denied, "not executable: " + program};
    case ENOEXEC:
      return {ErrorCode::denied, "not an executable format (a script without #!?): " + program};
    case EMFILE:
    case ENFILE:
    case EAGAIN:
    case ENOMEM:
      return {ErrorCode::busy, "cannot start " + program + ": " + errno_text(err)};
    case E2BIG:
      return {ErrorCode::limit, "argument list too long"};
    default:
      return {ErrorCode::internal, "cannot start " + program + ": " + errno_text(err)};
  }
}

// The guard's own refusals (agent/guard/guard_main.cpp: kGuardUsage, kGuardNotChild), which are
// not errnos: naming them keeps "Invalid argument" from pointing at the command.
Error guard_error(int code, const std::filesystem::path& guard, const std::string& program) {
  if (code == -2) {
    return {ErrorCode::internal, "cannot start " + program + ": " + guard.string() +
                                     " is not a child of the agent (pid " +
                                     std::to_string(::getpid()) + ")"};
  }
  return {ErrorCode::internal,
          "cannot start " + program + ": " + guard.string() + " refused its arguments (agent pid " +
              std::to_string(::getpid()) + "); is it the opsagent-guard of this agent's version?"};
}

Error resource_error(const char* what, int err) {
  if (err == EMFILE || err == ENFILE || err == ENOMEM) {
    return {ErrorCode::busy, std::string(what) + ": " + errno_text(err)};
  }
  return {ErrorCode::internal, std::string(what) + ": " + errno_text(err)};
}

bool has_nul(const std::string& s) { return s.find('\0') != std::string::npos; }

Status validate(const SpawnSpec& spec) {
  if (spec.argv.empty()) return Error{ErrorCode::usage, "empty command line"};
  if (spec.argv.front().empty() || spec.argv.front().front() != '/') {
    return Error{ErrorCode::usage, "program path must be absolute: " + spec.argv.front()};
  }
  for (const auto& arg : spec.argv) {
    // A NUL would silently cut the argument short when handed to execve.
    if (has_nul(arg)) return Error{ErrorCode::usage, "argument contains a NUL byte"};
  }
  for (const auto& entry : spec.environment) {
    if (has_nul(entry) || entry.find('=') == std::string::npos || entry.front() == '=') {
      return Error{ErrorCode::usage, "malformed environment entry"};
    }
  }
  return ok_status();
}

// Pipe ends must not sit on 0..2: if the agent ever ran with a standard descriptor closed,
// pipe2 could return 1 or 2 and the dup2 actions would clobber one pipe with the other.
Status move_above_stdio(UniqueFd& fd) {
  if (fd.get() > 2) return ok_status();
  UniqueFd moved(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3));
  if (!moved.valid()) return resource_error("fcntl", errno);
  fd = std::move(moved);
  return ok_status();
}

struct Pipe {
  UniqueFd read_end;
  UniqueFd write_end;
};

Result<Pipe> make_pipe() {
  std::array<int, 2> ends{-1, -1};
  // O_CLOEXEC: a child spawned concurrently by another thread must not inherit our ends.
  if (::pipe2(ends.data(), O_CLOEXEC) != 0) return resource_error("pipe2", errno);
  Pipe p{UniqueFd(ends[0]), UniqueFd(ends[1])};
  if (auto s = move_above_stdio(p.read_end); !s) return s.error();
  if (auto s = move_above_stdio(p.write_end); !s) return s.error();
  return p;
}

// Only our read ends become non-blocking: O_NONBLOCK lives on the open file description, and
// the write ends' descriptions are the child's stdout/stderr, which must stay blocking.
Status set_nonblocking(const UniqueFd& fd) {
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return resource_error("fcntl", errno);
  }
  return ok_status();
}

// The raw syscall: glibc 2.36's <sys/pidfd.h> lacks extern "C", so its pidfd_open cannot be
// linked from C++. The kernel always sets O_CLOEXEC on a pidfd.
int open_pidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// The child dies as soon as SIGKILL is delivered, so the blocking waitpid is short; only a
// child stuck in uninterruptible sleep (D state, e.g. dead NFS) could hold it up.
void kill_and_reap(pid_t pid) noexcept {
  ::kill(-pid, SIGKILL);
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  detail::untrack_child(pid);
}

// What the guard reports on its status pipe: end-of-file once the command has been exec'ed
// (the descriptor is close-on-exec), or the errno of the step that failed. Blocks for as long
// as the guard takes to fork and exec the command, a millisecond or so.
int read_exec_status(const UniqueFd& status) {
  std::array<char, sizeof(int)> bytes{};
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(status.get(), bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  int err = 0;
  if (got == bytes.size()) std::memcpy(&err, bytes.data(), sizeof err);
  return err;
}

// argv of the guard: its arguments, then the command's argv.
std::vector<std::string> guarded_argv(const SpawnSpec& spec) {
  std::vector<std::string> argv{spec.guard.string(), std::to_string(::getpid()),
                                std::to_string(spec.max_processes), std::to_string(spec.uid),
                                std::to_string(spec.gid)};
  argv.insert(argv.end(), spec.argv.begin(), spec.argv.end());
  return argv;
}

// A guard that could not run its command exits at once, after reaping it. Wait for that rather
// than SIGKILL it: killed, it would leave the dead command to be re-parented to us as a zombie.
// Bounded: after 2 s the guard is killed after all.
void reap_failed_guard(pid_t pid) noexcept {
  for (int i = 0; i < 2000; ++i) {
    const pid_t r = ::waitpid(pid, nullptr, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) {
      detail::untrack_child(pid);
      return;
    }
    ::usleep(1000);
  }
  kill_and_reap(pid);
}

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  // posix_spawn's prototype is not const-correct; it does not modify the strings.
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-const-cast): execve() takes char* const[], reads only
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      reaped_(std::exchange(other.reaped_, false)),
      pidfd_(std::move(other.pidfd_)),
      stdout_(std::move(other.stdout_)),
      stderr_(std::move(other.stderr_)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !reaped_) kill_and_reap(pid_);
    pid_ = std::exchange(other.pid_, -1);
    reaped_ = std::exchange(other.reaped_, false);
    pidfd_ = std::move(other.pidfd_);
    stdout_ = std::move(other.stdout_);
    stderr_ = std::move(other.stderr_);
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !reaped_) kill_and_reap(pid_);
}

void ChildProcess::signal_group(int sig) const noexcept {
  // Also meaningful after the reap: descendants left in the group keep its id alive (the kernel
  // does not reuse a pid while it names a process group), so they can still be reached.
  // ESRCH (group already empty) is the expected outcome late in a child's life.
  if (pid_ > 0) ::kill(-pid_, sig);
}

Result<ExitStatus> ChildProcess::try_reap() noexcept {
  if (pid_ <= 0) return Error{ErrorCode::internal, "no child"};
  if (reaped_) return Error{ErrorCode::internal, "already reaped"};
  int status = 0;
  pid_t r = -1;
  do {
    r = ::waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return Error{ErrorCode::internal, "running"};
  detail::untrack_child(pid_);
  if (r < 0) {
    // ECHILD: someone else reaped it (a competing SIGCHLD handler?); never wait for it again.
    reaped_ = true;
    return Error{ErrorCode::internal, "cannot reap child: " + errno_text(errno)};
  }
  reaped_ = true;
  if (WIFSIGNALED(status)) return ExitStatus{-1, WTERMSIG(status)};
  return ExitStatus{WEXITSTATUS(status), 0};
}

Result<ChildProcess> spawn(const SpawnSpec& spec) {
  if (auto s = validate(spec); !s) return s.error();
  const std::string& program = spec.argv.front();

  // The guard runs every command as the agent's user: one that others may write, or replace in
  // its directory, would run their code instead. Checked at each spawn, since the file can
  // change at any time (start-up and SIGHUP check it too, for a clear message early).
  if (!spec.guard.empty()) {
    if (auto s = check_trusted_file(spec.guard); !s) {
      return Error{ErrorCode::internal, "refusing to start commands: " + s.error().message};
    }
  }

  auto mask = process_umask();
  if (!mask) return mask.error();
  if (mask.value() != spec.umask) {
    return Error{ErrorCode::internal, "child umask " + octal(spec.umask) +
                                          " differs from the agent's umask " + octal(mask.value()) +
                                          " (set once at start-up)"};
  }

  // Opened here rather than chdir'ed by path in the child, so a bad directory gets its own
  // error instead of looking like a missing program (both would surface as ENOENT).
  UniqueFd cwd(::open(spec.working_directory.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!cwd.valid()) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      return Error{ErrorCode::notfound,
                   "no such working directory: " + spec.working_directory.string()};
    }
    return resource_error("cannot open the working directory", err);
  }

  auto out = make_pipe();
  if (!out) return out.error();
  auto err = make_pipe();
  if (!err) return err.error();
  std::optional<Pipe> status_pipe;
  if (!spec.guard.empty()) {
    auto p = make_pipe();
    if (!p) return p.error();
    status_pipe = std::move(p.value());
  }

  FileActions fa;
  if (fa.init_error != 0) return resource_error("posix_spawn_file_actions_init", fa.init_error);
  SpawnAttributes sa;
  if (sa.init_error != 0) return resource_error("posix_spawnattr_init", sa.init_error);

  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  // Reset every disposition the agent may have set to SIG_IGN (SIGPIPE above all): ignored
  // signals survive execve, handled ones do not. SIGKILL/SIGSTOP cannot be changed anyway.
  sigset_t defaults;
  sigfillset(&defaults);
  sigdelset(&defaults, SIGKILL);
  sigdelset(&defaults, SIGSTOP);

  int rc = 0;
  // Each call only fails with EINVAL/ENOMEM on valid input; stop at the first failure.
  auto step = [&rc](int result) {
    if (rc == 0) rc = result;
  };
  step(posix_spawn_file_actions_addopen(&fa.actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0));
  // dup2 clears FD_CLOEXEC on the copy, so only 1 and 2 survive the exec, not the originals.
  step(posix_spawn_file_actions_adddup2(&fa.actions, out->write_end.get(), STDOUT_FILENO));
  step(posix_spawn_file_actions_adddup2(&fa.actions, err->write_end.get(), STDERR_FILENO));
  step(posix_spawn_file_actions_addfchdir_np(&fa.actions, cwd.get()));
  // The guard's status pipe becomes its descriptor 3 (the command never sees it: close-on-exec).
  if (status_pipe) {
    step(posix_spawn_file_actions_adddup2(&fa.actions, status_pipe->write_end.get(), kStatusFd));
  }
  // close_range in the child: nothing the agent opened without O_CLOEXEC (or that another
  // thread opened a moment ago) reaches the program.
  step(posix_spawn_file_actions_addclosefrom_np(&fa.actions, status_pipe ? kStatusFd + 1 : 3));
  step(posix_spawnattr_setflags(
      &sa.attributes,
      static_cast<short>(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)));
  step(posix_spawnattr_setpgroup(&sa.attributes, 0));  // own group: one kill reaches the tree
  step(posix_spawnattr_setsigmask(&sa.attributes, &empty_mask));
  step(posix_spawnattr_setsigdefault(&sa.attributes, &defaults));
  if (rc != 0) return resource_error("posix_spawn set-up", rc);

  const std::vector<std::string> guarded = status_pipe ? guarded_argv(spec) : spec.argv;
  std::vector<char*> argv = c_strings(guarded);
  std::vector<char*> envp = c_strings(spec.environment);
  pid_t pid = -1;
  {
    // Recorded before any orphan sweep can see it (orphan_reaper.hpp).
    detail::SpawnLock lock;
    // posix_spawn, not posix_spawnp: no PATH search. glibc uses CLONE_VFORK, so the exec
    // outcome (including ENOENT/EACCES) is known when this returns.
    rc = ::posix_spawn(&pid, argv.front(), &fa.actions, &sa.attributes, argv.data(), envp.data());
    if (rc == 0) {
      try {
        detail::track_child(pid);
      } catch (...) {  // std::bad_alloc: the child is ours to end before anyone sees it
        ::kill(-pid, SIGKILL);
        while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
        }
        throw;
      }
    }
  }
  if (rc != 0) {
    if (status_pipe) {
      return Error{ErrorCode::internal,
                   "cannot start the guard " + spec.guard.string() + ": " + errno_text(rc)};
    }
    return spawn_error(rc, program);
  }

  ChildProcess child;
  child.pid_ = pid;  // from here on the destructor kills and reaps on every failure path
  out->write_end.reset();
  err->write_end.reset();
  if (status_pipe) {
    status_pipe->write_end.reset();
    // The guard could not run the command: it exits at once; report what exec said.
    if (const int exec_errno = read_exec_status(status_pipe->read_end); exec_errno != 0) {
      reap_failed_guard(pid);
      child.pid_ = -1;
      if (exec_errno < 0) return guard_error(exec_errno, spec.guard, program);
      return spawn_error(exec_errno, program);
    }
  }
  if (auto s = set_nonblocking(out->read_end); !s) return s.error();
  if (auto s = set_nonblocking(err->read_end); !s) return s.error();
  // No pid-reuse race: the child is ours and unreaped, so its pid cannot be recycled yet.
  child.pidfd_.reset(open_pidfd(pid));
  if (!child.pidfd_.valid()) return resource_error("pidfd_open", errno);
  child.stdout_ = std::move(out->read_end);
  child.stderr_ = std::move(err->read_end);
  return child;
}

}  // namespace opsagent::exec
