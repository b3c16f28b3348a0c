#pragma once
// Reply framing, text and JSON. Pure: builds the bytes, the session writes them.
//
// Text mode: data lines start with "| " (stdout, information) or "! " (stderr); the reply ends
// with exactly one "OK ..." or "ERR <code> ..." line. No data line can forge a final line
// because every data line carries a prefix. JSON mode: one object per line with a "type".

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/common/error.hpp"

namespace opsagent::protocol {

enum class Mode { text, json };
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

  /// Appends one data line (no LF inside; invalid UTF-8 and controls are made visible).
  void data(std::string& out, Channel channel, std::string_view line) const;
  /// Appends the final success line: "OK message k=v ...".
  void ok(std::string& out, std::string_view message, const std::vector<Field>& fields = {}) const;
  /// Appends the final error line: "ERR code message k=v ...".
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

}  // namespace opsagent::protocol
