#pragma once
// Typed, strict access to a YamlNode tree. Every error names file:line:column and the dotted key
// path (e.g. "limits.max_clients"); unknown keys are errors (finish()).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/config/strict_yaml.hpp"

namespace opsagent::config {

/// Where a node sits: the file and the dotted key path used in messages.
struct NodeContext {
  std::string file;
  std::string path;  ///< "limits.max_clients", "roles.ops.commands[2]"
  /// Context of a child key / index.
  [[nodiscard]] NodeContext key(std::string_view k) const;
  [[nodiscard]] NodeContext index(std::size_t i) const;
};

/// "file:line:col: path: message".
std::string located(const NodeContext& ctx, const YamlNode& node, std::string_view message);
/// Throws ConfigError with located(ctx, node, message).
[[noreturn]] void fail(const NodeContext& ctx, const YamlNode& node, std::string_view message);

// Scalar conversions. Plain and quoted scalars are both strings; numbers, booleans and
// durations must be plain. Booleans are exactly `true` / `false` (no YAML 1.1 yes/no/on/off).
std::string as_string(const YamlNode& n, const NodeContext& ctx);  ///< non-empty scalar
std::int64_t as_int(const YamlNode& n, const NodeContext& ctx, std::int64_t min, std::int64_t max);
bool as_bool(const YamlNode& n, const NodeContext& ctx);
/// "250ms", "10s", "5m", "1h" (a bare number is an error: units are mandatory).
std::chrono::milliseconds as_duration(const YamlNode& n, const NodeContext& ctx,
                                      std::chrono::milliseconds min, std::chrono::milliseconds max);
/// "512", "64KiB", "8MiB", "1GiB" (bytes).
std::uint64_t as_size(const YamlNode& n, const NodeContext& ctx, std::uint64_t min,
                      std::uint64_t max);
/// Sequence of non-empty strings; duplicates are an error.
std::vector<std::string> as_string_list(const YamlNode& n, const NodeContext& ctx);
/// A path; relative paths are taken relative to `base_dir` (the file's directory).
std::filesystem::path as_path(const YamlNode& n, const NodeContext& ctx,
                              const std::filesystem::path& base_dir);

/// Reads the keys of one map, remembering which were used, so finish() can reject unknown ones.
class MapReader {
 public:
  /// Throws if `node` is not a map (a null node is treated as an empty map).
  MapReader(const YamlNode& node, NodeContext ctx);

  /// The value of `key`, or nullptr when absent. Marks the key as known.
  const YamlNode* find(std::string_view key);
  /// The value of `key`; throws "missing required key" when absent.
  const YamlNode& require(std::string_view key);
  /// Context for the child `key` (for messages and nested readers).
  [[nodiscard]] NodeContext ctx(std::string_view key) const { return ctx_.key(key); }
  [[nodiscard]] const NodeContext& ctx() const { return ctx_; }
  [[nodiscard]] const YamlNode& node() const { return node_; }
  /// Throws on the first key that was never asked for, listing the keys that are allowed.
  void finish() const;
  /// Marks `keys` as known, then finish(): the map may hold no key outside `keys`. Checked
  /// before any value is read, so an unknown key is reported before a bad value of a known one.
  void expect_keys(std::initializer_list<std::string_view> keys);

 private:
  const YamlNode& node_;
  NodeContext ctx_;
  std::set<std::string, std::less<>> known_;
};

}  // namespace opsagent::config
