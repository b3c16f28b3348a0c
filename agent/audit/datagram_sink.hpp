#pragma once
// Ships copies of written audit records to a local daemon (journald or syslog) over an AF_UNIX
// SOCK_DGRAM socket. Called by the audit writer thread after a batch is in the file; the file
// stays the source of truth. Every send is non-blocking (MSG_DONTWAIT): a missing, stopped or
// full daemon costs a dropped copy, counted in opsagent_audit_shipped_total{result="dropped"},
// never a wait. A lost connection is retried at most once per second, so shipping resumes when
// the daemon comes back. See docs/audit.md#shipping.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/audit/record_fields.hpp"
#include "agent/common/unique_fd.hpp"

namespace opsagent::audit {

/// Which protocol a sink speaks (and its `sink` metric label).
enum class ShipFormat { journald = 0, syslog = 1 };

struct SinkOptions {
  ShipFormat format = ShipFormat::journald;
  std::string socket;  ///< the daemon's socket path
  int facility = 10;   ///< syslog facility (authpriv); journald gets it as SYSLOG_FACILITY
  std::string sd_id;   ///< syslog: the SD-ID (syslog_encoder.hpp's kDefaultSdId when empty)
  std::size_t max_datagram = std::size_t{192} << 10;  ///< larger copies are dropped, not sent
  std::chrono::milliseconds reconnect_interval{1000};
  std::chrono::milliseconds log_interval{10'000};  ///< at most one drop message this often
};

/// Not thread-safe: the writer thread owns it.
class DatagramSink {
 public:
  explicit DatagramSink(SinkOptions options);
  DatagramSink(const DatagramSink&) = delete;
  DatagramSink& operator=(const DatagramSink&) = delete;
  ~DatagramSink() = default;

  /// Encodes and sends one record (`line` without its LF, `fields` scanned from it). Never
  /// blocks, never throws: a copy that cannot be sent now is dropped and counted.
  void ship(std::string_view line, const RecordFields& fields) noexcept;

  [[nodiscard]] const char* name() const noexcept;

 private:
  bool connect_now() noexcept;
  void dropped(const char* why, int err, bool disconnected) noexcept;
  bool may_log(std::chrono::steady_clock::time_point now) noexcept;

  const SinkOptions options_;
  UniqueFd fd_;
  std::string datagram_;
  std::chrono::steady_clock::time_point next_connect_{};
  std::chrono::steady_clock::time_point last_log_{};
  std::uint64_t drops_since_log_ = 0;
  bool disconnected_ = false;  // no daemon since the last successful send: log when it resumes
};

}  // namespace opsagent::audit
