#pragma once
// Encodes one audit record as an RFC 5424 syslog message for a local unix datagram socket:
//   <PRI>1 TIMESTAMP HOSTNAME opsagent PROCID MSGID [SD-ID name="value" ...] MSG
// with PRI = facility * 8 + severity (6 info, 4 warning), TIMESTAMP the record's `ts`, HOSTNAME
// its `host`, PROCID its `pid`, MSGID its `event`, and MSG the record's JSON line itself (ASCII,
// so valid as MSG-ANY without a BOM). Pure; the sending is datagram_sink.hpp.

#include <optional>
#include <string>
#include <string_view>

#include "agent/audit/record_fields.hpp"

namespace opsagent::audit {

/// The SD-ID used when audit.syslog.sd_id is not set: the private form name@PEN with 32473, the
/// enterprise number IANA reserves for documentation and examples (RFC 5612). docs/audit.md.
inline constexpr std::string_view kDefaultSdId = "opsagent@32473";

/// Facility number of a syslog facility name ("authpriv" -> 10, "local0" -> 16), or nullopt.
std::optional<int> syslog_facility(std::string_view name) noexcept;

/// True when `id` is a valid SD-NAME (1 to 32 printable US-ASCII characters except '=', ' ',
/// ']' and '"') of the private form name@digits[.digits...].
bool valid_sd_id(std::string_view id) noexcept;

/// Appends `value` as an RFC 5424 PARAM-VALUE body (6.3.3): '"', '\' and ']' get a backslash.
void append_sd_escaped(std::string& out, std::string_view value);

/// The whole message for `line` (one record without its LF).
std::string encode_syslog_message(std::string_view line, const RecordFields& fields, int facility,
                                  std::string_view sd_id = kDefaultSdId);

}  // namespace opsagent::audit
