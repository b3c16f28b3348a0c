#pragma once
// The reply to a command refused, or an OK withdrawn, because the audit trail could not record
// it (fail closed).

namespace opsagent::server {

inline constexpr const char* kAuditUnavailable = "audit log unavailable; commands are refused";

}  // namespace opsagent::server
