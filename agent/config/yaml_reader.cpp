#include "agent/config/yaml_reader.hpp"

#include <limits>
#include <sstream>
#include <utility>

#include "agent/common/duration_text.hpp"
#include "agent/common/parse_number.hpp"
#include "agent/common/shown.hpp"
#include "agent/config/config_error.hpp"

namespace opsagent::config {
namespace {

using std::chrono::milliseconds;

// Values echoed in messages are cut and stripped of control bytes so that one bad scalar
// cannot flood or garble the terminal that shows the error.
constexpr std::size_t kMaxShown = 64;

std::string quote_value(std::string_view text) { return shown(text, '"', kMaxShown); }

// The same text without its quotes, for a key name inside a dotted path.
std::string sanitize(std::string_view text) {
  const std::string quoted = quote_value(text);
  return quoted.substr(1, quoted.size() - 2);
}

std::string describe(const YamlNode& n) {
  switch (n.kind) {
    case YamlNode::Kind::null:
      return "nothing";
    case YamlNode::Kind::sequence:
      return "a list";
    case YamlNode::Kind::map:
      return "a map";
    case YamlNode::Kind::scalar:
      break;
  }
  return n.quoted ? "quoted " + quote_value(n.scalar) : quote_value(n.scalar);
}

// Plain decimal without sign or leading zeros; nullopt on anything else or on overflow.
std::optional<std::uint64_t> parse_decimal(std::string_view s) {
  if (s.size() > 1 && s[0] == '0') return std::nullopt;
  return opsagent::parse_decimal<std::uint64_t>(s);
}

// "250ms" -> {250, "ms"}; the number is nullopt when the digits are missing or malformed.
std::pair<std::optional<std::uint64_t>, std::string_view> split_number_unit(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  return {parse_decimal(text.substr(0, digits)), text.substr(digits)};
}

std::string format_size(std::uint64_t n) {
  if (n != 0 && n % (1ULL << 30) == 0) return std::to_string(n >> 30) + "GiB";
  if (n != 0 && n % (1ULL << 20) == 0) return std::to_string(n >> 20) + "MiB";
  if (n != 0 && n % (1ULL << 10) == 0) return std::to_string(n >> 10) + "KiB";
  return std::to_string(n);
}

}  // namespace

NodeContext NodeContext::key(std::string_view k) const {
  NodeContext child{file, path};
  if (!child.path.empty()) child.path += '.';
  child.path += k;
  return child;
}

NodeContext NodeContext::index(std::size_t i) const {
  return NodeContext{file, path + "[" + std::to_string(i) + "]"};
}

std::string located(const NodeContext& ctx, const YamlNode& node, std::string_view message) {
  std::ostringstream out;
  out << ctx.file;
  if (node.mark.line > 0) out << ':' << node.mark.line << ':' << node.mark.column;
  out << ": ";
  if (!ctx.path.empty()) out << ctx.path << ": ";
  out << message;
  return out.str();
}

void fail(const NodeContext& ctx, const YamlNode& node, std::string_view message) {
  throw ConfigError(located(ctx, node, message));
}

std::string as_string(const YamlNode& n, const NodeContext& ctx) {
  if (n.kind != YamlNode::Kind::scalar) fail(ctx, n, "expected a string, got " + describe(n));
  if (n.scalar.empty()) fail(ctx, n, "must not be empty");
  return n.scalar;
}

std::int64_t as_int(const YamlNode& n, const NodeContext& ctx, std::int64_t min, std::int64_t max) {
  const std::string expected =
      "expected an integer between " + std::to_string(min) + " and " + std::to_string(max);
  if (n.kind != YamlNode::Kind::scalar || n.quoted) {
    // A quoted "10" is a string in YAML; accepting it would make the type rules depend on
    // which field is read.
    fail(ctx, n, expected + ", got " + describe(n));
  }
  std::string_view text = n.scalar;
  const bool negative = !text.empty() && text[0] == '-';
  if (negative) text.remove_prefix(1);
  const auto magnitude = parse_decimal(text);
  constexpr auto kMaxMagnitude =
      static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (!magnitude || *magnitude > kMaxMagnitude + (negative ? 1U : 0U) ||
      (negative && *magnitude == 0)) {
    fail(ctx, n, expected + ", got " + describe(n));
  }
  std::int64_t value = 0;
  if (negative) {
    // -(2^63) does not fit a positive int64, so build it from (magnitude - 1).
    value = -static_cast<std::int64_t>(*magnitude - 1) - 1;
  } else {
    value = static_cast<std::int64_t>(*magnitude);
  }
  if (value < min || value > max) fail(ctx, n, expected + ", got " + describe(n));
  return value;
}

bool as_bool(const YamlNode& n, const NodeContext& ctx) {
  // YAML 1.1 also reads yes/no/on/off/y/n as booleans (the "Norway problem"); only the two
  // unambiguous spellings are accepted so a value never means something unexpected.
  if (n.kind == YamlNode::Kind::scalar && !n.quoted) {
    if (n.scalar == "true") return true;
    if (n.scalar == "false") return false;
  }
  fail(ctx, n, "expected true or false, got " + describe(n));
}

milliseconds as_duration(const YamlNode& n, const NodeContext& ctx, milliseconds min,
                         milliseconds max) {
  const std::string expected = "expected a duration between " + format_duration(min) + " and " +
                               format_duration(max) + " (like 250ms, 10s, 5m, 1h)";
  if (n.kind != YamlNode::Kind::scalar || n.quoted) fail(ctx, n, expected + ", got " + describe(n));
  const auto [number, unit] = split_number_unit(n.scalar);
  std::uint64_t scale = 0;
  if (unit == "ms") {
    scale = 1;
  } else if (unit == "s") {
    scale = 1'000;
  } else if (unit == "m") {
    scale = 60'000;
  } else if (unit == "h") {
    scale = 3'600'000;
  }
  if (!number || scale == 0) fail(ctx, n, expected + ", got " + describe(n));
  const auto max_ms = static_cast<std::uint64_t>(max.count());
  if (*number > max_ms / scale) fail(ctx, n, expected + ", got " + describe(n));
  const milliseconds value{static_cast<milliseconds::rep>(*number * scale)};
  if (value < min || value > max) fail(ctx, n, expected + ", got " + describe(n));
  return value;
}

std::uint64_t as_size(const YamlNode& n, const NodeContext& ctx, std::uint64_t min,
                      std::uint64_t max) {
  const std::string expected = "expected a size between " + format_size(min) + " and " +
                               format_size(max) + " (bytes, or with KiB, MiB, GiB)";
  if (n.kind != YamlNode::Kind::scalar || n.quoted) fail(ctx, n, expected + ", got " + describe(n));
  const auto [number, unit] = split_number_unit(n.scalar);
  unsigned shift = 64;
  if (unit.empty()) {
    shift = 0;
  } else if (unit == "KiB") {
    shift = 10;
  } else if (unit == "MiB") {
    shift = 20;
  } else if (unit == "GiB") {
    shift = 30;
  }
  if (!number || shift == 64) fail(ctx, n, expected + ", got " + describe(n));
  if (*number > (max >> shift)) fail(ctx, n, expected + ", got " + describe(n));
  const std::uint64_t value = *number << shift;
  if (value < min || value > max) fail(ctx, n, expected + ", got " + describe(n));
  return value;
}

std::vector<std::string> as_string_list(const YamlNode& n, const NodeContext& ctx) {
  if (n.kind != YamlNode::Kind::sequence) fail(ctx, n, "expected a list, got " + describe(n));
  std::vector<std::string> out;
  out.reserve(n.items.size());
  for (std::size_t i = 0; i < n.items.size(); ++i) {
    std::string value = as_string(n.items[i], ctx.index(i));
    for (std::size_t j = 0; j < i; ++j) {
      if (out[j] == value) {
        fail(ctx.index(i), n.items[i],
             "duplicate entry " + quote_value(value) + " (also at line " +
                 std::to_string(n.items[j].mark.line) + ")");
      }
    }
    out.push_back(std::move(value));
  }
  return out;
}

std::filesystem::path as_path(const YamlNode& n, const NodeContext& ctx,
                              const std::filesystem::path& base_dir) {
  std::filesystem::path p = as_string(n, ctx);
  if (p.is_relative()) p = base_dir / p;
  return p;
}

MapReader::MapReader(const YamlNode& node, NodeContext ctx) : node_(node), ctx_(std::move(ctx)) {
  if (node_.kind != YamlNode::Kind::map && node_.kind != YamlNode::Kind::null) {
    fail(ctx_, node_, "expected a map, got " + describe(node_));
  }
}

const YamlNode* MapReader::find(std::string_view key) {
  known_.emplace(key);
  for (const auto& [k, v] : node_.entries) {
    if (k.scalar == key) return &v;
  }
  return nullptr;
}

const YamlNode& MapReader::require(std::string_view key) {
  if (const YamlNode* v = find(key)) return *v;
  fail(ctx_, node_, "missing required key '" + std::string(key) + "'");
}

void MapReader::expect_keys(std::initializer_list<std::string_view> keys) {
  for (const auto key : keys) find(key);
  finish();
}

void MapReader::finish() const {
  for (const auto& [k, v] : node_.entries) {
    if (known_.find(k.scalar) != known_.end()) continue;
    std::string allowed;
    for (const auto& name : known_) {
      if (!allowed.empty()) allowed += ", ";
      allowed += name;
    }
    const std::string name = sanitize(k.scalar);
    std::string message = "unknown key '" + name + "' (allowed: ";
    message += allowed;
    message += ')';
    fail(ctx_.key(name), k, message);
  }
}

}  // namespace opsagent::config
