#include "agent/exec/child_process.hpp"

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <fcntl.h>
#include <fstream>
#include <optional>
#include <poll.h>
#include <set>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

namespace opsagent::exec {
namespace {

// The umask of this process; spawn() requires SpawnSpec::umask to equal it.
mode_t current_umask() {
  const mode_t mask = ::umask(077);  // tests are single-threaded here
  ::umask(mask);
  return mask;
}

SpawnSpec spec_for(std::vector<std::string> argv, std::vector<std::string> env = {}) {
  SpawnSpec spec;
  spec.argv = std::move(argv);
  spec.environment = std::move(env);
  spec.umask = current_umask();
  return spec;
}

// Reads a non-blocking pipe until EOF with plain poll/read.
std::string read_to_eof(const UniqueFd& fd) {
  std::string out;
  char buf[4096];
  while (true) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 10'000) <= 0) {
      ADD_FAILURE() << "timed out reading the child's output";
      return out;
    }
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0) {
      return out;
    } else if (errno != EAGAIN && errno != EINTR) {
      ADD_FAILURE() << "read failed: " << errno;
      return out;
    }
  }
}

// Waits on the pidfd (readable once the child has exited), then reaps.
ExitStatus wait_for_exit(ChildProcess& child) {
  pollfd p{child.pidfd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 10'000), 1) << "child did not exit";
  auto status = child.try_reap();
  EXPECT_TRUE(status.ok()) << status.error().message;
  return status.ok() ? status.value() : ExitStatus{};
}

std::string run_for_output(const SpawnSpec& spec) {
  auto child = spawn(spec);
  if (!child.ok()) return "spawn failed: " + child.error().message;
  UniqueFd out = child->take_stdout();
  std::string text = read_to_eof(out);
  EXPECT_EQ(wait_for_exit(child.value()).code, 0);
  return text;
}

bool process_gone(pid_t pid) {
  errno = 0;
  const bool no_process = ::kill(pid, 0) != 0 && errno == ESRCH;
  const bool not_our_child = ::waitpid(pid, nullptr, WNOHANG) < 0 && errno == ECHILD;
  return no_process && not_our_child;
}

TEST(ChildProcess, ReportsTheExitCode) {
  auto ok = spawn(spec_for({"/bin/true"}));
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(wait_for_exit(ok.value()).code, 0);
  EXPECT_TRUE(ok->reaped());

  auto failing = spawn(spec_for({"/bin/false"}));
  ASSERT_TRUE(failing.ok()) << failing.error().message;
  const ExitStatus status = wait_for_exit(failing.value());
  EXPECT_EQ(status.code, 1);
  EXPECT_EQ(status.signal, 0);
}

TEST(ChildProcess, PassesExactlyTheGivenEnvironment) {
  EXPECT_EQ(run_for_output(spec_for({"/usr/bin/env"}, {"A=1"})), "A=1\n");
  EXPECT_EQ(run_for_output(spec_for({"/usr/bin/env"})), "");
}

TEST(ChildProcess, PassesArgumentsVerbatimWithoutAShell) {
  EXPECT_EQ(run_for_output(spec_for({"/usr/bin/printf", "%s|", "a b", "$HOME", "*", "'"})),
            "a b|$HOME|*|'|");
}

TEST(ChildProcess, ReadsStdinFromDevNull) {
  EXPECT_EQ(run_for_output(spec_for({"/usr/bin/readlink", "/proc/self/fd/0"})), "/dev/null\n");
}

TEST(ChildProcess, RunsInTheGivenWorkingDirectory) {
  SpawnSpec spec = spec_for({"/usr/bin/pwd"});
  spec.working_directory = "/usr/share";
  EXPECT_EQ(run_for_output(spec), "/usr/share\n");

  spec.working_directory = "/nonexistent-dir";
  auto r = spawn(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::notfound);
}

TEST(ChildProcess, ReportsAMissingProgramAsNotFound) {
  auto r = spawn(spec_for({"/nonexistent/program"}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::notfound);
  EXPECT_EQ(r.error().message, "no such program: /nonexistent/program");
}

TEST(ChildProcess, ReportsANonExecutableFileAsDenied) {
  auto file = spawn(spec_for({"/etc/hostname"}));
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().code, ErrorCode::denied);
  auto directory = spawn(spec_for({"/usr"}));
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.error().code, ErrorCode::denied);
}

TEST(ChildProcess, RejectsARelativeProgramOrEmptyCommandAsUsage) {
  auto relative = spawn(spec_for({"true"}));
  ASSERT_FALSE(relative.ok());
  EXPECT_EQ(relative.error().code, ErrorCode::usage);
  auto empty = spawn(spec_for({}));
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code, ErrorCode::usage);
  auto nul = spawn(spec_for({"/bin/true", std::string("a\0b", 3)}));
  ASSERT_FALSE(nul.ok());
  EXPECT_EQ(nul.error().code, ErrorCode::usage);
}

TEST(ChildProcess, RefusesAUmaskOtherThanTheAgents) {
  SpawnSpec spec = spec_for({"/bin/true"});
  spec.umask = static_cast<mode_t>(current_umask() ^ 0007);
  auto r = spawn(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::internal);
}

TEST(ChildProcess, MakesTheChildAProcessGroupLeader) {
  auto child = spawn(spec_for({"/usr/bin/sleep", "1000"}));
  ASSERT_TRUE(child.ok()) << child.error().message;
  EXPECT_EQ(::getpgid(child->pid()), child->pid());
  EXPECT_NE(::getpgid(child->pid()), ::getpgrp());
}

TEST(ChildProcess, ReportsRunningUntilTheChildExits) {
  auto child = spawn(spec_for({"/usr/bin/sleep", "1000"}));
  ASSERT_TRUE(child.ok()) << child.error().message;
  auto running = child->try_reap();
  ASSERT_FALSE(running.ok());
  EXPECT_EQ(running.error().message, "running");
  EXPECT_FALSE(child->reaped());
}

TEST(ChildProcess, ReportsTheSignalAfterSignalGroup) {
  auto child = spawn(spec_for({"/usr/bin/sleep", "1000"}));
  ASSERT_TRUE(child.ok()) << child.error().message;
  child->signal_group(SIGTERM);
  const ExitStatus status = wait_for_exit(child.value());
  EXPECT_EQ(status.code, -1);
  EXPECT_EQ(status.signal, SIGTERM);
  child->signal_group(SIGKILL);          // group gone: ESRCH is ignored
  EXPECT_FALSE(child->try_reap().ok());  // exactly once
}

TEST(ChildProcess, DestructorKillsAndReapsTheChild) {
  pid_t pid = -1;
  {
    auto child = spawn(spec_for({"/usr/bin/sleep", "1000"}));
    ASSERT_TRUE(child.ok()) << child.error().message;
    pid = child->pid();
  }
  EXPECT_TRUE(process_gone(pid));
}

TEST(ChildProcess, MoveTransfersOwnership) {
  auto first = spawn(spec_for({"/usr/bin/sleep", "1000"}));
  ASSERT_TRUE(first.ok()) << first.error().message;
  const pid_t first_pid = first->pid();
  ChildProcess owner(std::move(first.value()));
  EXPECT_EQ(first->pid(), -1);
  EXPECT_EQ(first->pidfd(), -1);
  EXPECT_EQ(owner.pid(), first_pid);
  EXPECT_EQ(::kill(first_pid, 0), 0);  // the moved-from husk did not kill it

  auto second = spawn(spec_for({"/usr/bin/sleep", "1000"}));
  ASSERT_TRUE(second.ok()) << second.error().message;
  const pid_t second_pid = second->pid();
  owner = std::move(second.value());  // the first child is killed and reaped
  EXPECT_TRUE(process_gone(first_pid));
  EXPECT_EQ(owner.pid(), second_pid);
  owner = ChildProcess();
  EXPECT_TRUE(process_gone(second_pid));
}

TEST(ChildProcess, DoesNotLetTheChildInheritDescriptors) {
  UniqueFd leaked(::open("/dev/null", O_RDONLY));  // deliberately without O_CLOEXEC
  ASSERT_TRUE(leaked.valid());
  UniqueFd high(::dup2(leaked.get(), 100));
  ASSERT_EQ(high.get(), 100);
  const std::string listing = run_for_output(spec_for({"/usr/bin/ls", "-1", "/proc/self/fd"}));
  std::set<int> fds;
  std::istringstream lines(listing);
  for (std::string line; std::getline(lines, line);) fds.insert(std::stoi(line));
  EXPECT_TRUE(fds.count(0) && fds.count(1) && fds.count(2)) << listing;
  EXPECT_EQ(fds.count(100), 0u) << listing;
  // Beyond 0..2 only ls's own directory descriptor may appear.
  EXPECT_LE(fds.size(), 4u) << listing;
}

TEST(ChildProcess, ResetsIgnoredAndBlockedSignals) {
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction old_pipe {};
  ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &old_pipe), 0);
  sigset_t block;
  sigset_t old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  sigaddset(&block, SIGTERM);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &block, &old_mask), 0);

  const std::string status =
      run_for_output(spec_for({"/usr/bin/grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"}));

  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGPIPE, &old_pipe, nullptr);
  std::istringstream fields(status);
  std::string blk_label, blk, ign_label, ign;
  fields >> blk_label >> blk >> ign_label >> ign;
  EXPECT_EQ(blk_label, "SigBlk:");
  EXPECT_EQ(std::stoull(blk, nullptr, 16), 0u) << status;
  EXPECT_EQ(ign_label, "SigIgn:");
  // glibc's posix_spawn sets its own internal real-time signals (32 and 33, below SIGRTMIN,
  // invisible to programs) to SIG_IGN in every child; every real signal must be at default.
  // (The agent runs every command under the guard, which resets those two as well: below.)
  std::uint64_t ignored = std::stoull(ign, nullptr, 16);
  for (int sig = 32; sig < SIGRTMIN; ++sig) ignored &= ~(std::uint64_t{1} << (sig - 1));
  EXPECT_EQ(ignored, 0u) << status;
}

TEST(ChildProcess, GivesNonBlockingCloexecPipesToTheCaller) {
  auto child = spawn(spec_for({"/bin/true"}));
  ASSERT_TRUE(child.ok()) << child.error().message;
  UniqueFd out = child->take_stdout();
  UniqueFd err = child->take_stderr();
  for (const UniqueFd* fd : {&out, &err}) {
    ASSERT_TRUE(fd->valid());
    EXPECT_NE(::fcntl(fd->get(), F_GETFL) & O_NONBLOCK, 0);
    EXPECT_NE(::fcntl(fd->get(), F_GETFD) & FD_CLOEXEC, 0);
  }
  EXPECT_NE(::fcntl(child->pidfd(), F_GETFD) & FD_CLOEXEC, 0);
  wait_for_exit(child.value());
}

// ---- under opsagent-guard (agent/guard/guard_main.cpp), as the agent runs every command ----

SpawnSpec guarded(std::vector<std::string> argv) {
  SpawnSpec spec = spec_for(std::move(argv), {"PATH=/usr/bin:/bin"});
  spec.guard = OPSAGENT_GUARD_BINARY;
  return spec;
}

bool alive(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return false;
  const auto close_paren = stat.rfind(')');
  return close_paren != std::string::npos && stat[close_paren + 2] != 'Z';
}

TEST(GuardedChild, ExitsWithTheCommandsExitCodeOrSignal) {
  auto code = spawn(guarded({"/bin/sh", "-c", "exit 7"}));
  ASSERT_TRUE(code.ok()) << code.error().message;
  const ExitStatus exited = wait_for_exit(code.value());
  EXPECT_EQ(exited.code, 7);
  EXPECT_EQ(exited.signal, 0);

  auto sig = spawn(guarded({"/bin/sh", "-c", "kill -USR1 $$"}));
  ASSERT_TRUE(sig.ok()) << sig.error().message;
  const ExitStatus killed = wait_for_exit(sig.value());
  EXPECT_EQ(killed.signal, SIGUSR1);
}

TEST(GuardedChild, CommandStartsWithEverySignalAtDefaultAndUnblocked) {
  // Unlike a direct posix_spawn (above), nothing is excused: glibc's reserved 32 and 33 too.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction old_pipe {};
  ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &old_pipe), 0);
  // cat, not grep: GNU grep installs its own SIGSEGV handler (c-stack), which SigCgt shows.
  const std::string status = run_for_output(guarded({"/bin/cat", "/proc/self/status"}));
  ::sigaction(SIGPIPE, &old_pipe, nullptr);
  std::istringstream lines(status);
  int seen = 0;
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string label, value;
    fields >> label >> value;
    if (label != "SigPnd:" && label != "ShdPnd:" && label != "SigBlk:" && label != "SigIgn:" &&
        label != "SigCgt:") {
      continue;
    }
    ++seen;
    EXPECT_EQ(std::stoull(value, nullptr, 16), 0u) << label << " " << value;
  }
  EXPECT_EQ(seen, 5) << status;
}

TEST(GuardedChild, ReportsExecFailuresLikeADirectSpawn) {
  auto missing = spawn(guarded({"/nonexistent/program"}));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::notfound) << missing.error().message;
  auto directory = spawn(guarded({"/tmp"}));
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.error().code, ErrorCode::denied) << directory.error().message;
}

TEST(GuardedChild, CommandSeesOnlyStandardDescriptorsAndItsArguments) {
  const std::string out =
      run_for_output(guarded({"/bin/sh", "-c", "ls /proc/self/fd; echo \"$0\"", "arg0"}));
  // ls itself opens one directory descriptor (3) to list the others.
  EXPECT_EQ(out, "0\n1\n2\n3\narg0\n");
}

TEST(GuardedChild, KillsWhatTheCommandLeavesBehindWhenItExits) {
  // A background child in the group and a setsid escapee: both gone when the command exits.
  auto child = spawn(
      guarded({"/bin/sh", "-c", "sleep 1000 & echo $!; setsid sleep 1000 & echo $!; sleep 0.2"}));
  ASSERT_TRUE(child.ok()) << child.error().message;
  UniqueFd out = child->take_stdout();
  std::istringstream pids(read_to_eof(out));
  EXPECT_EQ(wait_for_exit(child.value()).code, 0);
  int n = 0;
  for (pid_t pid = 0; pids >> pid; ++n) EXPECT_FALSE(alive(pid)) << pid << " outlived the command";
  EXPECT_EQ(n, 2);
}

TEST(GuardedChild, D10_SurvivesTheExitOfTheThreadThatSpawnedIt) {
  // PR_SET_PDEATHSIG fires when the spawning *thread* exits; the guard must tell that apart
  // from the death of the agent (getppid() unchanged) and keep the command running.
  std::optional<ChildProcess> child;
  std::thread([&] {
    auto c = spawn(guarded({"/bin/sleep", "1000"}));
    ASSERT_TRUE(c.ok()) << c.error().message;
    child.emplace(std::move(c.value()));
  }).join();
  ASSERT_TRUE(child.has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(alive(child->pid())) << "the guard died with the spawning thread";
  pollfd p{child->pidfd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "the command ended with the spawning thread";
  child->signal_group(SIGKILL);
  EXPECT_EQ(wait_for_exit(*child).signal, SIGKILL);
}

}  // namespace
}  // namespace opsagent::exec
