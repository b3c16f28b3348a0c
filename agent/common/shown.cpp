#include "agent/common/shown.hpp"

#include "agent/common/hex.hpp"

namespace opsagent {

std::string shown(std::string_view text, char quote, std::size_t max_bytes) {
  std::string out(1, quote);
  const std::string_view cut = text.substr(0, max_bytes);
  out.reserve(cut.size() + 8);
  for (const char ch : cut) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == '\\' || ch == quote) {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      append_hex_byte(out, c);
    } else {
      out += ch;
    }
  }
  if (text.size() > max_bytes) out += "...";
  out += quote;
  return out;
}

}  // namespace opsagent
