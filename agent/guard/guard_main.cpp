// opsagent-guard: the parent of every command the agent runs, and the reason nothing a command
// starts can outlive the agent, even when the agent is killed with SIGKILL.
//
//   opsagent-guard AGENT_PID MAX_PROCESSES UID GID PROGRAM [ARG...]
//
// The agent posix_spawns this program (its own process group, clean environment, stdin
// /dev/null, stdout/stderr pipes, descriptor 3 = the write end of a CLOEXEC status pipe). The
// guard then
//   1. becomes a child subreaper, so every descendant of the command, including ones that
//      escape the process group with setsid, is re-parented to the guard, never to init;
//   2. asks for SIGTERM when its parent dies (PR_SET_PDEATHSIG) and checks getppid() afterwards,
//      so an agent that died before that point is noticed too. The signal is per *thread*: it
//      also arrives when the agent thread that spawned us exits while the agent lives on, so a
//      SIGTERM only means "agent gone" when getppid() is no longer AGENT_PID;
//   3. forks the command: in the child, applies RLIMIT_NPROC (MAX_PROCESSES > 0), drops to
//      UID/GID (when not -1), resets every signal (1 to SIGRTMAX, glibc's reserved ones
//      included) to its default disposition with an empty mask, then execve()s PROGRAM with the
//      environment it was given. An exec failure is written to descriptor 3 as an int errno, so the
//      agent can report it exactly as it would report its own posix_spawn failure; on success the
//      descriptor closes (CLOEXEC) and the agent reads end-of-file;
//   4. waits. When the command exits, everything left (its process group, escapees) is killed
//      with SIGKILL and reaped, and the guard ends the way the command did (same exit code, or
//      the same signal), so the agent sees the command's status. When the agent dies, the guard
//      kills and reaps the whole tree and exits.
//
// The agent's own group signals (SIGTERM at a timeout, SIGKILL after the grace period) reach the
// guard too, since it leads the group: SIGTERM is ignored while the agent lives (the command got
// it as well), SIGKILL ends the guard, and the agent's orphan sweep then finds any escapee.
//
// Single-threaded and dependency-free on purpose: only async-signal-safe calls between fork and
// exec, no allocation after start-up except in argument parsing.

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <initializer_list>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/common/parse_number.hpp"
#include "agent/common/proc_stat.hpp"

namespace {

using opsagent::parse_decimal;
using opsagent::read_proc_stat;

constexpr int kStatusFd = 3;
constexpr int kGuardFailure = 126;  // guard could not start the command (reported on fd 3 too)
// Reported on fd 3 instead of an errno (negative, so never confused with one); the agent names
// them (exec/child_process.cpp).
constexpr int kGuardUsage = -1;     // bad arguments: the agent and the guard disagree
constexpr int kGuardNotChild = -2;  // our parent is not AGENT_PID (the agent died meanwhile)

// Parses a decimal integer; false on anything else.
bool parse_long(const char* text, long& out) {
  const auto value = text == nullptr ? std::nullopt : parse_decimal<long>(text);
  if (!value) return false;
  out = *value;
  return true;
}

void report_errno(int err) {
  // One int, atomically (< PIPE_BUF). Nothing to do if the agent stopped listening.
  const ssize_t n = ::write(kStatusFd, &err, sizeof err);
  (void)n;
}

// SIGKILLs every process in our process group (the command and what stayed with it) and every
// process whose parent is us (what escaped the group was re-parented to us, the subreaper).
// kill(-pgid) would not do: it would kill the guard too.
void kill_descendants() {
  const pid_t self = ::getpid();
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return;
  // NOLINTNEXTLINE(concurrency-mt-unsafe): readdir() is safe on a stream no other thread reads
  while (const dirent* entry = ::readdir(proc)) {
    if (entry->d_name[0] < '1' || entry->d_name[0] > '9') continue;
    const auto stat = read_proc_stat(entry->d_name);
    const pid_t pid = parse_decimal<pid_t>(entry->d_name).value_or(0);
    if (!stat || pid <= 1 || pid == self) continue;
    if (stat->parent == self || stat->group == self) ::kill(pid, SIGKILL);
  }
  ::closedir(proc);
}

// Kills and reaps the whole tree. No children left means no descendants left (an orphan is
// re-parented to us), which is the common case and needs no /proc scan. Each round catches what
// the previous one re-parented to us; bounded, since a process sent SIGKILL cannot fork again.
void kill_tree() {
  for (int round = 0; round < 64; ++round) {
    int status = 0;
    pid_t r = 0;
    while ((r = ::waitpid(-1, &status, WNOHANG)) > 0) {
    }
    if (r < 0 && errno == ECHILD) return;
    kill_descendants();
    ::waitpid(-1, &status, 0);  // wait for one to die, then look again
  }
}

// Puts every signal, 1 to the kernel's last real-time signal, back to its default disposition
// and unblocks them all; false (errno set) on failure. Ignored dispositions and the mask survive
// execve, so this is what a command starts with. glibc cannot do it: its sigaction() refuses the
// two real-time signals it reserves (32 and 33, below SIGRTMIN), and its posix_spawn, which
// started us, sets exactly those two to SIG_IGN in the child. So the kernel's calls are used
// directly. An all-zero kernel `struct sigaction` is SIG_DFL with no flags and an empty mask on
// every architecture, whatever the order of its fields; the buffer is larger than any of them.
bool reset_every_signal() {
  const unsigned long defaults[8] = {};
  const unsigned long empty_mask[4] = {};                        // at least (_NSIG - 1) / 8 bytes
  constexpr unsigned long kKernelSigsetBytes = (_NSIG - 1) / 8;  // 64 signals: 8 bytes
  for (int sig = 1; sig < _NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;  // fixed at default by the kernel
    if (::syscall(SYS_rt_sigaction, sig, defaults, nullptr, kKernelSigsetBytes) != 0) return false;
  }
  return ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, empty_mask, nullptr, kKernelSigsetBytes) == 0;
}

[[noreturn]] void exit_like(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const struct rlimit no_core { 0, 0 };
    ::setrlimit(RLIMIT_CORE, &no_core);
    (void)::signal(sig, SIG_DFL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, sig);
    ::pthread_sigmask(SIG_UNBLOCK, &only, nullptr);
    ::kill(::getpid(), sig);
    _exit(128 + sig);  // a signal that does not terminate
  }
  _exit(WIFEXITED(status) ? WEXITSTATUS(status) : kGuardFailure);
}

}  // namespace

int main(int argc, char** argv) {
  long agent_pid = 0;
  long max_processes = 0;
  long uid = -1;
  long gid = -1;
  // AGENT_PID 1 is allowed: an agent that is the init of its container (docker run without
  // --init). The pid identifies the parent whose death we must notice; for PID 1 the kernel does
  // that for us, since the end of a namespace's init SIGKILLs every process in it, the guard and
  // its tree included. Below 1 is never a process. That our parent really is AGENT_PID is
  // checked below (getppid), so a stray 1 from anyone else is refused there.
  if (argc < 6 || !parse_long(argv[1], agent_pid) || !parse_long(argv[2], max_processes) ||
      !parse_long(argv[3], uid) || !parse_long(argv[4], gid) || agent_pid < 1 ||
      max_processes < 0 || argv[5][0] != '/') {
    static const char kUsage[] =
        "usage: opsagent-guard AGENT_PID MAX_PROCESSES UID GID /PROGRAM [ARG...]\n"
        "(started by opsagent for every command; not meant to be run by hand)\n";
    const ssize_t n = ::write(STDERR_FILENO, kUsage, sizeof kUsage - 1);
    (void)n;
    report_errno(kGuardUsage);
    return kGuardFailure;
  }

  // dup2 gave us the status pipe without close-on-exec; the command must not inherit it (the
  // agent reads end-of-file exactly when the command has been exec'ed).
  if (::fcntl(kStatusFd, F_SETFD, FD_CLOEXEC) != 0) return kGuardFailure;

  // The signals we wait for synchronously. Blocked before PDEATHSIG is armed, so none is lost.
  sigset_t waited;
  sigemptyset(&waited);
  for (const int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT}) sigaddset(&waited, sig);
  ::pthread_sigmask(SIG_BLOCK, &waited, nullptr);

  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0 || ::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) {
    report_errno(errno);
    return kGuardFailure;
  }
  // The agent may have died between our fork and the prctl: then no signal will ever come.
  if (::getppid() != agent_pid) {
    report_errno(kGuardNotChild);
    return kGuardFailure;
  }

  const pid_t command = ::fork();
  if (command < 0) {
    report_errno(errno);
    return kGuardFailure;
  }
  if (command == 0) {
    // The command: async-signal-safe calls only. Same process group as the guard.
    if (max_processes > 0) {
      const struct rlimit limit {
        static_cast<rlim_t>(max_processes), static_cast<rlim_t>(max_processes)
      };
      if (::setrlimit(RLIMIT_NPROC, &limit) != 0) {
        report_errno(errno);
        _exit(kGuardFailure);
      }
    }
    if (gid >= 0) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(static_cast<gid_t>(gid)) != 0) {
        report_errno(errno);
        _exit(kGuardFailure);
      }
    }
    if (uid >= 0 && ::setuid(static_cast<uid_t>(uid)) != 0) {
      report_errno(errno);
      _exit(kGuardFailure);
    }
    ::prctl(PR_SET_PDEATHSIG, 0);  // not inherited anyway; the command gets no surprises
    if (!reset_every_signal()) {
      report_errno(errno);
      _exit(kGuardFailure);
    }
    ::execve(argv[5], argv + 5, environ);
    report_errno(errno);
    _exit(127);
  }
  ::close(kStatusFd);  // the agent reads EOF once the command has exec'ed (or failed)

  for (;;) {
    siginfo_t info{};
    const int sig = ::sigwaitinfo(&waited, &info);
    if (sig < 0) continue;  // EINTR
    if (sig == SIGCHLD) {
      int status = 0;
      pid_t reaped = 0;
      while ((reaped = ::waitpid(-1, &status, WNOHANG)) > 0) {
        if (reaped == command) {
          kill_tree();  // nothing the command started outlives it
          exit_like(status);
        }
      }
      continue;
    }
    // SIGTERM & co.: the agent's own timeout signal reaches the whole group, the command
    // included, and needs nothing from us. Only a changed parent means the agent is gone.
    if (::getppid() != agent_pid) {
      kill_tree();
      return kGuardFailure;
    }
  }
}
