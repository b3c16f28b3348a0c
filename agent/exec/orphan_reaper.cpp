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

// The state letter and parent pid from /proc/PID/stat ("pid (comm) state ppid ..."); comm may
// contain spaces and parentheses, so parse after the last ')'. Parent -1 when unreadable (the
// process is gone).
struct ProcStat {
  char state = '?';
  pid_t parent = -1;
};
ProcStat stat_of(const char* pid_text) {
  std::array<char, 64> path{};  // no allocation: see sweep_orphans()
  if (std::snprintf(path.data(), path.size(), "/proc/%s/stat", pid_text) >=
      static_cast<int>(path.size())) {
    return {};
  }
  const int fd = ::open(path.data(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::array<char, 1024> buf{};
  const ssize_t n = ::read(fd, buf.data(), buf.size() - 1);
  ::close(fd);
  if (n <= 0) return {};
  const std::string_view stat(buf.data(), static_cast<std::size_t>(n));
  const auto close_paren = stat.rfind(')');
  if (close_paren == std::string_view::npos || close_paren + 4 >= stat.size()) return {};
  // ") S 1234 ..." -> skip ") ", the state letter and a space.
  return {stat[close_paren + 2],
          static_cast<pid_t>(std::strtol(stat.data() + close_paren + 4, nullptr, 10))};
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
  const std::unique_ptr<DIR, int (*)(DIR*)> proc(::opendir("/proc"), &::closedir);
  if (!proc) return killed;
  while (const dirent* entry = ::readdir(proc.get())) {
    const char* name = entry->d_name;
    if (name[0] < '1' || name[0] > '9') continue;
    const ProcStat st = stat_of(name);
    if (st.parent != self) continue;
    const auto pid = static_cast<pid_t>(std::strtol(name, nullptr, 10));
    if (children().count(pid) != 0) continue;  // a running command's own child
    if (st.state == 'Z') {
      // Already dead: typically a command whose guard was killed with it (the group SIGKILL at a
      // timeout or disconnect) and that was re-parented to us. Reaped, not reported: nothing
      // escaped.
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
