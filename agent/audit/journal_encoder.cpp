#include "agent/audit/journal_encoder.hpp"

#include <cstdint>

namespace opsagent::audit {

void append_journal_field(std::string& out, std::string_view key, std::string_view value) {
  out.append(key);
  if (value.find('\n') == std::string_view::npos) {
    out.push_back('=');
    out.append(value);
    out.push_back('\n');
    return;
  }
  // The binary form: the length as 64-bit little endian, whatever the host's byte order.
  out.push_back('\n');
  std::uint64_t n = value.size();
  for (int i = 0; i < 8; ++i, n >>= 8) out.push_back(static_cast<char>(n & 0xFF));
  out.append(value);
  out.push_back('\n');
}

std::string encode_journal_entry(std::string_view line, const RecordFields& f,
                                 int syslog_facility) {
  std::string out;
  out.reserve(line.size() * 2 + 256);
  append_journal_field(out, "MESSAGE", record_summary(f));
  append_journal_field(out, "PRIORITY", f.warning ? "4" : "6");
  append_journal_field(out, "SYSLOG_IDENTIFIER", "opsagent");
  append_journal_field(out, "SYSLOG_FACILITY", std::to_string(syslog_facility));
  const std::pair<std::string_view, std::string_view> fields[] = {
      {"OPSAGENT_EVENT", f.event},
      {"OPSAGENT_SEQ", f.seq},
      {"OPSAGENT_HOST", f.host},
      {"OPSAGENT_INSTANCE", f.instance},
      {"OPSAGENT_PRINCIPAL", f.principal},
      {"OPSAGENT_CONN", f.conn},
      {"OPSAGENT_PEER", f.peer},
      {"OPSAGENT_COMMAND", f.command},
      {"OPSAGENT_DECISION", f.decision},
      {"OPSAGENT_RULE", f.rule},
      {"OPSAGENT_REASON", f.reason},
      {"OPSAGENT_STATUS", f.status},
      {"OPSAGENT_EXIT", f.exit},
      {"OPSAGENT_SIGNAL", f.signal},
      {"OPSAGENT_POLICY_VERSION", f.policy_version},
  };
  for (const auto& [key, value] : fields) {
    if (!value.empty()) append_journal_field(out, key, value);
  }
  append_journal_field(out, "OPSAGENT_RECORD", line);
  return out;
}

}  // namespace opsagent::audit
