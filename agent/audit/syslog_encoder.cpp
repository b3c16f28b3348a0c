#include "agent/audit/syslog_encoder.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace opsagent::audit {
namespace {

bool printable_ascii(std::string_view s, std::size_t max) noexcept {
  return !s.empty() && s.size() <= max &&
         std::ranges::all_of(s, [](char c) { return c >= 33 && c <= 126; });
}

// A header field (HOSTNAME, PROCID, MSGID, TIMESTAMP): the value when it is 1 to `max`
// printable US-ASCII characters, else the NILVALUE "-".
void append_header_field(std::string& out, std::string_view value, std::size_t max) {
  out.push_back(' ');
  if (printable_ascii(value, max)) {
    out.append(value);
  } else {
    out.push_back('-');
  }
}

}  // namespace

std::optional<int> syslog_facility(std::string_view name) noexcept {
  static constexpr std::array<std::pair<std::string_view, int>, 20> kFacilities = {{
      {"kern", 0},      {"user", 1},    {"mail", 2},    {"daemon", 3},  {"auth", 4},
      {"syslog", 5},    {"lpr", 6},     {"news", 7},    {"uucp", 8},    {"cron", 9},
      {"authpriv", 10}, {"ftp", 11},    {"local0", 16}, {"local1", 17}, {"local2", 18},
      {"local3", 19},   {"local4", 20}, {"local5", 21}, {"local6", 22}, {"local7", 23},
  }};
  for (const auto& [n, v] : kFacilities) {
    if (n == name) return v;
  }
  return std::nullopt;
}

bool valid_sd_id(std::string_view id) noexcept {
  if (!printable_ascii(id, 32)) return false;
  for (const char c : id) {
    if (c == '=' || c == ']' || c == '"') return false;
  }
  const auto at = id.find('@');
  if (at == 0 || at == std::string_view::npos || at + 1 == id.size()) return false;
  bool digit_before = false;
  for (std::size_t i = at + 1; i < id.size(); ++i) {
    if (id[i] >= '0' && id[i] <= '9') {
      digit_before = true;
    } else if (id[i] == '.' && digit_before) {
      digit_before = false;
    } else {
      return false;
    }
  }
  return digit_before;
}

void append_sd_escaped(std::string& out, std::string_view value) {
  for (const char c : value) {
    if (c == '"' || c == '\\' || c == ']') out.push_back('\\');
    out.push_back(c);
  }
}

std::string encode_syslog_message(std::string_view line, const RecordFields& f, int facility,
                                  std::string_view sd_id) {
  std::string out;
  out.reserve(line.size() + 512);
  out.push_back('<');
  out.append(std::to_string(facility * 8 + (f.warning ? 4 : 6)));
  out.append(">1");
  append_header_field(out, f.ts, 64);
  append_header_field(out, f.host, 255);
  out.append(" opsagent");
  append_header_field(out, f.pid, 128);
  append_header_field(out, f.event, 32);
  out.append(" [");
  out.append(sd_id);
  for (const ShippedField& field : kShippedFields) {
    const std::string_view value = f.*field.value;
    if (field.sd_name.empty() || value.empty()) continue;
    out.push_back(' ');
    out.append(field.sd_name);
    out.append("=\"");
    append_sd_escaped(out, value);
    out.push_back('"');
  }
  out.append("] ");
  out.append(line);
  return out;
}

}  // namespace opsagent::audit
