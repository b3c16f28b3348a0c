#include "agent/exec/orphan_reaper.hpp"

#include <array>
#include <cerrno>
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
#include <unistd.h>

#include "agent/common/c_ptr.hpp"
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
                 std::string("PR_SET_CHILD_SUBREAPER: ") + std::strerror(errno)};
  }
  return ok_status();
}

std::vector<pid_t> sweep_orphans() {
  std::vector<pid_t> killed;
  const pid_t self = ::getpid();
  std::lock_guard lock(children_mutex());
  // Owned, so that std::bad_alloc from push_back() cannot leak the directory descriptor.
  const CPtr<DIR, ::closedir> proc(::opendir("/proc"));
  if (!proc) return killed;
  while (const dirent* entry = ::readdir(proc.get())) {
    const char* name = entry->d_name;
    if (name[0] < '1' || name[0] > '9') continue;
    const auto st = read_proc_stat(name);
    if (!st || st->parent != self) continue;
    const pid_t pid = parse_decimal<pid_t>(name).value_or(0);
    if (pid <= 1) continue;                    // never a process group, never init
    if (children().count(pid) != 0) continue;  // a running command's own child
    if (st->dying()) {
      // Dead or dying: typically a command whose guard was killed with it (the group SIGKILL at
      // a timeout or disconnect) and that was re-parented to us when the guard went first. A
      // zombie is reaped now, one still exiting by a later sweep; neither is reported: nothing
      // escaped, the group kill reached it.
      ::waitpid(pid, nullptr, WNOHANG);
      continue;
    }
    ::kill(pid, SIGKILL);
    killed.push_back(pid);
  }
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
