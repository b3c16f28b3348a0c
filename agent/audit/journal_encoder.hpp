#pragma once
// Encodes one audit record as a datagram of the systemd Native Journal Protocol
// (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/): `KEY=value\n` per field, or, for a value that
// holds a newline, `KEY\n` + the value's length as 64-bit little endian + the value + `\n`.
// Pure; the sending is datagram_sink.hpp. See docs/audit.md#shipping.

#include <string>
#include <string_view>

#include "agent/audit/record_fields.hpp"

namespace opsagent::audit {

/// Appends one field. `key` must be a valid journal field name (upper-case ASCII letters,
/// digits and '_', not starting with '_' or a digit); values may hold any bytes.
void append_journal_field(std::string& out, std::string_view key, std::string_view value);

/// The whole entry for `line` (one record without its LF): MESSAGE, PRIORITY (6 info, 4 warning
/// for denials, refusals and failures), SYSLOG_IDENTIFIER=opsagent, SYSLOG_FACILITY (the syslog
/// facility number), OPSAGENT_EVENT, OPSAGENT_SEQ, OPSAGENT_HOST, OPSAGENT_INSTANCE, the
/// record's principal/conn/peer/command/decision/rule/reason/status/exit/signal/policy_version as
/// OPSAGENT_<NAME> where it has them, and OPSAGENT_RECORD = `line` byte for byte.
std::string encode_journal_entry(std::string_view line, const RecordFields& fields,
                                 int syslog_facility = 10);

}  // namespace opsagent::audit
