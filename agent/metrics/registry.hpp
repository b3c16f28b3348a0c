#pragma once
// The agent's metrics: lock-free counters, gauges and histograms, incremented where the matching
// audit events are produced, and rendered in the Prometheus text format (version 0.0.4) with
// node_exporter's conventions: `opsagent_` prefix, `_total` counters, `_seconds` histograms,
// base units. Label values come from fixed sets (verbs of the table, reasons below), so the
// number of series is bounded whatever clients send.
//
// Thread-safety: every member may be updated from any thread. Updates are relaxed atomics (no
// ordering between metrics is promised); a scrape reads each value once.
//
// Counters and histograms are sharded: a thread adds to its own shard (each on its own cache
// line) and a scrape sums the shards. Every command updates three of them; with one shared line
// each, the I/O threads passed those lines back and forth between their cores on every command
// (issue 13: the locked adds were 40 % of the dispatcher's own time at pipelined load).

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/protocol/verbs.hpp"

namespace opsagent::metrics {

/// Shards per counter or histogram: threads are spread over them round-robin, in the order they
/// first update a metric. More threads than shards share, still correctly (atomic adds).
inline constexpr std::size_t kShards = 8;
/// A cache line: shards on separate lines are updated by their threads without contention.
inline constexpr std::size_t kCacheLine = 64;

/// The calling thread's shard, fixed at its first call.
std::size_t this_thread_shard() noexcept;

class Counter {
 public:
  void inc(std::uint64_t n = 1) noexcept {
    shards_[this_thread_shard()].value.fetch_add(n, std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t value() const noexcept;

 private:
  struct alignas(kCacheLine) Shard {
    std::atomic<std::uint64_t> value{0};
  };
  std::array<Shard, kShards> shards_{};
};

class Gauge {
 public:
  void add(std::int64_t n) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  [[nodiscard]] std::int64_t value() const noexcept {
    return value_.load(std::memory_order_relaxed);
  }

 private:
  std::atomic<std::int64_t> value_{0};
};

/// Upper bounds of the duration buckets, in seconds (the +Inf bucket is implicit).
inline constexpr std::array<double, 12> kDurationBuckets = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5,
                                                            1,     5,     10,   30,   60,  300};

class Histogram {
 public:
  void observe(std::chrono::nanoseconds d) noexcept;
  /// Observations <= kDurationBuckets[i] (cumulative); i == size(): all of them.
  [[nodiscard]] std::uint64_t cumulative(std::size_t i) const noexcept;
  [[nodiscard]] double sum_seconds() const noexcept;

 private:
  struct alignas(kCacheLine) Shard {
    std::array<std::atomic<std::uint64_t>, kDurationBuckets.size() + 1> buckets{};
    std::atomic<std::uint64_t> sum_ns{0};
  };
  std::array<Shard, kShards> shards_{};
};

/// Why an authenticated-or-not connection was turned away (label `reason`).
enum class Refusal {
  max_handshakes,            ///< too many pending handshakes
  no_identity,               ///< no usable identity in the certificate
  unmapped,                  ///< no identity rule maps the certificate
  max_clients,               ///< the agent-wide client limit
  max_clients_per_identity,  ///< the principal's client limit
};
inline constexpr std::size_t kRefusals = 5;

/// How a TLS handshake failed (label `reason`).
enum class HandshakeFailure {
  timeout,      ///< timeouts.handshake passed
  evicted,      ///< evicted to make room (max_handshakes)
  certificate,  ///< the client certificate did not verify (or was missing)
  protocol,     ///< any other TLS or connection error
};
inline constexpr std::size_t kHandshakeFailures = 4;

/// What the gate decided (label `decision`).
enum class Decision { allow, deny, reject };
inline constexpr std::size_t kDecisions = 3;

/// What a reload step reloaded (label `what`) and whether it worked (label `result`).
enum class ReloadPart { config, policy, tls };
inline constexpr std::size_t kReloadParts = 3;

/// One slot per verb of the table plus one for lines naming no verb (label `verb="unknown"`).
inline constexpr std::size_t kVerbSlots = static_cast<std::size_t>(protocol::Verb::quit) + 2;
/// The slot of `verb` (a verb of the table, or nullptr for unknown).
std::size_t verb_slot(const protocol::VerbSpec* verb) noexcept;

struct Registry {
  Counter connections;  ///< TCP connections accepted
  std::array<Counter, kRefusals> refusals;
  std::array<Counter, kHandshakeFailures> handshake_failures;
  std::array<Counter, 2> handshakes;  ///< completed: [0] full, [1] resumed
  std::array<std::array<Counter, kDecisions>, kVerbSlots> commands;
  std::array<Histogram, kVerbSlots> command_duration;
  Counter reply_bytes;           ///< bytes of replies written to clients
  Gauge blocking_queue;          ///< blocking-pool jobs posted and not yet started
  Counter audit_write_failures;  ///< audit records that could not be written
  /// Copies of audit records shipped: [sink 0 journald, 1 syslog][0 sent, 1 dropped]
  std::array<std::array<Counter, 2>, 2> audit_shipped;
  std::array<std::array<Counter, 2>, kReloadParts> reloads;  ///< [part][0 success, 1 failure]

  void refused(Refusal r) noexcept { refusals[static_cast<std::size_t>(r)].inc(); }
  void handshake_failed(HandshakeFailure f) noexcept {
    handshake_failures[static_cast<std::size_t>(f)].inc();
  }
  void handshake_done(bool resumed) noexcept { handshakes[resumed ? 1 : 0].inc(); }
  void command(const protocol::VerbSpec* verb, Decision d) noexcept {
    commands[verb_slot(verb)][static_cast<std::size_t>(d)].inc();
  }
  void reloaded(ReloadPart part, bool ok) noexcept {
    reloads[static_cast<std::size_t>(part)][ok ? 0 : 1].inc();
  }
};

/// The process-wide registry (like a Prometheus client's default registry).
Registry& registry() noexcept;

/// Values read when scraped rather than counted: they already exist elsewhere.
struct ScrapeState {
  std::int64_t connections_active = 0;  ///< authenticated sessions
  std::int64_t handshakes_active = 0;   ///< connections still in their TLS handshake
  std::int64_t children_active = 0;     ///< running commands
  std::string policy_version;           ///< of the policy in force
  std::string version;                  ///< the agent's own version
};

/// The Prometheus text exposition of `r` and `state`.
std::string render(const Registry& r, const ScrapeState& state);

}  // namespace opsagent::metrics
