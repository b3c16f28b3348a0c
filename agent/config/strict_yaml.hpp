#pragma once
// A strict YAML reader on top of yaml-cpp's event parser. yaml-cpp alone accepts duplicate keys,
// expands alias bombs and guesses types; here every document becomes a small tree that keeps
// line/column for every node and the quoted-ness of every scalar, and rejects what a policy file
// must never contain.

#include <cstddef>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace opsagent::config {

/// 1-based position in the source text.
struct Mark {
  int line = 0;
  int column = 0;
};

/// One node of a parsed document. Maps keep their entries in file order; keys are scalars.
struct YamlNode {
  enum class Kind { null, scalar, sequence, map };
  Kind kind = Kind::null;
  Mark mark;
  std::string scalar;   ///< text of a scalar (empty otherwise)
  bool quoted = false;  ///< scalar was written '...' or "..." (so `"10"` is a string, not a number)
  std::vector<YamlNode> items;                         ///< sequence elements
  std::vector<std::pair<YamlNode, YamlNode>> entries;  ///< map entries (key, value)

  // The destructor is defined in strict_yaml.cpp, where YamlNode is complete: clang with
  // libstdc++ would otherwise instantiate ~vector<pair<YamlNode, YamlNode>> while the pair is
  // still incomplete (the fuzz build, cmake --preset fuzz, uses clang).
  YamlNode() = default;
  YamlNode(const YamlNode&) = default;
  YamlNode(YamlNode&&) noexcept = default;
  YamlNode& operator=(const YamlNode&) = default;
  YamlNode& operator=(YamlNode&&) noexcept = default;
  ~YamlNode();
};

/// Limits applied while parsing (hostile-input bounds, see SECURITY-MATRIX G4).
struct YamlLimits {
  std::size_t max_bytes = 1U << 20;  ///< file size
  int max_depth = 32;                ///< nesting of maps/sequences
  std::size_t max_nodes = 100000;    ///< total nodes
};

/// Parses exactly one document. Rejects (with ConfigError naming `file`, line and column):
/// syntax errors, duplicate map keys, non-scalar keys, aliases and anchors, explicit tags,
/// several documents, nesting/size beyond `limits`, NUL bytes. An empty document yields a null
/// node.
YamlNode parse_yaml(const std::string& text, const std::string& file,
                    const YamlLimits& limits = {});

/// Reads `path` (regular file, at most limits.max_bytes) and parses it with parse_yaml.
YamlNode load_yaml_file(const std::filesystem::path& path, const YamlLimits& limits = {});

}  // namespace opsagent::config
