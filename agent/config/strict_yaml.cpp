#include "agent/config/strict_yaml.hpp"

#include <cstdint>
#include <cstdio>
#include <map>
#include <sstream>

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include "agent/common/utf8.hpp"
#include "agent/config/config_error.hpp"
#include "agent/config/config_file.hpp"

namespace opsagent::config {
namespace {

// yaml-cpp reports the tag "?" for plain scalars and collections and "!" for quoted scalars
// when nothing was written; anything else is an explicit tag such as "!!str" or "!2".
constexpr const char* kPlainTag = "?";
constexpr const char* kQuotedTag = "!";

Mark to_mark(const YAML::Mark& m) {
  if (m.is_null()) return {};
  return Mark{m.line + 1, m.column + 1};
}

std::string located(const std::string& file, Mark mark, std::string_view message) {
  std::ostringstream out;
  out << file;
  if (mark.line > 0) out << ':' << mark.line << ':' << mark.column;
  out << ": " << message;
  return out.str();
}

// Builds a YamlNode tree from parser events. Every rejection throws ConfigError from inside the
// handler, which aborts the parse at once: an alias bomb or a 10k-deep nesting never gets past
// its first offending event.
class TreeBuilder : public YAML::EventHandler {
 public:
  TreeBuilder(const std::string& text, const std::string& file, const YamlLimits& limits)
      : text_(text), file_(file), limits_(limits) {}

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (documents_ > 0) fail(to_mark(mark), "several documents in one file are not allowed");
    ++documents_;
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    check_anchor(mark, anchor);
    YamlNode node;
    node.mark = to_mark(mark);
    add(std::move(node));
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t /*anchor*/) override {
    fail(to_mark(mark), "anchors and aliases are not allowed");
  }

  void OnAnchor(const YAML::Mark& mark, const std::string& /*anchor_name*/) override {
    fail(to_mark(mark), "anchors and aliases are not allowed");
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    check_anchor(mark, anchor);
    YamlNode node;
    node.kind = YamlNode::Kind::scalar;
    node.mark = to_mark(mark);
    if (tag == kPlainTag) {
      node.quoted = false;
    } else if (tag == kQuotedTag && starts_quoted(mark)) {
      node.quoted = true;
      check_closed(mark);
    } else {
      fail(node.mark, "explicit tags are not allowed (found '" + tag + "')");
    }
    check_characters(node.mark, value);
    node.scalar = value;
    add(std::move(node));
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value /*style*/) override {
    open(mark, tag, anchor, YamlNode::Kind::sequence);
  }
  void OnSequenceEnd() override { close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value /*style*/) override {
    open(mark, tag, anchor, YamlNode::Kind::map);
  }
  void OnMapEnd() override { close(); }

  YamlNode take_root() {
    // An empty (or comment-only) document has no event to take a position from: its errors
    // ("missing required key", "the policy is empty") are reported at 1:1, so every message
    // still reads FILE:LINE:COLUMN.
    if (root_.kind == YamlNode::Kind::null && root_.mark.line == 0) root_.mark = Mark{1, 1};
    return std::move(root_);
  }

 private:
  struct Frame {
    YamlNode node;
    bool has_key = false;  // map: a key was read and waits for its value
    YamlNode key;
    std::map<std::string, Mark, std::less<>> seen;  // map: key text -> where it was first written
  };

  // "!" is also what an explicit non-specific tag (`! 10`) produces; only a scalar that really
  // starts with a quote is a quoted one.
  [[nodiscard]] bool starts_quoted(const YAML::Mark& mark) const {
    if (mark.pos < 0 || static_cast<std::size_t>(mark.pos) >= text_.size()) return false;
    const char c = text_[static_cast<std::size_t>(mark.pos)];
    return c == '"' || c == '\'';
  }

  // yaml-cpp 0.7 ends a quoted scalar silently at the end of the input, so `key: "unclosed`
  // would swallow the rest of the file into one string. Find the closing quote ourselves.
  void check_closed(const YAML::Mark& mark) const {
    const auto start = static_cast<std::size_t>(mark.pos);
    const char quote = text_[start];
    for (std::size_t i = start + 1; i < text_.size(); ++i) {
      if (quote == '"' && text_[i] == '\\') {
        ++i;  // an escape: the next byte cannot close the string
      } else if (text_[i] == quote) {
        if (quote == '\'' && i + 1 < text_.size() && text_[i + 1] == '\'') {
          ++i;  // '' is an escaped single quote
        } else {
          return;
        }
      }
    }
    fail(to_mark(mark), "unclosed quoted string");
  }

  [[noreturn]] void fail(Mark mark, std::string_view message) const {
    throw ConfigError(located(file_, mark, message));
  }

  // Every scalar, key or value, of every file read through here (agent.yaml, the policy, the
  // opsctl configuration and inventories). check_text() has refused control bytes written as
  // such (block scalars, which could keep line breaks, are refused as tagged), but a quoted
  // scalar can still hold a TAB, and a double-quoted one can produce any control character
  // through an escape ("\0", "\e", "\x01", "\u0000", "\t", "\n", "\N"): a NUL silently cuts a
  // path short where the C library takes over, ESC reaches terminals through logs, and no value
  // any of these files has needs a tab or a line break. So the decoded text must be valid UTF-8
  // without C0 or C1 control characters or DEL.
  void check_characters(Mark mark, const std::string& value) const {
    const auto refuse = [&](std::string_view problem) {
      const std::string where = scalar_path();
      fail(mark, (where.empty() ? std::string() : where + ": ") + std::string(problem) +
                     " in a scalar (written as an escape such as \"\\0\" or \"\\e\"); not "
                     "allowed in any value");
    };
    const auto refuse_control = [&](std::uint32_t code) {
      char name[16];
      (void)std::snprintf(name, sizeof name, "U+%04X", static_cast<unsigned>(code));
      refuse(std::string("control character ") + name);
    };
    std::size_t i = 0;
    while (i < value.size()) {
      const auto c = static_cast<unsigned char>(value[i]);
      if (c < 0x80) {
        if (c < 0x20 || c == 0x7f) refuse_control(c);
        ++i;
        continue;
      }
      // yaml-cpp decodes "\N" and "\_" to the single bytes 0x85 and 0xA0, not to UTF-8.
      std::uint32_t cp = 0;
      const std::size_t length = utf8_sequence(value, i, cp);
      if (length == 0) {
        if (c <= 0x9f) refuse_control(c);  // "\N": a C1 control as a bare byte
        refuse("invalid UTF-8");
      }
      if (cp <= 0x9f) refuse_control(cp);
      i += length;
    }
  }

  // Where the scalar being read sits, written like path_to() ("tls.client_ca", "argv[2]").
  [[nodiscard]] std::string scalar_path() const {
    std::string path;
    for (const Frame& f : stack_) {
      if (f.node.kind == YamlNode::Kind::sequence) {
        path += "[" + std::to_string(f.node.items.size()) + "]";
      } else if (f.has_key) {
        if (!path.empty()) path += '.';
        path += f.key.scalar;
      }
    }
    return path;
  }

  void check_anchor(const YAML::Mark& mark, YAML::anchor_t anchor) const {
    if (anchor != YAML::NullAnchor) fail(to_mark(mark), "anchors and aliases are not allowed");
  }

  void count_node(Mark mark) {
    if (++nodes_ > limits_.max_nodes) {
      fail(mark, "too many nodes (more than " + std::to_string(limits_.max_nodes) + ")");
    }
  }

  void open(const YAML::Mark& ymark, const std::string& tag, YAML::anchor_t anchor,
            YamlNode::Kind kind) {
    const Mark mark = to_mark(ymark);
    check_anchor(ymark, anchor);
    if (tag != kPlainTag) fail(mark, "explicit tags are not allowed (found '" + tag + "')");
    if (expecting_key()) fail(mark, "map keys must be scalars");
    if (static_cast<int>(stack_.size()) >= limits_.max_depth) {
      fail(mark, "nesting deeper than " + std::to_string(limits_.max_depth) + " levels");
    }
    count_node(mark);
    Frame frame;
    frame.node.kind = kind;
    frame.node.mark = mark;
    stack_.push_back(std::move(frame));
  }

  void close() {
    YamlNode done = std::move(stack_.back().node);
    stack_.pop_back();
    attach(std::move(done));
  }

  // The path of `key` in the innermost open map, written like the loaders write key paths in
  // their messages ("limits.max_clients", "identities[0].match.cn").
  [[nodiscard]] std::string path_to(const std::string& key) const {
    std::string path;
    for (std::size_t i = 0; i + 1 < stack_.size(); ++i) {
      const Frame& f = stack_[i];
      if (f.node.kind == YamlNode::Kind::sequence) {
        path += "[" + std::to_string(f.node.items.size()) + "]";
      } else {
        if (!path.empty()) path += '.';
        path += f.key.scalar;
      }
    }
    if (!path.empty()) path += '.';
    return path + key;
  }

  [[nodiscard]] bool expecting_key() const {
    return !stack_.empty() && stack_.back().node.kind == YamlNode::Kind::map &&
           !stack_.back().has_key;
  }

  // A scalar or null just parsed (collections are counted when opened).
  void add(YamlNode node) {
    count_node(node.mark);
    attach(std::move(node));
  }

  void attach(YamlNode node) {
    if (stack_.empty()) {
      root_ = std::move(node);
      return;
    }
    Frame& top = stack_.back();
    if (top.node.kind == YamlNode::Kind::sequence) {
      top.node.items.push_back(std::move(node));
      return;
    }
    if (!top.has_key) {
      if (node.kind != YamlNode::Kind::scalar) {
        fail(node.mark, "map keys must be non-empty scalars");
      }
      // Duplicate keys are the classic way to hide a second, different value behind the first
      // one a reviewer reads; yaml-cpp silently keeps one of them, so we check ourselves.
      if (auto it = top.seen.find(node.scalar); it != top.seen.end()) {
        fail(node.mark, path_to(node.scalar) + ": duplicate key '" + node.scalar +
                            "' (first defined at line " + std::to_string(it->second.line) + ")");
      }
      top.seen.emplace(node.scalar, node.mark);
      top.key = std::move(node);
      top.has_key = true;
      return;
    }
    top.node.entries.emplace_back(std::move(top.key), std::move(node));
    top.key = YamlNode{};
    top.has_key = false;
  }

  const std::string& text_;
  const std::string& file_;
  const YamlLimits& limits_;
  std::vector<Frame> stack_;
  YamlNode root_;
  std::size_t nodes_ = 0;
  int documents_ = 0;
};

// Checks on the raw bytes before yaml-cpp sees them:
// - NUL and other control characters (except TAB, LF, CR): YAML forbids them, yaml-cpp lets some
//   through, and they have no business in a configuration value (terminal escapes in logs);
// - invalid UTF-8: yaml-cpp would guess UTF-16 from a BOM-like prefix and decode junk, and the
//   byte offsets used below would no longer match;
// - tabs in indentation: YAML forbids them, yaml-cpp accepts some, and a tab renders as
//   different widths in different editors, so the structure a reviewer sees may not be the one
//   parsed.
void check_text(const std::string& text, const std::string& file) {
  int line = 1;
  int column = 1;
  bool in_indent = true;
  const auto fail_at = [&](std::string_view message) {
    throw ConfigError(located(file, Mark{line, column}, message));
  };
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++line;
      column = 1;
      in_indent = true;
      ++i;
      continue;
    }
    if (c == '\t' && in_indent) fail_at("tab character in indentation");
    if (c != ' ' && c != '\t') in_indent = false;
    if (c == 0) fail_at("NUL byte in file (binary data?)");
    if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) fail_at("control character in file");
    std::size_t length = 1;
    if (c >= 0x80) {
      // One UTF-8 sequence; overlong forms, surrogates and C1 controls are refused.
      std::uint32_t cp = 0;
      length = utf8_sequence(text, i, cp);
      if (length == 0) fail_at("invalid UTF-8");
      if (cp >= 0x80 && cp <= 0x9f && cp != 0x85) fail_at("control character in file");
    }
    i += length;
    ++column;
  }
}

}  // namespace

YamlNode::~YamlNode() = default;

YamlNode parse_yaml(const std::string& text, const std::string& file, const YamlLimits& limits) {
  if (text.size() > limits.max_bytes) {
    throw ConfigError(file + ": file is larger than " + std::to_string(limits.max_bytes) +
                      " bytes");
  }
  check_text(text, file);
  // A UTF-8 byte order mark is harmless; drop it so that yaml-cpp's positions are byte offsets
  // into `body`.
  const std::string body = text.rfind("\xef\xbb\xbf", 0) == 0 ? text.substr(3) : text;

  std::istringstream in(body);
  TreeBuilder builder(body, file, limits);
  try {
    YAML::Parser parser(in);
    // HandleNextDocument returns false once the stream is exhausted; a second document is
    // rejected by the builder as soon as it starts.
    while (parser.HandleNextDocument(builder)) {
    }
  } catch (const YAML::Exception& e) {
    // DeepRecursion and ParserException carry a 0-based mark; some errors have none.
    throw ConfigError(located(file, to_mark(e.mark), e.msg));
  }
  return builder.take_root();
}

YamlNode load_yaml_file(const std::filesystem::path& path, const YamlLimits& limits) {
  const ConfigFile contents = read_config_file(path, limits.max_bytes);
  return parse_yaml(contents.text, path.string(), limits);
}

}  // namespace opsagent::config
