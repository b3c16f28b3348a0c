#pragma once
// Colours in opsctl's human output: when to use them (--color, NO_COLOR, a terminal) and the
// SGR sequences around opsctl's own framing (host names, markers, statuses). Text from the
// network is escaped before it is painted, so the only escape sequences on the terminal are
// these. Pure: no I/O.

#include <string>
#include <string_view>

#include "agent/client/host_result.hpp"

namespace opsagent::client {

/// --color=WHEN.
enum class ColourChoice { automatic, never, always };

/// Whether a stream gets colours: `always` and `never` decide; `automatic` colours only a
/// terminal (`is_terminal`) when NO_COLOR is unset or empty (no-color.org) and TERM is not
/// "dumb". An explicit --color=always wins over NO_COLOR, as no-color.org asks of
/// command-line flags.
bool colour_wanted(ColourChoice choice, bool is_terminal, const char* no_color_env,
                   const char* term_env) noexcept;

/// What a piece of framing is.
enum class Paint { host, header, stderr_mark, good, bad, warning };

/// The paint for a host status: good (ok), warning (cancelled, not started), bad (the rest).
Paint status_paint(HostStatus status) noexcept;

/// Wraps text in SGR sequences when enabled; returns it unchanged otherwise.
class Palette {
 public:
  explicit Palette(bool enabled = false) noexcept : enabled_(enabled) {}
  /// `text` (already escaped) painted as `what`.
  [[nodiscard]] std::string paint(Paint what, std::string_view text) const;
  [[nodiscard]] bool enabled() const noexcept { return enabled_; }

 private:
  bool enabled_;
};

}  // namespace opsagent::client
