#include "agent/client/ansible_ini.hpp"

#include <map>
#include <vector>

#include <fmt/format.h>

#include "agent/config/config_error.hpp"

namespace opsagent::client {
namespace {

using config::ConfigError;
using config::YamlNode;

constexpr std::size_t kMaxLines = 200000;

[[noreturn]] void fail(const std::string& file, int line, int column, std::string_view message) {
  throw ConfigError(fmt::format("{}:{}:{}: {}", file, line, column, message));
}

YamlNode scalar(std::string text, int line, int column, bool quoted = false) {
  YamlNode n;
  n.kind = YamlNode::Kind::scalar;
  n.scalar = std::move(text);
  n.quoted = quoted;
  n.mark = config::Mark{line, column};
  return n;
}

YamlNode map_node(int line, int column) {
  YamlNode n;
  n.kind = YamlNode::Kind::map;
  n.mark = config::Mark{line, column};
  return n;
}

// The value for `key` in map `m`, added (as a map) when missing.
YamlNode& child_map(YamlNode& m, const std::string& key, int line, int column) {
  for (auto& [k, v] : m.entries) {
    if (k.scalar == key) {
      if (v.kind == YamlNode::Kind::null) v = map_node(line, column);
      return v;
    }
  }
  m.entries.emplace_back(scalar(key, line, column), map_node(line, column));
  return m.entries.back().second;
}

void set_entry(YamlNode& m, YamlNode key, YamlNode value) {
  for (auto& [k, v] : m.entries) {
    if (k.scalar == key.scalar) {
      v = std::move(value);
      return;
    }
  }
  m.entries.emplace_back(std::move(key), std::move(value));
}

struct Token {
  std::string text;
  int column = 0;  // 1-based
  bool quoted = false;
};

// Splits a line at blanks outside quotes; a quoted part loses its quotes ("a b" -> a b).
std::vector<Token> tokens(std::string_view line, const std::string& file, int line_no) {
  std::vector<Token> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i >= line.size()) break;
    if (line[i] == '#' || line[i] == ';') break;  // a comment to the end of the line
    Token t;
    t.column = static_cast<int>(i) + 1;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') {
      const char c = line[i];
      if (c == '"' || c == '\'') {
        const auto close = line.find(c, i + 1);
        if (close == std::string_view::npos) {
          fail(file, line_no, static_cast<int>(i) + 1, "unterminated quote");
        }
        t.text.append(line.substr(i + 1, close - i - 1));
        t.quoted = true;
        i = close + 1;
        continue;
      }
      t.text.push_back(c);
      ++i;
    }
    out.push_back(std::move(t));
  }
  return out;
}

// "key=value" (the value unquoted), with its columns.
std::pair<YamlNode, YamlNode> key_value(std::string_view text, int column, const std::string& file,
                                        int line_no) {
  const auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    fail(file, line_no, column, fmt::format("expected key=value, got '{}'", text));
  }
  std::string key(text.substr(0, eq));
  while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
  std::string_view value = text.substr(eq + 1);
  std::size_t skip = 0;
  while (skip < value.size() && (value[skip] == ' ' || value[skip] == '\t')) ++skip;
  value.remove_prefix(skip);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  bool quoted = false;
  if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
      value.back() == value.front()) {
    value = value.substr(1, value.size() - 2);
    quoted = true;
  }
  const int value_column = column + static_cast<int>(eq + 1 + skip);
  if (value.empty() && !quoted) return {scalar(key, line_no, column), YamlNode{}};
  return {scalar(key, line_no, column), scalar(std::string(value), line_no, value_column, quoted)};
}

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

bool looks_like_ini(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = trimmed(text.substr(pos, end - pos));
    pos = end + 1;
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[') {
      // "[web]" or "[web:children]", not a YAML flow sequence such as "[a, b]".
      return line.back() == ']' && line.find_first_of(", ") == std::string_view::npos;
    }
    if (line.rfind("---", 0) == 0 || line.front() == '{' || line.front() == '-') return false;
    const std::string_view first_word = line.substr(0, line.find_first_of(" \t"));
    return first_word.back() != ':' && line.find(": ") == std::string_view::npos;
  }
  return false;
}

config::YamlNode parse_ansible_ini(std::string_view text, const std::string& file) {
  YamlNode root = map_node(1, 1);
  enum class Kind { hosts, vars, children };
  std::string group = "ungrouped";
  Kind kind = Kind::hosts;
  int line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view raw = text.substr(pos, end - pos);
    pos = end + 1;
    if (++line_no > static_cast<int>(kMaxLines)) fail(file, line_no, 1, "too many lines");
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    const std::string_view line = trimmed(raw);
    const int indent = static_cast<int>(raw.find_first_not_of(" \t")) + 1;
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;

    if (line.front() == '[') {
      const auto close = line.find(']');
      if (close == std::string_view::npos || !trimmed(line.substr(close + 1)).empty()) {
        fail(file, line_no, indent,
             "a section header is [GROUP], [GROUP:vars] or [GROUP:children]");
      }
      const std::string_view header = line.substr(1, close - 1);
      const auto colon = header.find(':');
      group = std::string(header.substr(0, colon));
      kind = Kind::hosts;
      if (colon != std::string_view::npos) {
        const std::string_view suffix = header.substr(colon + 1);
        if (suffix == "vars") {
          kind = Kind::vars;
        } else if (suffix == "children") {
          kind = Kind::children;
        } else {
          fail(file, line_no, indent + 1 + static_cast<int>(colon),
               fmt::format("unknown section kind ':{}' (use :vars or :children)", suffix));
        }
      }
      if (group.empty()) fail(file, line_no, indent + 1, "empty group name");
      YamlNode& g = child_map(root, group, line_no, indent + 1);
      if (kind == Kind::vars) child_map(g, "vars", line_no, indent);
      if (kind == Kind::children) child_map(g, "children", line_no, indent);
      continue;
    }

    YamlNode& g = child_map(root, group, line_no, indent);
    if (kind == Kind::vars) {
      auto [k, v] = key_value(line, indent, file, line_no);
      set_entry(child_map(g, "vars", line_no, indent), std::move(k), std::move(v));
      continue;
    }
    const std::vector<Token> words = tokens(raw, file, line_no);
    if (words.empty()) continue;
    if (kind == Kind::children) {
      if (words.size() != 1) fail(file, line_no, words[1].column, "one child group name per line");
      YamlNode& children = child_map(g, "children", line_no, indent);
      set_entry(children, scalar(words[0].text, line_no, words[0].column), YamlNode{});
      continue;
    }
    YamlNode vars = map_node(line_no, words[0].column);
    for (std::size_t i = 1; i < words.size(); ++i) {
      const Token& w = words[i];
      const auto eq = w.text.find('=');
      if (eq == std::string::npos || eq == 0) {
        fail(file, line_no, w.column,
             fmt::format("expected key=value after the host name, got '{}'", w.text));
      }
      YamlNode value =
          scalar(w.text.substr(eq + 1), line_no, w.column + static_cast<int>(eq) + 1, w.quoted);
      set_entry(vars, scalar(w.text.substr(0, eq), line_no, w.column), std::move(value));
    }
    YamlNode& hosts = child_map(g, "hosts", line_no, indent);
    // A host listed again (in this group) adds its variables to those of the earlier lines.
    YamlNode* existing = nullptr;
    for (auto& [k, v] : hosts.entries) {
      if (k.scalar == words[0].text) existing = &v;
    }
    if (existing == nullptr) {
      YamlNode host_vars = vars.entries.empty() ? YamlNode{} : std::move(vars);
      host_vars.mark = config::Mark{line_no, words[0].column};
      hosts.entries.emplace_back(scalar(words[0].text, line_no, words[0].column),
                                 std::move(host_vars));
    } else if (!vars.entries.empty()) {
      if (existing->kind != YamlNode::Kind::map) *existing = map_node(line_no, words[0].column);
      for (auto& [k, v] : vars.entries) set_entry(*existing, std::move(k), std::move(v));
    }
  }
  return root;
}

}  // namespace opsagent::client
