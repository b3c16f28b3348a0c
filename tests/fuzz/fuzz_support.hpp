#pragma once
// Helpers shared by the fuzz targets: a byte reader that splits one input into several values,
// and a property check that stops the process so libFuzzer (or the replay runner) reports it.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace opsagent::fuzz {

/// Reports a broken property and aborts. __builtin_trap gives libFuzzer a crash with a stack
/// and the input saved as an artifact; the replay runner dies the same way under ctest.
[[noreturn]] inline void violated(const char* property, std::string_view detail = {}) {
  std::fprintf(stderr, "PROPERTY VIOLATED: %s", property);
  if (!detail.empty()) {
    std::fprintf(stderr, " [");
    for (const char c : detail) {
      const auto b = static_cast<unsigned char>(c);
      if (b >= 0x20 && b < 0x7f) {
        std::fputc(b, stderr);
      } else {
        std::fprintf(stderr, "\\x%02x", b);
      }
    }
    std::fprintf(stderr, "]");
  }
  std::fprintf(stderr, "\n");
  std::fflush(stderr);
  __builtin_trap();
}

/// Checks `condition`; see violated().
inline void expect(bool condition, const char* property, std::string_view detail = {}) {
  if (!condition) violated(property, detail);
}

/// Consumes an input front to back. Running out is not an error: every read then yields zero
/// or an empty string, so each input maps to exactly one test case.
class ByteReader {
 public:
  ByteReader(const std::uint8_t* data, std::size_t size)
      : bytes_(reinterpret_cast<const char*>(data), size) {}

  /// One byte, 0 when exhausted.
  std::uint8_t byte() {
    if (bytes_.empty()) return 0;
    const auto b = static_cast<std::uint8_t>(bytes_.front());
    bytes_.remove_prefix(1);
    return b;
  }
  /// Two bytes, little-endian.
  std::uint16_t u16() {
    const std::uint16_t lo = byte();
    const std::uint16_t hi = byte();
    return static_cast<std::uint16_t>(lo | (hi << 8U));
  }
  /// Up to `n` bytes.
  std::string_view take(std::size_t n) {
    const std::string_view out = bytes_.substr(0, n);
    bytes_.remove_prefix(out.size());
    return out;
  }
  /// Everything that is left.
  std::string_view rest() { return take(bytes_.size()); }
  [[nodiscard]] bool empty() const { return bytes_.empty(); }

 private:
  std::string_view bytes_;
};

/// Splits `text` at every `separator` (keeping empty pieces).
inline std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t at = text.find(separator, start);
    if (at == std::string_view::npos) {
      out.emplace_back(text.substr(start));
      return out;
    }
    out.emplace_back(text.substr(start, at - start));
    start = at + 1;
  }
}

/// Strict UTF-8 (no overlong forms, surrogates or code points above U+10FFFF). An oracle written
/// independently of the agent's validators on purpose.
inline bool is_valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
      cp = b0 & 0x1FU;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      cp = b0 & 0x0FU;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      cp = b0 & 0x07U;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0U) != 0x80U) return false;
      cp = (cp << 6U) | (b & 0x3FU);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

}  // namespace opsagent::fuzz
