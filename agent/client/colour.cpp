#include "agent/client/colour.hpp"

namespace opsagent::client {
namespace {

constexpr std::string_view kReset = "\x1b[0m";

std::string_view sgr(Paint what) noexcept {
  switch (what) {
    case Paint::host:
      return "\x1b[36m";  // cyan
    case Paint::header:
      return "\x1b[1m";  // bold
    case Paint::stderr_mark:
      return "\x1b[31m";  // red
    case Paint::good:
      return "\x1b[32m";  // green
    case Paint::bad:
      return "\x1b[1;31m";  // bold red
    case Paint::warning:
      return "\x1b[33m";  // yellow
  }
  return {};
}

}  // namespace

bool colour_wanted(ColourChoice choice, bool is_terminal, const char* no_color_env,
                   const char* term_env) noexcept {
  if (choice != ColourChoice::automatic) return choice == ColourChoice::always;
  if (!is_terminal) return false;
  if (no_color_env != nullptr && *no_color_env != '\0') return false;
  return term_env == nullptr || std::string_view(term_env) != "dumb";
}

Paint status_paint(HostStatus status) noexcept {
  if (status == HostStatus::ok) return Paint::good;
  if (status == HostStatus::cancelled || status == HostStatus::not_started) return Paint::warning;
  return Paint::bad;
}

std::string Palette::paint(Paint what, std::string_view text) const {
  if (!enabled_ || text.empty()) return std::string(text);
  std::string out(sgr(what));
  out += text;
  out += kReset;
  return out;
}

}  // namespace opsagent::client
