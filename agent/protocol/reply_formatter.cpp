#include "agent/protocol/reply_formatter.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "agent/common/json_release.hpp"
#include "agent/common/utf8.hpp"

namespace opsagent::protocol {
namespace {

constexpr std::string_view kOutPrefix = "| ";
constexpr std::string_view kErrPrefix = "! ";
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr std::string_view kCutMark = "\xE2\x80\xA6";      // U+2026, ends a cut final-line text
// Final lines: what the message may take; the fields share what is left. The rest of the line
// ("ERR " + code, the JSON keys, separators) fits in kFramingBytes.
constexpr std::size_t kMaxMessageText = std::size_t{16} * 1024;
constexpr std::size_t kFramingBytes = 256;
static_assert(kMaxDataLineText + kFramingBytes <= kMaxReplyLineBytes);
static_assert(kMaxMessageText + kFramingBytes < kMaxReplyLineBytes);

enum class Encoding { text, json };

// True for the bytes sanitize_line keeps as they are: TAB and printable ASCII.
constexpr bool is_plain(unsigned char b) { return b == '\t' || (b >= 0x20 && b < 0x7F); }

// The length of the leading run of plain bytes. Command output is mostly plain: eight bytes at
// a time, byte by byte only around a byte that is not (TAB included, which is plain).
std::size_t plain_run(std::string_view bytes) {
  constexpr std::uint64_t kLow7 = 0x7F7F7F7F7F7F7F7FULL;
  constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
  constexpr std::uint64_t kAdd60 = 0x6060606060606060ULL;  // (b & 0x7F) + 0x60 < 0x80: b < 0x20
  constexpr std::uint64_t kAdd01 = 0x0101010101010101ULL;  // (b & 0x7F) + 0x01 = 0x80: b = 0x7F
  const char* p = bytes.data();
  const std::size_t n = bytes.size();
  std::size_t i = 0;
  while (i < n) {
    while (i + 8 <= n) {
      std::uint64_t w = 0;
      std::memcpy(&w, p + i, sizeof w);
      const std::uint64_t low = w & kLow7;
      if (((w | ~(low + kAdd60) | (low + kAdd01)) & kHigh) != 0) break;
      i += 8;
    }
    const std::size_t stop = std::min(n, i + 8);
    for (; i < stop; ++i) {
      if (!is_plain(static_cast<unsigned char>(p[i]))) return i;
    }
  }
  return n;
}

// Appends "\xNN" (upper-case hex) for one byte.
void append_hex_escape(std::string& out, unsigned char b) {
  constexpr std::string_view kHex = "0123456789ABCDEF";
  const std::array<char, 4> esc{'\\', 'x', kHex[b >> 4U], kHex[b & 0xFU]};
  out.append(esc.data(), esc.size());
}

// How many bytes the character at `pos` (a well-formed UTF-8 sequence, else one byte) takes,
// in the input (`length`) and once escaped by sanitize_line (text) or by nlohmann::json::dump
// with error_handler_t::replace and ensure_ascii off (json).
struct Unit {
  std::size_t length = 1;
  std::size_t escaped = 1;
};

Unit next_unit(std::string_view bytes, std::size_t pos, Encoding encoding) {
  const auto b0 = static_cast<unsigned char>(bytes[pos]);
  if (b0 < 0x80) {
    if (encoding == Encoding::text) {
      return {1, (b0 == '\t' || (b0 >= 0x20 && b0 < 0x7F)) ? std::size_t{1} : 4};  // "\xNN"
    }
    if (b0 == '"' || b0 == '\\' || b0 == '\b' || b0 == '\f' || b0 == '\n' || b0 == '\r' ||
        b0 == '\t') {
      return {1, 2};
    }
    return {1, b0 < 0x20 ? std::size_t{6} : 1};  // "\u00NN"
  }
  std::uint32_t cp = 0;
  const std::size_t len = utf8_sequence(bytes, pos, cp);
  if (len <= 1) return {1, kReplacement.size()};
  if (encoding == Encoding::text && cp <= 0x9F) return {len, 6};  // "\uNNNN"
  return {len, len};
}

// The longest prefix of `bytes` whose escaped form takes at most `budget` bytes, cut between
// characters. Empty only when `bytes` is empty or `budget` cannot hold its first character.
std::string_view fitting_prefix(std::string_view bytes, std::size_t budget, Encoding encoding) {
  std::size_t pos = 0;
  std::size_t used = 0;
  while (pos < bytes.size()) {
    if (encoding == Encoding::text) {  // plain runs escape to themselves: skip them whole
      const std::size_t run = plain_run(bytes.substr(pos, budget - used));
      pos += run;
      used += run;
      if (pos == bytes.size()) break;
    }
    const Unit u = next_unit(bytes, pos, encoding);
    if (used + u.escaped > budget) break;
    used += u.escaped;
    pos += u.length;
  }
  return bytes.substr(0, pos);
}

// `bytes` itself when its escaped form fits `budget`, else its longest fitting prefix plus "…".
std::string capped(std::string_view bytes, std::size_t budget, Encoding encoding) {
  const std::string_view whole = fitting_prefix(bytes, budget, encoding);
  if (whole.size() == bytes.size()) return std::string(bytes);
  std::string out(fitting_prefix(bytes, budget - std::min(budget, kCutMark.size()), encoding));
  out += kCutMark;
  return out;
}

// Field values share what the message leaves of the line; keys are the agent's own short names.
std::size_t field_budget(const std::vector<Field>& fields) {
  if (fields.empty()) return 0;
  std::size_t keys = 0;
  for (const auto& f : fields) keys += f.key.size() + 8;  // ' ', '=', or JSON's quotes, ':', ','
  const std::size_t left = kMaxReplyLineBytes - kFramingBytes - kMaxMessageText;
  return left > keys ? (left - keys) / fields.size() : 0;
}

void append_json_line(std::string& out, const nlohmann::json& j) {
  // Invalid UTF-8 from a child or a file becomes U+FFFD instead of an exception.
  out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  out.push_back('\n');
}

void append_fields_text(std::string& out, const std::vector<Field>& fields) {
  const std::size_t budget = field_budget(fields);
  for (const auto& f : fields) {
    out.push_back(' ');
    out += f.key;
    out.push_back('=');
    sanitize_append(out, capped(f.value, budget, Encoding::text));
  }
}

void add_fields_json(nlohmann::json& j, const std::vector<Field>& fields) {
  const std::size_t budget = field_budget(fields);
  for (const auto& f : fields) {
    if (f.numeric) {
      try {
        j[f.key] = std::stoll(f.value);
        continue;
      } catch (const std::exception&) {
        // fall through: keep the text as given
      }
    }
    j[f.key] = capped(f.value, budget, Encoding::json);
  }
}

// Embeddings, overrides and isolates reorder what a terminal shows (CVE-2021-42574, "Trojan
// Source"): an override in one line can make a file name or a host name read backwards.
bool is_bidi_control(std::uint32_t cp) {
  return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

}  // namespace

void sanitize_append(std::string& out, std::string_view bytes) {
  std::size_t i = 0;
  while (i < bytes.size()) {
    const std::size_t run = plain_run(bytes.substr(i));
    out.append(bytes.substr(i, run));
    i += run;
    if (i == bytes.size()) break;
    const auto b0 = static_cast<unsigned char>(bytes[i]);
    if (b0 < 0x20 || b0 == 0x7F) {
      append_hex_escape(out, b0);
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
}

std::string sanitize_line(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  sanitize_append(out, bytes);
  return out;
}

void ReplyFormatter::data(std::string& out, Channel channel, std::string_view line) const {
  // Cut by the escaped size, not the input size: escaping can make a byte six.
  const Encoding encoding = mode_ == Mode::json ? Encoding::json : Encoding::text;
  do {
    const std::string_view piece = fitting_prefix(line, kMaxDataLineText, encoding);
    line.remove_prefix(piece.size());
    if (mode_ == Mode::json) {
      nlohmann::json j;
      const JsonReleaser release(j);  // no allocation when it is destroyed (H5)
      j["type"] = channel == Channel::out ? "stdout" : "stderr";
      j["line"] = std::string(piece);
      append_json_line(out, j);
    } else {
      out += channel == Channel::out ? kOutPrefix : kErrPrefix;
      sanitize_append(out, piece);
      out.push_back('\n');
    }
  } while (!line.empty());
}

void ReplyFormatter::ok(std::string& out, std::string_view message,
                        const std::vector<Field>& fields) const {
  if (mode_ == Mode::json) {
    nlohmann::json j;
    const JsonReleaser release(j);  // no allocation when it is destroyed (H5)
    j["type"] = "ok";
    j["message"] = capped(message, kMaxMessageText, Encoding::json);
    add_fields_json(j, fields);
    append_json_line(out, j);
    return;
  }
  out += "OK";
  if (!message.empty()) {
    out.push_back(' ');
    sanitize_append(out, capped(message, kMaxMessageText, Encoding::text));
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
    j["message"] = capped(message, kMaxMessageText, Encoding::json);
    add_fields_json(j, fields);
    append_json_line(out, j);
    return;
  }
  out += "ERR ";
  out += to_string(code);
  if (!message.empty()) {
    out.push_back(' ');
    sanitize_append(out, capped(message, kMaxMessageText, Encoding::text));
  }
  append_fields_text(out, fields);
  out.push_back('\n');
}

}  // namespace opsagent::protocol
