#pragma once
// A duration as people write it in the configuration: "250ms", "10s", "5m", "1h".

#include <chrono>
#include <string>

namespace opsagent {

/// `d` in the largest unit that divides it exactly (h, m, s, else ms): 120000 ms -> "2m",
/// 1500 ms -> "1500ms", 0 -> "0ms". The same syntax the configuration reads.
inline std::string format_duration(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms % 3'600'000 == 0 && ms != 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0 && ms != 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1'000 == 0 && ms != 0) return std::to_string(ms / 1'000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace opsagent
