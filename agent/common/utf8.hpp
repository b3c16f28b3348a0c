#pragma once
// Strict UTF-8 decoding, one sequence at a time: the protocol parser refuses bad input with it, the
// reply formatter makes bad output visible, the YAML reader refuses bad configuration. Pure.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace opsagent {

/// Length (1-4) of the well-formed UTF-8 sequence at `pos`, storing its code point; 0 when the
/// bytes there are not well-formed (overlong forms, surrogates, code points above U+10FFFF,
/// truncated or stray continuation bytes).
std::size_t utf8_sequence(std::string_view s, std::size_t pos, std::uint32_t& code_point) noexcept;

}  // namespace opsagent
