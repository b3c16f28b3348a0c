#include "agent/server/session_audit.hpp"

#include "agent/common/json_release.hpp"
#include "agent/metrics/registry.hpp"

namespace opsagent::server {
namespace {

// Built with operator[] and released on failure: see common/json_release.hpp.
nlohmann::json identity_json(const PeerIdentity& id) {
  nlohmann::json j = nlohmann::json::object();
  try {
    j["subject"] = id.subject;
    j["issuer"] = id.issuer;
    j["serial"] = id.serial;
    j["fingerprint_sha256"] = id.fingerprint_sha256;
    j["ca_fingerprints_sha256"] = id.ca_fingerprints_sha256;
    j["san_dns"] = id.san_dns;
    j["san_uri"] = id.san_uri;
    if (id.common_name) j["cn"] = *id.common_name;
  } catch (...) {
    release_json(j);
    throw;
  }
  return j;
}

}  // namespace

void SessionAudit::tls_failure(const std::string& reason,
                               const std::optional<tls::VerifyFailure>& verify) {
  nlohmann::json rec = nlohmann::json::object();
  const JsonReleaser release(rec);
  rec["conn"] = info_.id;
  rec["peer"] = info_.peer;
  rec["reason"] = reason;
  if (verify) {
    rec["verify_code"] = verify->code;
    rec["verify_error"] = verify->text;
  }
  log().record("tls_failure", std::move(rec));
}

void SessionAudit::auth_denied(const std::string& reason) {
  metrics::registry().refused(metrics::Refusal::no_identity);
  log().record("auth_denied", {{"conn", info_.id}, {"peer", info_.peer}, {"reason", reason}});
}

void SessionAudit::auth_denied_unmapped(const std::string& reason,
                                        const std::string& policy_version) {
  metrics::registry().refused(metrics::Refusal::unmapped);
  log().record("auth_denied", {{"conn", info_.id},
                               {"peer", info_.peer},
                               {"identity", identity_json(info_.identity)},
                               {"reason", reason},
                               {"policy_version", policy_version}});
}

void SessionAudit::session_refused(const std::string& reason) {
  // Admission::try_admit names the limit that was reached.
  metrics::registry().refused(reason.find("max_clients_per_identity") != std::string::npos
                                  ? metrics::Refusal::max_clients_per_identity
                                  : metrics::Refusal::max_clients);
  log().record("session_refused", {{"conn", info_.id},
                                   {"peer", info_.peer},
                                   {"principal", info_.principal.name},
                                   {"reason", reason}});
}

void SessionAudit::auth_ok(const std::string& policy_version) {
  log().record("auth_ok", {{"conn", info_.id},
                           {"peer", info_.peer},
                           {"identity", identity_json(info_.identity)},
                           {"principal", info_.principal.name},
                           {"roles", info_.principal.roles},
                           {"rule", info_.principal.rule},
                           {"policy_version", policy_version},
                           {"tls_resumed", info_.resumed}});
}

void SessionAudit::line_too_long(std::size_t limit) {
  log().record("line_too_long",
               {{"conn", info_.id}, {"principal", info_.principal.name}, {"limit", limit}});
}

void SessionAudit::session_revoked(const tls::VerifyFailure& why) {
  log().record("session_revoked", {{"conn", info_.id},
                                   {"peer", info_.peer},
                                   {"principal", info_.principal.name},
                                   {"reason", "certificate no longer verifies: " + why.text},
                                   {"verify_code", why.code},
                                   {"verify_error", why.text}});
}

void SessionAudit::session_unmapped(const std::string& reason, const std::string& policy_version) {
  log().record("session_revoked", {{"conn", info_.id},
                                   {"peer", info_.peer},
                                   {"principal", info_.principal.name},
                                   {"reason", reason},
                                   {"policy_version", policy_version}});
}

void SessionAudit::roles_changed(const std::vector<std::string>& old_roles,
                                 const std::string& policy_version) {
  log().record("session_roles_changed", {{"conn", info_.id},
                                         {"peer", info_.peer},
                                         {"principal", info_.principal.name},
                                         {"old_roles", old_roles},
                                         {"roles", info_.principal.roles},
                                         {"rule", info_.principal.rule},
                                         {"policy_version", policy_version}});
}

void SessionAudit::session_error(const char* what, bool admitted) noexcept {
  try {
    nlohmann::json rec = nlohmann::json::object();
    const JsonReleaser release(rec);
    rec["conn"] = info_.id;
    rec["peer"] = info_.peer;
    rec["error"] = what;
    if (admitted) rec["principal"] = info_.principal.name;
    log().record("session_error", std::move(rec));
  } catch (...) {  // the memory for the record is what was missing: nothing more to do
  }
}

void SessionAudit::disconnect(const std::string& reason, std::uint64_t commands,
                              std::chrono::milliseconds duration,
                              std::size_t partial_line_bytes) noexcept {
  try {
    nlohmann::json rec = nlohmann::json::object();
    const JsonReleaser release(rec);
    rec["conn"] = info_.id;
    rec["peer"] = info_.peer;
    rec["principal"] = info_.principal.name;
    rec["reason"] = reason;
    rec["commands"] = commands;
    rec["duration_ms"] = duration.count();
    if (partial_line_bytes > 0) rec["partial_line_bytes"] = partial_line_bytes;
    log().record("disconnect", std::move(rec));
  } catch (...) {  // no memory for the record: nothing more to do
  }
}

}  // namespace opsagent::server
