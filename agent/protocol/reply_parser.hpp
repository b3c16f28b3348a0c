#pragma once
// One reply line -> what it means to a client. Pure, no I/O: the inverse of ReplyFormatter.
//
// Text mode: "| text" (stdout/information), "! text" (stderr), "OK message k=v ..." and
// "ERR code message k=v ...". JSON mode: one object per line with "type" stdout, stderr, ok or
// error. Field values in text mode may be quoted the way quote_argument() quotes them.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "agent/protocol/reply_formatter.hpp"

namespace opsagent::protocol {

/// What a reply line is.
enum class ReplyKind {
  data,     ///< a data line (`channel` and `text` are set)
  ok,       ///< the final success line
  error,    ///< the final error line (`code` is set)
  invalid,  ///< not a line this protocol produces (`text` holds the line, sanitized)
};

/// One classified reply line.
struct ReplyLine {
  ReplyKind kind = ReplyKind::invalid;
  Channel channel = Channel::out;  ///< data lines only
  std::string text;                ///< data: the line; ok/error: the message (without fields)
  std::string code;                ///< error lines: the wire code, e.g. "denied"
  std::map<std::string, std::string, std::less<>>
      fields;  ///< final lines: k=v facts ("exit" -> "3")

  /// True for ok and error lines: the reply is complete.
  [[nodiscard]] bool is_final() const noexcept {
    return kind == ReplyKind::ok || kind == ReplyKind::error;
  }
  /// A field as an integer, when present and a plain decimal (optionally negative).
  [[nodiscard]] std::optional<std::int64_t> int_field(std::string_view key) const;
};

/// Classifies one line (without its LF; one trailing CR is ignored) received in `mode`.
/// Never throws; anything unrecognised is ReplyKind::invalid.
ReplyLine parse_reply_line(std::string_view line, Mode mode);
/// The same, into `into`; a text-mode data line reuses its storage, so a client that streams
/// output through one ReplyLine allocates nothing per line.
void parse_reply_line(std::string_view line, Mode mode, ReplyLine& into);

}  // namespace opsagent::protocol
