// Fuzz target: protocol::parse_command on raw line bytes (SECURITY-MATRIX B2-B4, C5).
// Properties: never crashes; a parsed token never holds a C0/C1 control, DEL or CR; every token
// survives quote_argument -> parse_command as exactly one identical token; and the whole command
// re-serialised with quote_argument parses back to the same command.

#include "agent/protocol/command_parser.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_support.hpp"

using opsagent::fuzz::expect;
using opsagent::protocol::Command;
using opsagent::protocol::parse_command;
using opsagent::protocol::quote_argument;

namespace {

bool has_control(std::string_view token) {
  for (std::size_t i = 0; i < token.size(); ++i) {
    const auto b = static_cast<unsigned char>(token[i]);
    if (b < 0x20 || b == 0x7F) return true;
    // U+0080..U+009F are encoded C2 80..C2 9F.
    if (b == 0xC2 && i + 1 < token.size()) {
      const auto next = static_cast<unsigned char>(token[i + 1]);
      if (next >= 0x80 && next <= 0x9F) return true;
    }
  }
  return false;
}

void check_round_trip(const std::string& token) {
  const std::string quoted = quote_argument(token);
  const auto again = parse_command(quoted);
  expect(again.ok(), "quoted token does not parse", quoted);
  expect(again->verb == token && again->args.empty(), "quoted token does not round-trip", quoted);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  const auto parsed = parse_command(line);
  if (!parsed) {
    expect(!parsed.error().message.empty(), "error without a message");
    return 0;
  }
  const Command& cmd = parsed.value();
  expect(!cmd.verb.empty() || cmd.args.empty() || line.find_first_of("'\"") != line.npos,
         "arguments without a verb from an unquoted line");
  std::string rebuilt;
  const auto add = [&](const std::string& token) {
    expect(!has_control(token), "token contains a control character", token);
    expect(opsagent::fuzz::is_valid_utf8(token), "token is not valid UTF-8", token);
    check_round_trip(token);
    if (!rebuilt.empty()) rebuilt += ' ';
    rebuilt += quote_argument(token);
  };
  if (cmd.verb.empty() && cmd.args.empty()) return 0;  // blank line (or a lone "")
  add(cmd.verb);
  for (const auto& arg : cmd.args) add(arg);
  const auto again = parse_command(rebuilt);
  expect(again.ok(), "re-serialised command does not parse", rebuilt);
  expect(again->verb == cmd.verb && again->args == cmd.args,
         "re-serialised command parses differently", rebuilt);
  return 0;
}
