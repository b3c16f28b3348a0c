#pragma once
// Agent-wide admission counters: pending handshakes, authenticated clients (globally and per
// principal) and running children. Thread-safe: every member takes the internal mutex.

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "agent/config/agent_config.hpp"

namespace opsagent::server {

class Admission {
 public:
  struct Limits {
    int max_handshakes = 64;
    int max_clients = 64;
    int max_clients_per_identity = 8;
    int max_children = 16;
    int max_file_ops_per_identity = 2;

    /// The configuration's limits, by name.
    static Limits from(const config::Limits& l) {
      return Limits{.max_handshakes = l.max_handshakes,
                    .max_clients = l.max_clients,
                    .max_clients_per_identity = l.max_clients_per_identity,
                    .max_children = l.max_children,
                    .max_file_ops_per_identity = l.max_file_ops_per_identity};
    }
  };
  explicit Admission(Limits limits) : limits_(limits) {}

  /// New limits (a reload): they apply to the next admission; nothing admitted is undone.
  void set_limits(Limits limits);

  /// A new connection id (1, 2, ...), for logs and audit records.
  std::uint64_t next_connection_id();

  /// Reserves a pre-authentication slot; false when max_handshakes are in progress.
  bool try_begin_handshake();
  void end_handshake();
  /// Takes a pre-authentication slot even at the limit (after evicting another connection).
  void force_begin_handshake();

  /// Why admission failed, or empty when admitted.
  std::string try_admit(const std::string& principal);
  void release(const std::string& principal);

  /// Reserves a child slot; false at max_children.
  bool try_reserve_child();
  void release_child();

  /// Reserves a blocking-work slot (hash, tail) for `principal`; false at its limit.
  bool try_reserve_blocking(const std::string& principal);
  void release_blocking(const std::string& principal);

  /// Snapshot counters, for tests and status.
  struct Counts {
    int handshakes = 0;
    int clients = 0;
    int children = 0;
  };
  Counts counts() const;

 private:
  mutable std::mutex mutex_;
  Limits limits_;                             // GUARDED_BY(mutex_)
  std::uint64_t next_id_ = 0;                 // GUARDED_BY(mutex_)
  int handshakes_ = 0;                        // GUARDED_BY(mutex_)
  int clients_ = 0;                           // GUARDED_BY(mutex_)
  int children_ = 0;                          // GUARDED_BY(mutex_)
  std::map<std::string, int> per_principal_;  // GUARDED_BY(mutex_)
  std::map<std::string, int> blocking_;       // GUARDED_BY(mutex_)
};

}  // namespace opsagent::server
