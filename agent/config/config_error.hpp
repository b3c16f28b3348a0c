#pragma once
// The one exception type of start-up configuration: it always names file, line and key.

#include <stdexcept>
#include <string>

namespace opsagent::config {

/// A configuration or policy file is unusable. what() reads
/// "FILE:LINE:COLUMN: KEY.PATH: what is wrong" (line/column omitted when unknown).
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace opsagent::config
