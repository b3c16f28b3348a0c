#pragma once
// Untrusted text quoted for an error message, a denial reason or a log line: one printable line
// of bounded length, whatever the bytes were.

#include <cstddef>
#include <string>
#include <string_view>

namespace opsagent {

/// `text` between two `quote` characters, cut after `max_bytes` bytes (then "..." follows inside
/// the quotes). A backslash and the quote character are escaped with a backslash; C0 controls and
/// DEL become `\xNN`. Bytes >= 0x80 are kept: callers that need printable UTF-8 validate first.
std::string shown(std::string_view text, char quote, std::size_t max_bytes);

}  // namespace opsagent
