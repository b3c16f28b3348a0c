#include "agent/exec/orphan_reaper.hpp"

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>

#include "agent/common/c_ptr.hpp"
#include "agent/common/errno_text.hpp"
#include "agent/common/parse_number.hpp"
#include "agent/common/proc_stat.hpp"

namespace opsagent::exec {
namespace {

std::mutex& children_mutex() {
  static std::mutex m;
  return m;
}

std::set<pid_t>& children() {  // GUARDED_BY(children_mutex())
  static std::set<pid_t> s;
  return s;
}

}  // namespace

Status become_subreaper() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    return Error{ErrorCode::internal,
                 std::string("PR_SET_CHILD_SUBREAPER: ") + common::errno_text(errno)};
  }
  return ok_status();
}

namespace {

// How long a process that looks alive is given to show that a SIGKILL already reached it. Between
// taking a pending SIGKILL off its queue and marking itself exiting (PF_EXITING), a process shows
// neither mark for a moment; on a busy machine it can be preempted in that moment. Anything killed
// is gone or a zombie well within this.
constexpr auto kSecondLook = std::chrono::milliseconds(20);

// True when process `name` (its /proc directory; `pid` the same number) is an orphan of ours
// that is alive and shows no sign of a kill on its way. One already dead is reaped. Call with
// children_mutex() held.
bool live_orphan(const char* name, pid_t pid, pid_t self) {
  const auto st = read_proc_stat(name);
  if (!st || st->parent != self) return false;
  if (pid <= 1) return false;                  // never a process group, never init
  if (children().contains(pid)) return false;  // a running command's own child
  if (st->dying()) {
    // Dead or dying: typically a command whose guard was killed with it (the group SIGKILL at a
    // timeout or disconnect) and that was re-parented to us when the guard went first. A zombie
    // is reaped now, one still exiting by a later sweep; neither is reported: nothing escaped,
    // the group kill reached it.
    ::waitpid(pid, nullptr, WNOHANG);
    return false;
  }
  return true;
}

bool live_orphan(pid_t pid, pid_t self) {
  std::array<char, 16> name{};
  (void)std::snprintf(name.data(), name.size(), "%d", static_cast<int>(pid));
  return live_orphan(name.data(), pid, self);
}

// Every live orphan of ours in /proc. Call with children_mutex() held.
std::vector<pid_t> live_orphans(pid_t self) {
  std::vector<pid_t> live;
  // Owned, so that std::bad_alloc from push_back() cannot leak the directory descriptor.
  const CPtr<DIR, ::closedir> proc(::opendir("/proc"));
  if (!proc) return live;
  // NOLINTNEXTLINE(concurrency-mt-unsafe): readdir() is safe on a stream no other thread reads
  while (const dirent* entry = ::readdir(proc.get())) {
    const char* name = entry->d_name;
    if (name[0] < '1' || name[0] > '9') continue;
    const pid_t pid = parse_decimal<pid_t>(name).value_or(0);
    if (live_orphan(name, pid, self)) live.push_back(pid);
  }
  return live;
}

}  // namespace

std::vector<pid_t> sweep_orphans() {
  const pid_t self = ::getpid();
  std::vector<pid_t> suspects;
  {
    std::lock_guard lock(children_mutex());
    suspects = live_orphans(self);
  }
  if (suspects.empty()) return suspects;
  // A second look before killing and reporting (see kSecondLook); spawns are not held up by it.
  // A suspect cannot turn into a tracked child meanwhile unless it dies, is reaped and its pid is
  // reused by a spawn, which the second look under the lock sees.
  std::this_thread::sleep_for(kSecondLook);
  std::lock_guard lock(children_mutex());
  std::vector<pid_t> killed = std::move(suspects);
  std::erase_if(killed, [self](pid_t pid) { return !live_orphan(pid, self); });
  for (const pid_t pid : killed) ::kill(pid, SIGKILL);
  // Reap what is already dead; the rest is reaped by a later sweep (SIGKILL is not instant).
  for (const pid_t pid : killed) ::waitpid(pid, nullptr, WNOHANG);
  return killed;
}

namespace detail {

void track_child(pid_t pid) { children().insert(pid); }

void untrack_child(pid_t pid) {
  std::lock_guard lock(children_mutex());
  children().erase(pid);
}

SpawnLock::SpawnLock() { children_mutex().lock(); }
SpawnLock::~SpawnLock() { children_mutex().unlock(); }

}  // namespace detail
}  // namespace opsagent::exec
