#pragma once
// Reply framing, text and JSON. Pure: builds the bytes, the session writes them.
//
// Text mode: data lines start with "| " (stdout, information) or "! " (stderr); the reply ends
// with exactly one "OK ..." or "ERR <code> ..." line. No data line can forge a final line
// because every data line carries a prefix. JSON mode: one object per line with a "type".

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/common/error.hpp"

namespace opsagent::protocol {

enum class Mode { text, json };

/// Most bytes of escaped text one data line carries: after "| " in text mode, inside the
/// "line" string (as JSON encodes it) in JSON mode. A longer line (a 1 MiB log line of control
/// bytes escapes to 4 MiB) is sent as several data lines, cut only between characters, so the
/// pieces joined give the line back.
inline constexpr std::size_t kMaxDataLineText = std::size_t{16} * 1024;
/// Most bytes, LF included, of any line the formatter produces (data, OK, ERR, either mode).
/// Final lines keep within it by cutting an over-long message or field value (marked "…").
/// A client must accept lines this long (opsctl does).
inline constexpr std::size_t kMaxReplyLineBytes = std::size_t{64} * 1024;
enum class Channel { out, err };

/// Extra key/value facts for a final line, e.g. {"exit","0"}; numeric values are emitted as
/// numbers in JSON when `numeric` is set.
struct Field {
  std::string key;
  std::string value;
  bool numeric = false;
};

/// Formats replies for one connection. Not thread-safe; owned by one session.
class ReplyFormatter {
 public:
  void set_mode(Mode mode) noexcept { mode_ = mode; }
  [[nodiscard]] Mode mode() const noexcept { return mode_; }

  /// Appends one data line (no LF inside; invalid UTF-8 and controls are made visible), or
  /// several when its escaped text is longer than kMaxDataLineText.
  void data(std::string& out, Channel channel, std::string_view line) const;
  /// Appends the final success line: "OK message k=v ..." (at most kMaxReplyLineBytes).
  void ok(std::string& out, std::string_view message, const std::vector<Field>& fields = {}) const;
  /// Appends the final error line: "ERR code message k=v ..." (at most kMaxReplyLineBytes).
  void error(std::string& out, ErrorCode code, std::string_view message,
             const std::vector<Field>& fields = {}) const;

 private:
  Mode mode_ = Mode::text;
};

/// Replaces invalid UTF-8 with U+FFFD, C0 controls (except TAB) and DEL with "\xNN", and C1
/// controls and the bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) with
/// "\uNNNN", so a line is safe to show on a terminal and in any log. The one escaping function
/// for text from the network or an inventory: the agent's text replies and everything opsctl
/// prints use it.
std::string sanitize_line(std::string_view bytes);
/// sanitize_line(bytes), appended to `out` without a temporary string.
void sanitize_append(std::string& out, std::string_view bytes);

}  // namespace opsagent::protocol
