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
  for (const ShippedField& field : kShippedFields) {
    const std::string_view value = f.*field.value;
    if (!value.empty()) append_journal_field(out, field.journal_key, value);
  }
  append_journal_field(out, "OPSAGENT_RECORD", line);
  return out;
}

}  // namespace opsagent::audit
