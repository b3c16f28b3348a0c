// Fuzz target: audit::AuditLog::encode (SECURITY-MATRIX F1), and the shipped copies of the
// record (audit::scan_record, the journal and RFC 5424 encoders).
// Input: byte 0 chooses where the rest splits into a key and a value (both client-controlled in
// the worst case: command text, arguments, certificate subjects).
// Properties: the record is one line of printable ASCII, a strict JSON parser accepts it, and
// valid UTF-8 keys and values come back byte for byte. The journal entry carries the line
// byte for byte in OPSAGENT_RECORD and every other value is printable ASCII; the RFC 5424
// message ends with the line; a scanned field, JSON-unquoted, is the value; scanning the raw
// input never reads outside it.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "agent/audit/audit_log.hpp"
#include "agent/audit/journal_encoder.hpp"
#include "agent/audit/record_fields.hpp"
#include "agent/audit/syslog_encoder.hpp"

#include "tests/fuzz/fuzz_support.hpp"

using opsagent::fuzz::expect;
using opsagent::fuzz::is_valid_utf8;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  opsagent::fuzz::ByteReader in(data, size);
  const std::size_t cut = in.byte();
  const std::string_view rest = in.rest();
  const std::string key(rest.substr(0, cut));
  const std::string value(rest.substr(std::min<std::size_t>(cut, rest.size())));

  nlohmann::json record = nlohmann::json::object();
  record["event"] = "command";
  record["args"] = nlohmann::json::array({value, key});
  record["value"] = value;
  record[key] = value;  // may replace "event", "args" or "value": that is fine here

  const std::string line = opsagent::audit::AuditLog::encode(record);
  for (const char c : line) {
    const auto b = static_cast<unsigned char>(c);
    expect(b >= 0x20 && b < 0x7F, "record holds a control or non-ASCII byte", line);
  }
  nlohmann::json parsed;
  try {
    parsed = nlohmann::json::parse(line);  // strict: throws on anything not RFC 8259
  } catch (const nlohmann::json::exception&) {
    opsagent::fuzz::violated("record is not strict JSON", line);
  }
  expect(parsed.is_object(), "record is not an object", line);
  if (is_valid_utf8(value)) {
    // Unless the fuzzed key replaced them.
    if (key != "value") expect(parsed["value"] == value, "value does not round-trip", line);
    if (key != "args") {
      expect(parsed["args"].at(0) == value, "array element does not round-trip", line);
    }
  }
  if (is_valid_utf8(key) && is_valid_utf8(value)) {
    expect(parsed.contains(key) && parsed[key] == value, "key does not round-trip", line);
  }

  (void)opsagent::audit::scan_record(rest);  // arbitrary bytes: must stay inside them
  const opsagent::audit::RecordFields fields = opsagent::audit::scan_record(line);
  if (key != "value" && key != "args" && key != "event") {
    expect(fields.event == "command", "event not scanned", line);
  }
  if (key == "principal" && is_valid_utf8(value)) {
    expect(nlohmann::json::parse("\"" + std::string(fields.principal) + "\"") == value,
           "scanned field does not round-trip", line);
  }
  const std::string journal = opsagent::audit::encode_journal_entry(line, fields);
  const std::string record_field = "\nOPSAGENT_RECORD=" + line + "\n";
  expect(journal.size() >= record_field.size() &&
             journal.compare(journal.size() - record_field.size(), record_field.size(),
                             record_field) == 0,
         "journal entry does not end with the record", journal);
  for (const char c : journal) {
    const auto b = static_cast<unsigned char>(c);
    expect(c == '\n' || (b >= 0x20 && b < 0x7F), "journal entry holds a control byte", journal);
  }
  const std::string syslog = opsagent::audit::encode_syslog_message(line, fields, 10);
  expect(syslog.size() > line.size() + 2 &&
             syslog.compare(syslog.size() - line.size() - 2, line.size() + 2, "] " + line) == 0,
         "syslog message does not end with the record", syslog);
  return 0;
}
