#include "agent/audit/record_fields.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <utility>

namespace opsagent::audit {
namespace {

// Index just past the JSON string that starts at line[i] (a '"'), or npos when it is unterminated.
std::size_t skip_string(std::string_view line, std::size_t i) noexcept {
  for (++i; i < line.size(); ++i) {
    if (line[i] == '\\') {
      ++i;  // the escaped character (\uXXXX's digits are plain)
    } else if (line[i] == '"') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

// Index just past the value that starts at line[i]: a string, an object or array (nested to any
// depth), or a scalar (up to the next ',' or '}' at this level).
std::size_t skip_value(std::string_view line, std::size_t i) noexcept {
  if (i >= line.size()) return std::string_view::npos;
  if (line[i] == '"') return skip_string(line, i);
  if (line[i] == '{' || line[i] == '[') {
    int depth = 0;
    while (i < line.size()) {
      const char c = line[i];
      if (c == '"') {
        i = skip_string(line, i);
        if (i == std::string_view::npos) return i;
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return std::string_view::npos;
  }
  while (i < line.size() && line[i] != ',' && line[i] != '}') ++i;
  return i;
}

bool is_warning_event(std::string_view e) noexcept {
  static constexpr std::array<std::string_view, 15> kWarnings = {
      "auth_denied",          "tls_failure",         "connection_refused",
      "session_refused",      "command_rejected",    "line_too_long",
      "session_revoked",      "session_error",       "policy_reload_failed",
      "config_reload_failed", "tls_reload_failed",   "trust_check_failed",
      "orphans_killed",       "audit_log_recreated", "tls_failures_suppressed"};
  return std::ranges::find(kWarnings, e) != kWarnings.end();
}

}  // namespace

RecordFields scan_record(std::string_view line) noexcept {
  RecordFields f;
  static constexpr std::pair<std::string_view, std::string_view RecordFields::*> kFields[] = {
      {"seq", &RecordFields::seq},
      {"ts", &RecordFields::ts},
      {"host", &RecordFields::host},
      {"instance", &RecordFields::instance},
      {"pid", &RecordFields::pid},
      {"event", &RecordFields::event},
      {"conn", &RecordFields::conn},
      {"peer", &RecordFields::peer},
      {"principal", &RecordFields::principal},
      {"command", &RecordFields::command},
      {"decision", &RecordFields::decision},
      {"rule", &RecordFields::rule},
      {"reason", &RecordFields::reason},
      {"status", &RecordFields::status},
      {"exit", &RecordFields::exit},
      {"signal", &RecordFields::signal},
      {"policy_version", &RecordFields::policy_version},
  };
  if (line.empty() || line[0] != '{') return f;
  std::size_t i = 1;
  while (i < line.size() && line[i] == '"') {
    const std::size_t key_end = skip_string(line, i);
    if (key_end == std::string_view::npos || key_end >= line.size() || line[key_end] != ':') break;
    const std::string_view key = line.substr(i + 1, key_end - i - 2);
    const std::size_t v = key_end + 1;
    const std::size_t v_end = skip_value(line, v);
    if (v_end == std::string_view::npos) break;
    std::string_view value = line.substr(v, v_end - v);
    if (!value.empty() && value.front() == '"') {
      value = value.substr(1, value.size() - 2);
    } else if (!value.empty() && (value.front() == '{' || value.front() == '[')) {
      value = {};  // nested: not a field of its own
    }
    for (const auto& [name, member] : kFields) {
      if (name == key && (f.*member).empty()) {
        f.*member = value;
        break;
      }
    }
    if (v_end >= line.size() || line[v_end] != ',') break;
    i = v_end + 1;
  }
  f.warning = is_warning_event(f.event) || (!f.decision.empty() && f.decision != "allow") ||
              (!f.status.empty() && f.status != "ok");
  return f;
}

std::string record_summary(const RecordFields& f) {
  std::string out;
  auto word = [&out](std::string_view w) {
    if (w.empty()) return;
    if (!out.empty()) out.push_back(' ');
    out.append(w);
  };
  if (f.event == "command") {
    word(f.principal);
    word(f.command);
    word(f.decision);
    if (!f.status.empty()) word(f.status);
  } else if (f.event == "command_end") {
    word(f.principal);
    word(f.command);
    word("ended");
    word(f.status);
    if (!f.exit.empty()) {
      word("exit");
      word(f.exit);
    }
    if (!f.signal.empty()) {
      word("signal");
      word(f.signal);
    }
  } else {
    word(f.event);
    word(f.principal);
    if (!f.peer.empty()) {
      word("peer");
      word(f.peer);
    }
  }
  if (!f.reason.empty() && f.decision != "allow") {
    out.append(" (");
    out.append(f.reason);
    out.push_back(')');
  }
  return out;
}

}  // namespace opsagent::audit
