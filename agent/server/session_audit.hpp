#pragma once
// The audit records of a connection's life (docs/audit.md): handshake failure, authentication,
// admission, revocation, failure and disconnect. Every record names the connection, the peer and,
// once known, the principal, the same way.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "agent/audit/audit_log.hpp"
#include "agent/audit/record_batch.hpp"
#include "agent/server/session_info.hpp"
#include "agent/tls/chain_check.hpp"

namespace opsagent::server {

/// Writes one session's records. Used on the session's strand; AuditLog itself is thread-safe.
/// Like AuditLog::record, no member throws for a failed write; those that build documents may
/// throw std::bad_alloc, which ends the session (H5), except session_error(), which never throws.
class SessionAudit {
 public:
  /// `held`: the session's batch of held records, queued before any record here (the session's
  /// order).
  SessionAudit(audit::AuditLog& log, const SessionInfo& info, audit::RecordBatch* held = nullptr)
      : log_(log), info_(info), held_(held) {}

  /// `tls_failure`: the TLS handshake failed, timed out or was evicted.
  void tls_failure(const std::string& reason, const std::optional<tls::VerifyFailure>& verify);
  /// `auth_denied` before an identity could be read from the certificate.
  void auth_denied(const std::string& reason);
  /// `auth_denied` for a readable identity that the policy does not map.
  void auth_denied_unmapped(const std::string& reason, const std::string& policy_version);
  /// `session_refused`: authenticated, but over a connection limit.
  void session_refused(const std::string& reason);
  /// `auth_ok`: authenticated and admitted as info.principal.
  void auth_ok(const std::string& policy_version);
  /// `line_too_long`: the client sent a line over `limit` bytes.
  void line_too_long(std::size_t limit);
  /// `session_revoked`: the certificate no longer verifies after a reload.
  void session_revoked(const tls::VerifyFailure& why);
  /// `session_revoked`: the reloaded policy no longer maps the certificate to the principal.
  void session_unmapped(const std::string& reason, const std::string& policy_version);
  /// `session_roles_changed`: the reloaded policy gives the principal other roles, which apply
  /// from its next command.
  void roles_changed(const std::vector<std::string>& old_roles, const std::string& policy_version);
  /// `session_error`: an exception ended the session. Best effort, never throws.
  void session_error(const char* what, bool admitted) noexcept;
  /// `disconnect`: an authenticated session ended for `reason`. Best effort, never throws.
  void disconnect(const std::string& reason, std::uint64_t commands,
                  std::chrono::milliseconds duration, std::size_t partial_line_bytes) noexcept;

 private:
  audit::AuditLog& log() noexcept {
    if (held_ != nullptr) held_->queue();
    return log_;
  }
  audit::AuditLog& log_;
  const SessionInfo& info_;
  audit::RecordBatch* held_;
};

}  // namespace opsagent::server
