#pragma once
// One protocol line -> Command. Pure, no I/O. The rules are in docs/protocol.md.

#include <string>
#include <string_view>
#include <vector>

#include "agent/common/error.hpp"

namespace opsagent::protocol {

/// A parsed request: the verb exactly as sent (no case folding) and its arguments.
/// An empty verb means the line was empty or blank (a no-op), or that its first word was an
/// empty quoted word ('' or ""), which callers must not mistake for a blank line.
struct Command {
  std::string verb;
  std::vector<std::string> args;
};

/// Validates and tokenizes one line (without its LF):
/// - exactly one trailing CR is removed; any other CR is an error;
/// - the line must be valid UTF-8 (no overlong forms, no surrogates) without C0 controls
///   (including TAB and NUL), DEL or C1 controls;
/// - tokens are separated by runs of ASCII spaces; a token may be quoted with '...' (literal) or
///   "..." (where \" and \\ are the only escapes); quotes inside a bare token are literal.
/// Errors carry ErrorCode::usage and say what and where (byte column).
Result<Command> parse_command(std::string_view line);

/// Quotes `arg` for parse_command if it needs it (spaces, quotes, backslash, empty).
std::string quote_argument(std::string_view arg);

}  // namespace opsagent::protocol
