#pragma once
// Path patterns of the `hash` rules and the lexical checks on client paths. Pure functions.

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "agent/common/error.hpp"

namespace opsagent::policy {

/// A client-supplied path split into components after lexical checks: absolute, no empty,
/// "." or ".." components, no NUL, at most PATH_MAX bytes. Nothing is decoded (%2e stays %2e).
Result<std::vector<std::string>> split_client_path(std::string_view path);

/// An absolute glob: `*` and `?` match within one component, `**` (a whole component) matches
/// zero or more components. The leading components without wildcards form the root directory
/// that files are opened beneath.
class PathPattern {
 public:
  /// Throws std::invalid_argument with a reason for a malformed pattern (relative, "..", "**"
  /// not alone in its component, wildcards in the first component, ...).
  explicit PathPattern(std::string_view text);

  /// True when the components (from split_client_path) match the whole pattern.
  [[nodiscard]] bool matches(const std::vector<std::string>& components) const;
  /// The literal directory prefix, e.g. "/var/log" for "/var/log/*.log".
  [[nodiscard]] const std::filesystem::path& root() const { return root_; }
  /// Number of components in root().
  [[nodiscard]] std::size_t root_depth() const { return root_depth_; }
  [[nodiscard]] const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::vector<std::string> parts_;
  std::filesystem::path root_;
  std::size_t root_depth_ = 0;
};

/// Shell-style match of one component: `*` any run, `?` one byte, everything else literal.
bool glob_match_component(std::string_view pattern, std::string_view name);

}  // namespace opsagent::policy
