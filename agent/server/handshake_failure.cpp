#include "agent/server/handshake_failure.hpp"

#include <boost/asio/ssl/error.hpp>
#include <openssl/err.h>
#include <spdlog/spdlog.h>

namespace opsagent::server {

metrics::HandshakeFailure handshake_failure_kind(const HandshakeEnd& end,
                                                 const std::optional<tls::VerifyFailure>& verify) {
  if (end.evicted) return metrics::HandshakeFailure::evicted;
  if (end.timed_out) return metrics::HandshakeFailure::timeout;
  if (verify) return metrics::HandshakeFailure::certificate;
  if (end.ec.category() == boost::asio::error::get_ssl_category() &&
      ERR_GET_REASON(static_cast<unsigned long>(end.ec.value())) ==
          SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
    return metrics::HandshakeFailure::certificate;
  }
  return metrics::HandshakeFailure::protocol;
}

void report_handshake_failure(ServerContext& ctx, SessionAudit& audit, const SessionInfo& info,
                              const std::string& source, const SSL* ssl, const HandshakeEnd& end,
                              const std::optional<tls::VerifyFailure>& stale) {
  std::string reason;
  if (stale) {
    reason = "resumed session refused: the certificate no longer verifies";
  } else if (end.evicted) {
    reason =
        "evicted: max_handshakes reached and this was the oldest pending handshake of the source "
        "with the most";
  } else if (end.timed_out) {
    reason = "handshake_timeout";
  } else {
    reason = end.ec.message();
  }
  const auto verify = stale ? stale : tls::handshake_verify_failure(ssl);
  metrics::registry().handshake_failed(handshake_failure_kind(end, verify));
  // The failed handshake may leave more entries on this thread's OpenSSL error queue than the
  // one Asio took; none of them may be seen by the next connection served on this thread.
  ERR_clear_error();
  if (ctx.preauth_audit.failure(source)) {
    ctx.audit.record("connection_accepted", {{"conn", info.id}, {"peer", info.peer}});
    audit.tls_failure(reason, verify);
    spdlog::info("conn {}: TLS handshake with {} failed: {}", info.id, info.peer, reason);
  } else {  // over the source's budget: only counted (`tls_failures_suppressed`, I8)
    spdlog::debug("conn {}: TLS handshake with {} failed: {}", info.id, info.peer, reason);
  }
}

}  // namespace opsagent::server
