#pragma once
// The backstop behind opsagent-guard (agent/guard/guard_main.cpp), which normally kills what a
// command leaves behind: a guard killed by the agent's own SIGKILL cannot do that.
// Nothing a command starts may outlive it. A process group kill reaches every descendant that
// stayed in the group; one that escaped it (setsid, a double fork into a new group) is re-parented
// to the agent, which is a child subreaper, once its parent dies. A sweep then finds it by its
// parent pid, kills it and reaps it. spawn() records the children it starts so that a sweep
// never touches a command that is still running. Thread-safe.

#include <sys/types.h>
#include <vector>

#include "agent/common/error.hpp"

namespace opsagent::exec {

/// Makes this process the subreaper of its descendants (PR_SET_CHILD_SUBREAPER). Call once at
/// start-up, before anything is spawned.
Status become_subreaper();

/// Kills (SIGKILL) and reaps every process whose parent is this process and that spawn() did not
/// start. Returns the pids of those that were still alive at two looks 20 ms apart; zombies and
/// processes a kill has already reached are reaped silently. Blocking (reads /proc, sleeps when
/// it finds one): run on the blocking-work pool.
std::vector<pid_t> sweep_orphans();

namespace detail {
/// Called by spawn() while it holds the lock returned by spawn_lock(), and after each reap.
void track_child(pid_t pid);
void untrack_child(pid_t pid);
/// Held across posix_spawn and track_child, so a sweep never sees an untracked new child.
class SpawnLock {
 public:
  SpawnLock();
  ~SpawnLock();
  SpawnLock(const SpawnLock&) = delete;
  SpawnLock& operator=(const SpawnLock&) = delete;
};
}  // namespace detail

}  // namespace opsagent::exec
