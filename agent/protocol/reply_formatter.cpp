#include "agent/protocol/reply_formatter.hpp"

#include <cstdint>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "agent/common/json_release.hpp"
#include "agent/protocol/utf8.hpp"

namespace opsagent::protocol {
namespace {

constexpr std::string_view kOutPrefix = "| ";
constexpr std::string_view kErrPrefix = "! ";
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

void append_json_line(std::string& out, const nlohmann::json& j) {
  // Invalid UTF-8 from a child or a file becomes U+FFFD instead of an exception.
  out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  out.push_back('\n');
}

void append_fields_text(std::string& out, const std::vector<Field>& fields) {
  for (const auto& f : fields) {
    out.push_back(' ');
    out += f.key;
    out.push_back('=');
    out += sanitize_line(f.value);
  }
}

void add_fields_json(nlohmann::json& j, const std::vector<Field>& fields) {
  for (const auto& f : fields) {
    if (f.numeric) {
      try {
        j[f.key] = std::stoll(f.value);
        continue;
      } catch (const std::exception&) {
        // fall through: keep the text as given
      }
    }
    j[f.key] = f.value;
  }
}

// Embeddings, overrides and isolates reorder what a terminal shows (CVE-2021-42574, "Trojan
// Source"): an override in one line can make a file name or a host name read backwards.
bool is_bidi_control(std::uint32_t cp) {
  return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

}  // namespace

std::string sanitize_line(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  std::size_t i = 0;
  while (i < bytes.size()) {
    const auto b0 = static_cast<unsigned char>(bytes[i]);
    if (b0 == '\t' || (b0 >= 0x20 && b0 < 0x7F)) {
      out.push_back(static_cast<char>(b0));
      ++i;
      continue;
    }
    if (b0 < 0x20 || b0 == 0x7F) {
      out += fmt::format("\\x{:02X}", b0);
      ++i;
      continue;
    }
    // Multi-byte: accept only well-formed UTF-8 and make C1 and bidi controls visible.
    std::uint32_t cp = 0;
    const std::size_t len = utf8_sequence(bytes, i, cp);
    const bool valid = len > 1;
    if (!valid) {
      out += kReplacement;
      ++i;
      continue;
    }
    if (cp <= 0x9F || is_bidi_control(cp)) {
      out += fmt::format("\\u{:04X}", cp);
    } else {
      out.append(bytes.substr(i, len));
    }
    i += len;
  }
  return out;
}

void ReplyFormatter::data(std::string& out, Channel channel, std::string_view line) const {
  if (mode_ == Mode::json) {
    nlohmann::json j;
    const JsonReleaser release(j);  // no allocation when it is destroyed (H5)
    j["type"] = channel == Channel::out ? "stdout" : "stderr";
    j["line"] = std::string(line);
    append_json_line(out, j);
    return;
  }
  out += channel == Channel::out ? kOutPrefix : kErrPrefix;
  out += sanitize_line(line);
  out.push_back('\n');
}

void ReplyFormatter::ok(std::string& out, std::string_view message,
                        const std::vector<Field>& fields) const {
  if (mode_ == Mode::json) {
    nlohmann::json j;
    const JsonReleaser release(j);  // no allocation when it is destroyed (H5)
    j["type"] = "ok";
    j["message"] = std::string(message);
    add_fields_json(j, fields);
    append_json_line(out, j);
    return;
  }
  out += "OK";
  if (!message.empty()) {
    out.push_back(' ');
    out += sanitize_line(message);
  }
  append_fields_text(out, fields);
  out.push_back('\n');
}

void ReplyFormatter::error(std::string& out, ErrorCode code, std::string_view message,
                           const std::vector<Field>& fields) const {
  if (mode_ == Mode::json) {
    nlohmann::json j;
    const JsonReleaser release(j);  // no allocation when it is destroyed (H5)
    j["type"] = "error";
    j["code"] = std::string(to_string(code));
    j["message"] = std::string(message);
    add_fields_json(j, fields);
    append_json_line(out, j);
    return;
  }
  out += "ERR ";
  out += to_string(code);
  if (!message.empty()) {
    out.push_back(' ');
    out += sanitize_line(message);
  }
  append_fields_text(out, fields);
  out.push_back('\n');
}

}  // namespace opsagent::protocol
