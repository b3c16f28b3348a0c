#pragma once
// What a failed TLS handshake leaves behind: the `reason` of opsagent_handshake_failures_total,
// a clean OpenSSL error queue, and (within the pre-authentication budget, I8) its audit records
// and log line.

#include <optional>
#include <string>

#include <boost/system/error_code.hpp>
#include <openssl/ssl.h>

#include "agent/metrics/registry.hpp"
#include "agent/server/server_context.hpp"
#include "agent/server/session_audit.hpp"
#include "agent/tls/chain_check.hpp"

namespace opsagent::server {

/// How a handshake ended without a secured connection.
struct HandshakeEnd {
  bool evicted = false;          ///< to make room for others (max_handshakes)
  bool timed_out = false;        ///< timeouts.handshake passed
  boost::system::error_code ec;  ///< the TLS error otherwise
};

/// The metric's reason: evicted, timeout, a certificate the chain check refused (`verify`), or
/// protocol for any other TLS error.
metrics::HandshakeFailure handshake_failure_kind(const HandshakeEnd& end,
                                                 const std::optional<tls::VerifyFailure>& verify);

/// Counts the failure, clears this thread's OpenSSL error queue, and writes
/// `connection_accepted` + `tls_failure` and an info line when `source` is within its budget
/// (otherwise only counted for `tls_failures_suppressed`). `ssl` is the failed connection;
/// `stale`: a resumed session whose chain no longer verifies (the handshake itself completed).
void report_handshake_failure(ServerContext& ctx, SessionAudit& audit, const SessionInfo& info,
                              const std::string& source, const SSL* ssl, const HandshakeEnd& end,
                              const std::optional<tls::VerifyFailure>& stale = std::nullopt);

}  // namespace opsagent::server
