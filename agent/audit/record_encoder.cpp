#include "agent/audit/record_encoder.hpp"

#include <array>
#include <bit>
#include <charconv>
#include <cstdint>
#include <cstring>

#include <nlohmann/json.hpp>

#include "agent/audit/record_buffers.hpp"

namespace opsagent::audit {
namespace {

constexpr char kHex[] = "0123456789abcdef";

void append_u(std::string& out, std::uint32_t unit) {
  const char esc[6] = {'\\',
                       'u',
                       kHex[(unit >> 12) & 0xF],
                       kHex[(unit >> 8) & 0xF],
                       kHex[(unit >> 4) & 0xF],
                       kHex[unit & 0xF]};
  out.append(esc, sizeof esc);
}

void append_code_point(std::string& out, std::uint32_t cp) {
  if (cp >= 0x10000) {
    cp -= 0x10000;
    append_u(out, 0xD800 + (cp >> 10));
    append_u(out, 0xDC00 + (cp & 0x3FF));
  } else {
    append_u(out, cp);
  }
}

// Length of the valid UTF-8 sequence at s[i] and its code point, or 0 when it is invalid
// (overlong, surrogate, above U+10FFFF, truncated or a stray continuation byte).
std::size_t decode(std::string_view s, std::size_t i, std::uint32_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  std::size_t len = 0;
  std::uint32_t min = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() - i < len) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

constexpr std::uint64_t kEachByte = 0x0101010101010101ULL;  // times c: c in every byte
constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;

// Bit 7 of each byte of x that is below n (n <= 0x80); exact for the lowest such byte, a borrow
// can only add false marks above it.
constexpr std::uint64_t bytes_below(std::uint64_t x, std::uint64_t n) noexcept {
  return (x - kEachByte * n) & ~x & kHighBits;
}

// Bits 7, 15, ... set for each byte of `w` that needs escaping; the lowest set bit marks the
// first such byte exactly.
constexpr std::uint64_t special_bytes(std::uint64_t w) noexcept {
  return bytes_below(w, 0x20)                      // controls
         | (w & kHighBits)                         // 0x80 and above
         | bytes_below(w ^ (kEachByte * 0x7F), 1)  // DEL
         | bytes_below(w ^ (kEachByte * '"'), 1) | bytes_below(w ^ (kEachByte * '\\'), 1);
}

constexpr bool needs_escape(unsigned char c) noexcept {
  return c < 0x20 || c >= 0x7F || c == '"' || c == '\\';
}

// Length of the run of bytes at s[i] that are copied as they are: eight bytes at a time (records
// are mostly plain text; this is the encoder's hot loop). The last few bytes are read as the end
// of the string's last eight, shifted down; a string shorter than eight is scanned byte by byte.
std::size_t plain_run(std::string_view s, std::size_t i) noexcept {
  static_assert(std::endian::native == std::endian::little, "the lowest byte first");
  constexpr std::size_t kWord = sizeof(std::uint64_t);
  if (s.size() < kWord) {  // short strings (most keys)
    std::size_t j = i;
    while (j < s.size() && !needs_escape(static_cast<unsigned char>(s[j]))) ++j;
    return j - i;
  }
  // The run's length when the word read at `at` has `marks` (special_bytes) set.
  const auto run_to = [i](std::size_t at, std::uint64_t marks) {
    return at - i + static_cast<std::size_t>(std::countr_zero(marks)) / 8;
  };
  std::size_t j = i;
  for (; s.size() - j >= kWord; j += kWord) {
    std::uint64_t w = 0;
    std::memcpy(&w, s.data() + j, kWord);
    if (const std::uint64_t marks = special_bytes(w); marks != 0) return run_to(j, marks);
  }
  const std::size_t n = s.size() - j;  // 0 to 7 bytes left
  if (n == 0) return j - i;
  std::uint64_t w = 0;
  std::memcpy(&w, s.data() + s.size() - kWord, kWord);
  w >>= 8 * (kWord - n);
  // The zero bytes shifted in above the n real ones would count as controls.
  const std::uint64_t marks = special_bytes(w) & ((std::uint64_t{1} << (8 * n)) - 1);
  return marks != 0 ? run_to(j, marks) : s.size() - i;
}

void append_escaped(std::string& out, std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    // Runs of plain printable ASCII are copied at once.
    const std::size_t run = plain_run(s, i);
    out.append(s.data() + i, run);
    i += run;
    if (i == s.size()) break;
    const auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out.append("\\\"");
        ++i;
        continue;
      case '\\':
        out.append("\\\\");
        ++i;
        continue;
      case '\n':
        out.append("\\n");
        ++i;
        continue;
      case '\r':
        out.append("\\r");
        ++i;
        continue;
      case '\t':
        out.append("\\t");
        ++i;
        continue;
      case '\b':
        out.append("\\b");
        ++i;
        continue;
      case '\f':
        out.append("\\f");
        ++i;
        continue;
      default:
        break;
    }
    if (c < 0x80) {  // other controls and DEL
      append_u(out, c);
      ++i;
      continue;
    }
    std::uint32_t cp = 0;
    const std::size_t len = decode(s, i, cp);
    if (len == 0) {
      append_u(out, 0xFFFD);  // one replacement per invalid byte
      ++i;
    } else {
      append_code_point(out, cp);
      i += len;
    }
  }
}

template <typename T>
void append_number(std::string& out, T v) {
  std::array<char, 24> buf{};
  const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  out.append(buf.data(), r.ptr);
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  append_escaped(out, s);
  out.push_back('"');
}

void append_json_string_cut(std::string& out, std::string_view s, std::size_t max) {
  if (s.size() <= max) return append_json_string(out, s);
  out.push_back('"');
  append_escaped(out, s.substr(0, max));
  out.append("...[truncated, ");
  append_number(out, s.size());
  out.append(" bytes]\"");
}

void append_json_value(std::string& out, const nlohmann::json& v) {
  using T = nlohmann::json::value_t;
  switch (v.type()) {
    case T::null:
    case T::discarded:
      out.append("null");
      return;
    case T::boolean:
      out.append(v.get<bool>() ? "true" : "false");
      return;
    case T::number_integer:
      append_number(out, v.get<std::int64_t>());
      return;
    case T::number_unsigned:
      append_number(out, v.get<std::uint64_t>());
      return;
    case T::number_float:
      out.append(v.dump());
      return;  // nlohmann prints NaN/inf as null
    case T::string:
      append_json_string(out, v.get_ref<const std::string&>());
      return;
    case T::binary:
      out.append("null");
      return;
    case T::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& e : v) {
        if (!first) out.push_back(',');
        first = false;
        append_json_value(out, e);
      }
      out.push_back(']');
      return;
    }
    case T::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& [k, e] : v.items()) {
        if (!first) out.push_back(',');
        first = false;
        append_json_string(out, k);
        out.push_back(':');
        append_json_value(out, e);
      }
      out.push_back('}');
      return;
    }
  }
}

bool is_reserved_key(std::string_view key) noexcept {
  return key == "event" || key == "seq" || key == "ts" || key == "host" || key == "instance" ||
         key == "pid" || key == "prev";
}

RecordEncoder::RecordEncoder(std::string_view event) : out_(record_buffers::take_body()) {
  out_.append("\"event\":");
  append_json_string(out_, event);
}

RecordEncoder RecordEncoder::continuing(std::string_view body) {
  RecordEncoder rec;
  rec.out_ = record_buffers::take_body();
  rec.out_.append(body);
  return rec;
}

void RecordEncoder::key(FieldName k) {
  out_.append(",\"", 2);
  out_.append(k.view());
  out_.append("\":", 2);
}

RecordEncoder& RecordEncoder::str(FieldName k, std::string_view value) {
  key(k);
  append_json_string(out_, value);
  return *this;
}

RecordEncoder& RecordEncoder::str_cut(FieldName k, std::string_view value, std::size_t max) {
  key(k);
  append_json_string_cut(out_, value, max);
  return *this;
}

RecordEncoder& RecordEncoder::num(FieldName k, std::int64_t value) {
  key(k);
  append_number(out_, value);
  return *this;
}

RecordEncoder& RecordEncoder::unum(FieldName k, std::uint64_t value) {
  key(k);
  append_number(out_, value);
  return *this;
}

RecordEncoder& RecordEncoder::boolean(FieldName k, bool value) {
  key(k);
  out_.append(value ? "true" : "false");
  return *this;
}

RecordEncoder& RecordEncoder::strings_cut(FieldName k, const std::vector<std::string>& values,
                                          std::size_t max) {
  key(k);
  out_.push_back('[');
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i != 0) out_.push_back(',');
    append_json_string_cut(out_, values[i], max);
  }
  out_.push_back(']');
  return *this;
}

RecordEncoder& RecordEncoder::json(std::string_view k, const nlohmann::json& value) {
  out_.push_back(',');
  append_json_string(out_, k);
  out_.push_back(':');
  append_json_value(out_, value);
  return *this;
}

}  // namespace opsagent::audit
