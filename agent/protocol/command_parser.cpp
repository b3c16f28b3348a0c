#include "agent/protocol/command_parser.hpp"

#include <cstdint>

#include <fmt/format.h>

#include "agent/common/utf8.hpp"

namespace opsagent::protocol {
namespace {

Error usage(std::string message) { return Error{ErrorCode::usage, std::move(message)}; }

// Refuses anything that could smuggle a second command, hide text on a terminal or confuse a
// log reader: every C0 control (TAB and NUL included), DEL, C1 controls and invalid UTF-8.
Status validate_characters(std::string_view line) {
  for (std::size_t pos = 0; pos < line.size();) {
    std::uint32_t cp = 0;
    const std::size_t len = utf8_sequence(line, pos, cp);
    if (len == 0) {
      return usage(fmt::format("invalid UTF-8 at byte {}", pos + 1));
    }
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F)) {
      if (cp == '\r') {
        return usage(fmt::format("carriage return inside the line at byte {}", pos + 1));
      }
      return usage(fmt::format("control character U+{:04X} at byte {}", cp, pos + 1));
    }
    pos += len;
  }
  return ok_status();
}

}  // namespace

Result<Command> parse_command(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (auto st = validate_characters(line); !st) return st.error();

  // The first word is the verb, the others the arguments; each is built where it ends up, so a
  // command without arguments allocates nothing beyond its words (pipelined pings).
  Command cmd;
  bool have_verb = false;
  std::size_t pos = 0;
  const std::size_t n = line.size();
  while (true) {
    while (pos < n && line[pos] == ' ') ++pos;
    if (pos >= n) break;
    std::string& token = have_verb ? cmd.args.emplace_back() : cmd.verb;
    have_verb = true;
    const char first = line[pos];
    if (first == '\'' || first == '"') {
      const std::size_t open = pos++;
      bool closed = false;
      while (pos < n) {
        const char c = line[pos];
        if (c == first) {
          closed = true;
          ++pos;
          break;
        }
        if (first == '"' && c == '\\' && pos + 1 < n &&
            (line[pos + 1] == '"' || line[pos + 1] == '\\')) {
          token.push_back(line[pos + 1]);
          pos += 2;
          continue;
        }
        token.push_back(c);
        ++pos;
      }
      if (!closed) return usage(fmt::format("unterminated quote starting at byte {}", open + 1));
      if (pos < n && line[pos] != ' ') {
        return usage(fmt::format("closing quote must be followed by a space at byte {}", pos + 1));
      }
    } else {
      const std::size_t start = pos;
      while (pos < n && line[pos] != ' ') ++pos;
      token.assign(line.substr(start, pos - start));
    }
  }
  return cmd;
}

std::string quote_argument(std::string_view arg) {
  const bool plain = !arg.empty() && arg.find_first_of(" \"'\\") == std::string_view::npos;
  if (plain) return std::string(arg);
  std::string out = "\"";
  for (const char c : arg) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

}  // namespace opsagent::protocol
