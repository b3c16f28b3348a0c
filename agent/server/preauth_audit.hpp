#pragma once
// Bounds what unauthenticated peers can write to the audit log (SECURITY-MATRIX I8). A connection
// is audited once its TLS handshake ends: one that succeeds always is (`connection_accepted`,
// then authentication); one that fails is audited in full (`connection_accepted` and
// `tls_failure`, or `connection_refused`) only within a budget per interval: kBurst per source
// address and kGlobalBurst in all. Beyond it, failures are only counted, and flush() writes one
// `tls_failures_suppressed` record per source with the count. At most kMaxSources addresses are
// counted separately per interval; further ones share the peer kOtherSources.

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "agent/audit/audit_log.hpp"

namespace opsagent::server {

class PreAuthAudit {
 public:
  static constexpr int kBurst = 20;
  static constexpr int kGlobalBurst = 100;
  static constexpr std::chrono::seconds kInterval{60};
  static constexpr std::size_t kMaxSources = 1024;
  static constexpr const char* kOtherSources = "other";

  explicit PreAuthAudit(audit::AuditLog& log) : log_(log) {}

  /// A connection from `source` (an address, no port) failed or was refused before it
  /// authenticated. True when its records are to be written in full; false when it was counted
  /// for `tls_failures_suppressed` instead (or could not be counted for lack of memory).
  /// Thread-safe.
  bool failure(const std::string& source) noexcept;
  /// flush() once kInterval has passed since the last one. Thread-safe.
  void tick() noexcept;
  /// Writes one `tls_failures_suppressed` per source with suppressed failures and starts a new
  /// interval. Thread-safe; also called at shutdown.
  void flush() noexcept;

 private:
  struct Source {
    int failures = 0;              // this interval
    std::uint64_t suppressed = 0;  // of them, not audited in full
  };

  audit::AuditLog& log_;
  std::mutex mutex_;
  std::map<std::string, Source> sources_;  // GUARDED_BY(mutex_)
  int failures_ = 0;                       // GUARDED_BY(mutex_), this interval, every source
  std::chrono::steady_clock::time_point interval_start_ =
      std::chrono::steady_clock::now();  // GUARDED_BY(mutex_)
};

}  // namespace opsagent::server
