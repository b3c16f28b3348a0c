#pragma once
// The one exception type of start-up configuration: it always names file, line and key.

#include <cstddef>
#include <stdexcept>
#include <string>

namespace opsagent::config {

/// A configuration or policy file is unusable. what() reads
/// "FILE:LINE:COLUMN: KEY.PATH: what is wrong" (line/column omitted when unknown).
///
/// Messages quote values from the file, and the file may be hostile (a 1 MB scalar where a name
/// belongs): what() is cut after kMaxMessageBytes, with the original length noted, so that one
/// bad file cannot produce a megabyte-long log line or `policy_reload_failed` audit record.
/// The location comes first, so it always survives the cut.
class ConfigError : public std::runtime_error {
 public:
  static constexpr std::size_t kMaxMessageBytes = 2048;

  explicit ConfigError(const std::string& message) : std::runtime_error(bounded(message)) {}
  explicit ConfigError(const char* message) : ConfigError(std::string(message)) {}

 private:
  static std::string bounded(const std::string& message) {
    if (message.size() <= kMaxMessageBytes) return message;
    std::size_t cut = kMaxMessageBytes;
    // Never split a UTF-8 sequence: back up to the start of the code point.
    while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) --cut;
    return message.substr(0, cut) + "...[truncated, " + std::to_string(message.size()) + " bytes]";
  }
};

}  // namespace opsagent::config
