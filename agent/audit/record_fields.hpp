#pragma once
// Reads the top-level fields a shipped copy of a record needs (event, principal, decision, ...)
// out of one audit line as the writer wrote it, without a JSON DOM: the line is the writer's own
// strict, ASCII-only JSON (record_encoder.hpp), so a small scanner suffices. Values are kept as
// written: string values without their quotes but with their JSON escapes (so they are printable
// ASCII and never hold a newline or a control character), numbers and booleans as their text.
// Nested objects and arrays are skipped. Pure; shared by the journal and syslog encoders.

#include <string>
#include <string_view>

namespace opsagent::audit {

struct RecordFields {
  std::string_view seq, ts, host, instance, pid, event;
  std::string_view conn, peer, principal, command, decision, rule, reason, status, exit, signal;
  std::string_view policy_version;
  bool warning = false;  ///< a denial, refusal or failure (priority 4 instead of 6)
};

/// One field both shipped copies carry by name: journald as `journal_key`, syslog as the SD-PARAM
/// `sd_name` (empty: syslog carries it in its header instead).
struct ShippedField {
  std::string_view journal_key;
  std::string_view sd_name;
  std::string_view RecordFields::*value;
};

/// The named fields of a shipped copy, in the order they are sent; one list for both sinks.
inline constexpr ShippedField kShippedFields[] = {
    {"OPSAGENT_EVENT", "", &RecordFields::event},
    {"OPSAGENT_SEQ", "seq", &RecordFields::seq},
    {"OPSAGENT_HOST", "", &RecordFields::host},
    {"OPSAGENT_INSTANCE", "instance", &RecordFields::instance},
    {"OPSAGENT_PRINCIPAL", "principal", &RecordFields::principal},
    {"OPSAGENT_CONN", "conn", &RecordFields::conn},
    {"OPSAGENT_PEER", "peer", &RecordFields::peer},
    {"OPSAGENT_COMMAND", "command", &RecordFields::command},
    {"OPSAGENT_DECISION", "decision", &RecordFields::decision},
    {"OPSAGENT_RULE", "rule", &RecordFields::rule},
    {"OPSAGENT_REASON", "reason", &RecordFields::reason},
    {"OPSAGENT_STATUS", "status", &RecordFields::status},
    {"OPSAGENT_EXIT", "exit", &RecordFields::exit},
    {"OPSAGENT_SIGNAL", "signal", &RecordFields::signal},
    {"OPSAGENT_POLICY_VERSION", "policy_version", &RecordFields::policy_version},
};

/// Scans `line` (one record, without its LF). A malformed line yields the fields found before
/// the error; it never reads outside `line`. The views point into `line`.
RecordFields scan_record(std::string_view line) noexcept;

/// A short human line for journald's MESSAGE and syslog readers, e.g. "alice run allow",
/// "alice run ended ok exit 0", "auth_denied peer 127.0.0.1:4711 (unmapped)". Printable ASCII.
std::string record_summary(const RecordFields& f);

}  // namespace opsagent::audit
