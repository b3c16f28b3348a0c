#pragma once
// Lower-case hexadecimal text of bytes (digests, fingerprints in logs, escaped control bytes).

#include <cstddef>
#include <span>
#include <string>

namespace opsagent {

/// Appends the two lower-case hex digits of `byte` to `out`.
inline void append_hex_byte(std::string& out, unsigned char byte) {
  static constexpr char kDigits[] = "0123456789abcdef";
  out += kDigits[byte >> 4U];
  out += kDigits[byte & 0x0fU];
}

/// `bytes` as lower-case hex, two digits per byte, no separators.
inline std::string hex_encode(std::span<const unsigned char> bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const unsigned char b : bytes) append_hex_byte(out, b);
  return out;
}

}  // namespace opsagent
