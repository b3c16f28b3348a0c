#include "agent/protocol/reply_parser.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/common/parse_number.hpp"

namespace opsagent::protocol {
namespace {

struct Token {
  std::size_t start;
  std::string_view text;
};

// Splits on spaces; a double quote opens a span (with \" and \\ escapes) that may hold spaces,
// so `path="/a b"` stays one token, as quote_argument() wrote it.
std::vector<Token> tokenize(std::string_view s) {
  std::vector<Token> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    if (i >= s.size()) break;
    const std::size_t start = i;
    bool quoted = false;
    while (i < s.size() && (quoted || s[i] != ' ')) {
      if (quoted && s[i] == '\\' && i + 1 < s.size()) {
        i += 2;
        continue;
      }
      if (s[i] == '"') quoted = !quoted;
      ++i;
    }
    out.push_back({start, s.substr(start, i - start)});
  }
  return out;
}

bool is_field_key(std::string_view key) {
  if (key.empty()) return false;
  for (std::size_t i = 0; i < key.size(); ++i) {
    const char c = key[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

std::string unquote(std::string_view v) {
  if (v.size() < 2 || v.front() != '"' || v.back() != '"') return std::string(v);
  std::string out;
  for (std::size_t i = 1; i + 1 < v.size(); ++i) {
    if (v[i] == '\\' && i + 2 < v.size()) ++i;
    out.push_back(v[i]);
  }
  return out;
}

// "message k=v k=v": trailing key=value tokens are fields, the rest is the message.
void split_message_and_fields(std::string_view rest, ReplyLine& out) {
  const auto tokens = tokenize(rest);
  std::size_t first_field = tokens.size();
  while (first_field > 0) {
    const std::string_view t = tokens[first_field - 1].text;
    const auto eq = t.find('=');
    if (eq == std::string_view::npos || !is_field_key(t.substr(0, eq))) break;
    --first_field;
  }
  for (std::size_t i = first_field; i < tokens.size(); ++i) {
    const std::string_view t = tokens[i].text;
    const auto eq = t.find('=');
    out.fields.insert_or_assign(std::string(t.substr(0, eq)), unquote(t.substr(eq + 1)));
  }
  std::string_view message =
      first_field < tokens.size() ? rest.substr(0, tokens[first_field].start) : rest;
  while (!message.empty() && message.back() == ' ') message.remove_suffix(1);
  while (!message.empty() && message.front() == ' ') message.remove_prefix(1);
  out.text = std::string(message);
}

ReplyLine invalid(std::string_view line) {
  ReplyLine r;
  r.kind = ReplyKind::invalid;
  r.text = sanitize_line(line);
  return r;
}

// A text data line ("| text", "! text") into `r`, reusing its storage; false for any other
// line. The formatter writes "|"/"!" plus a space even for empty lines; a bare prefix is
// accepted too.
bool read_text_data(std::string_view line, ReplyLine& r) {
  if (line.empty() || (line[0] != '|' && line[0] != '!')) return false;
  if (line.size() > 1 && line[1] != ' ') return false;
  r.kind = ReplyKind::data;
  r.channel = line[0] == '|' ? Channel::out : Channel::err;
  r.text.assign(line.substr(std::min<std::size_t>(2, line.size())));
  r.code.clear();
  r.fields.clear();
  return true;
}

// Any text line but a data line (read_text_data).
ReplyLine parse_text(std::string_view line) {
  ReplyLine r;
  if (line == "OK" || line.substr(0, 3) == "OK ") {
    r.kind = ReplyKind::ok;
    split_message_and_fields(line.size() > 2 ? line.substr(3) : std::string_view{}, r);
    return r;
  }
  if (line.substr(0, 4) == "ERR ") {
    std::string_view rest = line.substr(4);
    const auto space = rest.find(' ');
    r.kind = ReplyKind::error;
    r.code = std::string(rest.substr(0, space));
    if (r.code.empty()) return invalid(line);
    split_message_and_fields(
        space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1), r);
    return r;
  }
  return invalid(line);
}

std::string scalar_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

ReplyLine parse_json(std::string_view line) {
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return invalid(line);
  const auto type_it = j.find("type");
  if (type_it == j.end() || !type_it->is_string()) return invalid(line);
  const std::string type = type_it->get<std::string>();
  ReplyLine r;
  if (type == "stdout" || type == "stderr") {
    const auto text = j.find("line");
    if (text == j.end() || !text->is_string()) return invalid(line);
    r.kind = ReplyKind::data;
    r.channel = type == "stdout" ? Channel::out : Channel::err;
    r.text = text->get<std::string>();
    return r;
  }
  if (type != "ok" && type != "error") return invalid(line);
  r.kind = type == "ok" ? ReplyKind::ok : ReplyKind::error;
  for (const auto& [key, value] : j.items()) {
    if (key == "type") continue;
    if (key == "message") {
      r.text = scalar_text(value);
    } else if (key == "code") {
      r.code = scalar_text(value);
    } else {
      r.fields.insert_or_assign(key, scalar_text(value));
    }
  }
  if (r.kind == ReplyKind::error && r.code.empty()) return invalid(line);
  return r;
}

}  // namespace

std::optional<std::int64_t> ReplyLine::int_field(std::string_view key) const {
  const auto it = fields.find(key);
  if (it == fields.end() || it->second.empty()) return std::nullopt;
  return parse_decimal<std::int64_t>(it->second);
}

ReplyLine parse_reply_line(std::string_view line, Mode mode) {
  ReplyLine r;
  parse_reply_line(line, mode, r);
  return r;
}

void parse_reply_line(std::string_view line, Mode mode, ReplyLine& into) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (mode == Mode::json) {
    into = parse_json(line);
  } else if (!read_text_data(line, into)) {
    into = parse_text(line);
  }
}

}  // namespace opsagent::protocol
