#pragma once
// Decimal integers from text, on std::from_chars: no locale, no errno, no exceptions, no sign or
// space accepted unless the type is signed and the text starts with '-'.

#include <charconv>
#include <concepts>
#include <optional>
#include <string_view>
#include <system_error>

namespace opsagent {

/// The integer `text` holds as a whole in decimal; nullopt when it is empty, holds anything else
/// (a sign on an unsigned type, spaces, a suffix) or does not fit in T.
template <std::integral T>
std::optional<T> parse_decimal(std::string_view text) noexcept {
  T value{};
  const char* last = text.data() + text.size();
  const auto [end, ec] = std::from_chars(text.data(), last, value);
  if (text.empty() || ec != std::errc{} || end != last) return std::nullopt;
  return value;
}

/// The decimal integer at the start of `text`, which is advanced past it; nullopt (and `text`
/// unchanged) when there is none or it does not fit in T.
template <std::integral T>
std::optional<T> take_decimal(std::string_view& text) noexcept {
  T value{};
  const char* last = text.data() + text.size();
  const auto [end, ec] = std::from_chars(text.data(), last, value);
  if (ec != std::errc{}) return std::nullopt;
  text.remove_prefix(static_cast<std::size_t>(end - text.data()));
  return value;
}

}  // namespace opsagent
