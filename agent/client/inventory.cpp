#include "agent/client/inventory.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <deque>
#include <fnmatch.h>
#include <fstream>
#include <functional>
#include <iterator>
#include <regex>
#include <set>

#include <boost/asio/ip/address.hpp>
#include <fmt/format.h>

#include "agent/client/ansible_ini.hpp"
#include "agent/client/inventory_script.hpp"
#include "agent/common/errno_text.hpp"
#include "agent/config/config_error.hpp"
#include "agent/config/strict_yaml.hpp"
#include "agent/config/yaml_reader.hpp"
#include "agent/protocol/reply_formatter.hpp"

namespace opsagent::client {
namespace {

using config::fail;
using config::MapReader;
using config::NodeContext;
using config::YamlNode;

constexpr std::size_t kMaxRangeHosts = 100000;
constexpr std::size_t kMaxInventoryBytes = std::size_t{16} << 20U;
constexpr std::string_view kGlobChars = "*?[";

Error usage(std::string message) { return Error{ErrorCode::usage, std::move(message)}; }

// Ansible files often quote ports ("7443"); both spellings mean the same number here.
std::uint16_t as_port(const YamlNode& n, const NodeContext& ctx) {
  YamlNode plain = n;
  plain.quoted = false;
  return static_cast<std::uint16_t>(config::as_int(plain, ctx, 1, 65535));
}

// Inventory text is printed (host names prefix every output line, addresses appear in errors
// and --list-targets): refuse anything the one escaping function would have to change, such as
// an ESC, a newline or a bidi override decoded from a quoted YAML escape.
void check_printable(const YamlNode& n, const NodeContext& ctx, const std::string& text,
                     std::string_view what) {
  if (protocol::sanitize_line(text) != text || text.find('\t') != std::string::npos) {
    fail(ctx, n,
         fmt::format("{} '{}' must not contain control characters, bidi controls or invalid "
                     "UTF-8",
                     what, protocol::sanitize_line(text)));
  }
}

// A string value that is printed (address, server_name and their Ansible variables).
std::string printable_string(const YamlNode& n, const NodeContext& ctx, std::string_view what) {
  std::string value = config::as_string(n, ctx);
  check_printable(n, ctx, value, what);
  return value;
}

// Names become targets and patterns: keep them free of pattern syntax and white space.
void check_name(const YamlNode& n, const NodeContext& ctx, const std::string& name,
                std::string_view what) {
  if (name.empty()) fail(ctx, n, fmt::format("empty {} name", what));
  check_printable(n, ctx, name, fmt::format("{} name", what));
  if (name.find_first_of(" \t,") != std::string::npos || name.front() == '!' ||
      name.find_first_of(kGlobChars) != std::string::npos) {
    fail(ctx, n,
         fmt::format("{} name '{}' must not contain spaces, ',', '*', '?', '[' or start with '!'",
                     what, name));
  }
}

// A pinned certificate fingerprint: "sha256:" (optional), then 32 bytes of hex, with or
// without ':' between them (as `openssl x509 -fingerprint -sha256` prints it). Stored as
// "AB:CD:..." like the agent's own fingerprints.
std::string pinned_fingerprint(const YamlNode& n, const NodeContext& ctx) {
  std::string text = config::as_string(n, ctx);
  if (text.size() > 7 &&
      (text.compare(0, 7, "sha256:") == 0 || text.compare(0, 7, "SHA256:") == 0)) {
    text.erase(0, 7);
  }
  std::string hex;
  for (const char c : text) {
    if (c == ':') continue;
    if (std::isxdigit(static_cast<unsigned char>(c)) == 0) {
      hex.clear();
      break;
    }
    hex.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  if (hex.size() != 64) {
    fail(ctx, n, "expected a SHA-256 certificate fingerprint: sha256:AB:CD:... (32 hex bytes)");
  }
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    if (!out.empty()) out.push_back(':');
    out.append(hex, i, 2);
  }
  return out;
}

const YamlNode* null_or_map(const YamlNode& n, const NodeContext& ctx, std::string_view what) {
  if (n.kind == YamlNode::Kind::null) return nullptr;
  if (n.kind != YamlNode::Kind::map) {
    fail(ctx, n, fmt::format("expected {} (a map) or nothing", what));
  }
  return &n;
}

void add_unique(std::vector<std::string>& list, const std::string& name) {
  if (std::find(list.begin(), list.end(), name) == list.end()) list.push_back(name);
}

// Keeps the members of every group in the order the hosts first appear in the file.
std::vector<std::string> in_host_order(const std::set<std::string>& members,
                                       const std::vector<InventoryHost>& hosts) {
  std::vector<std::string> out;
  for (const auto& h : hosts) {
    if (members.contains(h.name)) out.push_back(h.name);
  }
  return out;
}

// "[2001:db8::1]:7443" is an address, not a bracket glob: globs never hold ':' inside [...].
bool is_bracketed_address(std::string_view s) {
  if (s.empty() || s.front() != '[') return false;
  const auto close = s.find(']');
  return close != std::string_view::npos && s.substr(1, close).find(':') != std::string_view::npos;
}

bool has_glob(std::string_view s) {
  return !is_bracketed_address(s) && s.find_first_of(kGlobChars) != std::string_view::npos;
}

bool looks_like_address(std::string_view host) {
  if (host == "localhost") return true;
  return host.find('.') != std::string_view::npos || host.find(':') != std::string_view::npos;
}

std::optional<std::uint16_t> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  const int v = std::stoi(std::string(s));
  if (v < 1 || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

struct HostPort {
  std::string host;
  std::optional<std::uint16_t> port;
};

// "host", "host:port", "[v6]:port", "v6" (a bare IPv6 literal has no port).
Result<HostPort> split_host_port(std::string_view term) {
  HostPort out;
  if (!term.empty() && term.front() == '[') {
    const auto close = term.find(']');
    if (close == std::string_view::npos) return usage(fmt::format("'{}': missing ']'", term));
    out.host = std::string(term.substr(1, close - 1));
    const std::string_view rest = term.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return usage(fmt::format("'{}': expected ':PORT' after ']'", term));
      out.port = parse_port(rest.substr(1));
      if (!out.port) return usage(fmt::format("'{}': the port must be 1-65535", term));
    }
    return out;
  }
  const auto colon = term.rfind(':');
  if (colon == std::string_view::npos || term.find(':') != colon) {
    out.host = std::string(term);
    return out;
  }
  out.host = std::string(term.substr(0, colon));
  out.port = parse_port(term.substr(colon + 1));
  if (!out.port) return usage(fmt::format("'{}': the port must be 1-65535", term));
  return out;
}

}  // namespace

// Builds an Inventory from a parsed document. Lives only during Inventory::parse.
class InventoryBuilder {
 public:
  InventoryBuilder(const YamlNode& root, std::string file, bool ansible_only = false)
      : root_(root), file_(std::move(file)), ansible_only_(ansible_only) {}

  Inventory build() {
    const NodeContext top{file_, ""};
    if (root_.kind == YamlNode::Kind::null) fail(top, root_, "the inventory is empty");
    if (root_.kind != YamlNode::Kind::map) fail(top, root_, "expected a map at the top level");
    bool native = !ansible_only_;
    for (const auto& [key, value] : root_.entries) {
      if (key.scalar != "defaults" && key.scalar != "hosts" && key.scalar != "groups") {
        native = false;
      }
    }
    if (native) {
      build_native();
    } else {
      build_ansible();
    }
    return std::move(inv_);
  }

 private:
  // ---- native ----------------------------------------------------------------------------
  void build_native() {
    inv_.format_ = Inventory::Format::native;
    MapReader top(root_, NodeContext{file_, ""});
    std::optional<std::uint16_t> default_port;
    if (const YamlNode* d = top.find("defaults")) {
      MapReader defaults(*d, top.ctx("defaults"));
      if (const YamlNode* p = defaults.find("port")) {
        default_port = as_port(*p, defaults.ctx("port"));
      }
      inv_.default_port_ = default_port;
      if (const YamlNode* f = defaults.find("fingerprint")) {
        default_pin_ = pinned_fingerprint(*f, defaults.ctx("fingerprint"));
      }
      defaults.finish();
    }
    if (const YamlNode* h = top.find("hosts")) {
      const NodeContext ctx = top.ctx("hosts");
      if (null_or_map(*h, ctx, "hosts") != nullptr) {
        for (const auto& [key, value] : h->entries) {
          read_native_host(key, value, ctx.key(key.scalar), default_port);
        }
      }
    }
    std::map<std::string, std::vector<std::pair<std::string, const YamlNode*>>> members;
    std::map<std::string, NodeContext> group_ctx;
    if (const YamlNode* g = top.find("groups")) {
      const NodeContext ctx = top.ctx("groups");
      if (null_or_map(*g, ctx, "groups") != nullptr) {
        for (const auto& [key, value] : g->entries) {
          const NodeContext gctx = ctx.key(key.scalar);
          check_name(key, gctx, key.scalar, "group");
          if (key.scalar == "all") {
            fail(gctx, key, "'all' is implicit (every host) and cannot be defined");
          }
          if (inv_.find_host(key.scalar) != nullptr) {
            fail(gctx, key, fmt::format("'{}' is already the name of a host", key.scalar));
          }
          if (value.kind != YamlNode::Kind::sequence) {
            fail(gctx, value, "expected a list of host and group names");
          }
          auto& list = members[key.scalar];
          group_ctx.emplace(key.scalar, gctx);
          for (std::size_t i = 0; i < value.items.size(); ++i) {
            list.emplace_back(printable_string(value.items[i], gctx.index(i), "member name"),
                              &value.items[i]);
          }
        }
      }
    }
    top.finish();

    // Expand groups of groups, refusing unknown names and cycles with their position.
    std::map<std::string, std::set<std::string>> resolved;
    std::set<std::string> visiting;
    std::function<const std::set<std::string>&(const std::string&)> resolve =
        [&](const std::string& group) -> const std::set<std::string>& {
      if (auto it = resolved.find(group); it != resolved.end()) return it->second;
      visiting.insert(group);
      std::set<std::string> out;
      const auto& list = members.at(group);
      for (std::size_t i = 0; i < list.size(); ++i) {
        const auto& [name, node] = list[i];
        const NodeContext mctx = group_ctx.at(group).index(i);
        if (inv_.find_host(name) != nullptr) {
          out.insert(name);
        } else if (members.contains(name)) {
          if (visiting.contains(name)) {
            fail(mctx, *node, fmt::format("group '{}' contains itself", name));
          }
          const auto& sub = resolve(name);
          out.insert(sub.begin(), sub.end());
        } else {
          fail(mctx, *node, fmt::format("no host or group named '{}'", name));
        }
      }
      visiting.erase(group);
      return resolved[group] = std::move(out);
    };
    for (const auto& [group, list] : members) {
      inv_.groups_[group] = in_host_order(resolve(group), inv_.hosts_);
    }
    std::vector<std::string> all;
    for (const auto& h : inv_.hosts_) all.push_back(h.name);
    inv_.groups_["all"] = std::move(all);
  }

  void read_native_host(const YamlNode& key, const YamlNode& value, const NodeContext& ctx,
                        std::optional<std::uint16_t> default_port) {
    check_name(key, ctx, key.scalar, "host");
    InventoryHost host;
    host.name = key.scalar;
    host.address = key.scalar;
    host.port = default_port;
    host.pin_sha256 = default_pin_;
    if (null_or_map(value, ctx, "host settings") != nullptr) {
      MapReader r(value, ctx);
      if (const YamlNode* a = r.find("address")) {
        host.address = printable_string(*a, r.ctx("address"), "address");
      }
      if (const YamlNode* p = r.find("port")) host.port = as_port(*p, r.ctx("port"));
      if (const YamlNode* s = r.find("server_name")) {
        host.server_name = printable_string(*s, r.ctx("server_name"), "server_name");
      }
      if (const YamlNode* f = r.find("fingerprint")) {
        host.pin_sha256 = pinned_fingerprint(*f, r.ctx("fingerprint"));
      }
      r.finish();
    }
    inv_.hosts_.push_back(std::move(host));
  }

  // ---- Ansible ---------------------------------------------------------------------------
  struct Var {
    const YamlNode* value;
    NodeContext ctx;
  };
  struct Group {
    std::vector<std::string> hosts;
    std::vector<std::string> children;
    std::map<std::string, Var> vars;
    int depth = -1;
  };
  struct HostVars {
    std::map<std::string, Var> vars;
  };

  void build_ansible() {
    inv_.format_ = Inventory::Format::ansible;
    const NodeContext top{file_, ""};
    groups_["all"];
    for (const auto& [key, value] : root_.entries) {
      const NodeContext gctx = top.key(key.scalar);
      check_name(key, gctx, key.scalar, "group");
      if (key.scalar != "all") add_unique(groups_["all"].children, key.scalar);
      read_group(key.scalar, key, value, gctx);
    }

    // Depth from `all` decides which group's vars win (deeper wins, then name order), as in
    // Ansible.
    groups_["all"].depth = 0;
    if (auto it = groups_["all"].vars.find("opsagent_port"); it != groups_["all"].vars.end()) {
      inv_.default_port_ = as_port(*it->second.value, it->second.ctx);
    }
    for (std::size_t round = 0; round <= groups_.size(); ++round) {
      bool changed = false;
      for (auto& [name, g] : groups_) {
        if (g.depth < 0) continue;
        for (const auto& child : g.children) {
          Group& c = groups_.at(child);
          if (c.depth < g.depth + 1) {
            c.depth = g.depth + 1;
            changed = true;
          }
        }
      }
      if (!changed) break;
      if (round == groups_.size()) {
        fail(top, root_, "the groups' children form a cycle");
      }
    }

    std::map<std::string, std::set<std::string>> members;
    for (const auto& [name, g] : groups_) members[name] = collect(name, 0);
    std::set<std::string> grouped;
    for (const auto& [name, set] : members) {
      if (name != "all" && name != "ungrouped") grouped.insert(set.begin(), set.end());
    }
    auto& ungrouped = members["ungrouped"];
    for (const auto& h : host_order_) {
      if (!grouped.contains(h)) ungrouped.insert(h);
    }
    members["all"].insert(host_order_.begin(), host_order_.end());

    for (const auto& name : host_order_) {
      // Group vars from shallow to deep, then the host's own vars.
      std::vector<std::string> host_groups;
      for (const auto& [group, set] : members) {
        if (set.contains(name) && groups_.contains(group)) host_groups.push_back(group);
      }
      std::sort(host_groups.begin(), host_groups.end(),
                [&](const std::string& a, const std::string& b) {
                  return std::pair(groups_.at(a).depth, a) < std::pair(groups_.at(b).depth, b);
                });
      std::map<std::string, Var> vars;
      for (const auto& group : host_groups) {
        for (const auto& [k, v] : groups_.at(group).vars) vars.insert_or_assign(k, v);
      }
      for (const auto& [k, v] : host_vars_[name].vars) vars.insert_or_assign(k, v);

      InventoryHost host;
      host.name = name;
      host.address = name;
      if (auto it = vars.find("ansible_host"); it != vars.end()) {
        host.address = printable_string(*it->second.value, it->second.ctx, "ansible_host");
      }
      if (auto it = vars.find("opsagent_port"); it != vars.end()) {
        host.port = as_port(*it->second.value, it->second.ctx);
      } else if (auto jt = vars.find("ansible_port"); jt != vars.end()) {
        host.port = as_port(*jt->second.value, jt->second.ctx);
      }
      if (auto it = vars.find("opsagent_fingerprint"); it != vars.end()) {
        host.pin_sha256 = pinned_fingerprint(*it->second.value, it->second.ctx);
      }
      if (auto it = vars.find("opsagent_server_name"); it != vars.end()) {
        host.server_name =
            printable_string(*it->second.value, it->second.ctx, "opsagent_server_name");
      }
      inv_.hosts_.push_back(std::move(host));
    }
    for (const auto& [group, set] : members) inv_.groups_[group] = in_host_order(set, inv_.hosts_);
  }

  std::set<std::string> collect(const std::string& group, std::size_t depth) {
    std::set<std::string> out;
    if (depth > groups_.size()) return out;  // a cycle; reported by the depth pass
    const Group& g = groups_.at(group);
    out.insert(g.hosts.begin(), g.hosts.end());
    for (const auto& child : g.children) {
      const auto sub = collect(child, depth + 1);
      out.insert(sub.begin(), sub.end());
    }
    return out;
  }

  static void read_vars(const YamlNode& node, const NodeContext& ctx,
                        std::map<std::string, Var>& into) {
    if (null_or_map(node, ctx, "vars") == nullptr) return;
    for (const auto& [key, value] : node.entries) {
      into.insert_or_assign(key.scalar, Var{&value, ctx.key(key.scalar)});
    }
  }

  void read_group(const std::string& name, const YamlNode& key, const YamlNode& node,
                  const NodeContext& ctx) {
    if (inv_.find_host(name) != nullptr || host_vars_.contains(name)) {
      fail(ctx, key, fmt::format("'{}' is already the name of a host", name));
    }
    groups_[name];
    if (null_or_map(node, ctx, "a group (hosts, children, vars)") == nullptr) return;
    MapReader r(node, ctx);
    if (const YamlNode* hosts = r.find("hosts")) {
      const NodeContext hctx = r.ctx("hosts");
      if (null_or_map(*hosts, hctx, "hosts") != nullptr) {
        for (const auto& [hkey, hvalue] : hosts->entries) {
          const NodeContext one = hctx.key(hkey.scalar);
          check_printable(hkey, one, hkey.scalar, "host name");
          auto names = expand_host_range(hkey.scalar);
          if (!names) fail(one, hkey, names.error().message);
          for (std::string host : names.value()) {
            // Ansible allows "host:port" as a host key; the port is its ansible_port.
            std::optional<std::string> key_port;
            if (const auto colon = host.rfind(':');
                colon != std::string::npos && host.find(':') == colon &&
                parse_port(std::string_view(host).substr(colon + 1))) {
              key_port = host.substr(colon + 1);
              host.resize(colon);
            }
            check_name(hkey, one, host, "host");
            if (groups_.contains(host)) {
              fail(one, hkey, fmt::format("'{}' is already the name of a group", host));
            }
            if (!host_vars_.contains(host)) host_order_.push_back(host);
            if (key_port) {
              YamlNode& port_node = synthetic_.emplace_back();
              port_node.kind = YamlNode::Kind::scalar;
              port_node.mark = hkey.mark;
              port_node.scalar = *key_port;
              host_vars_[host].vars.insert_or_assign("ansible_port", Var{&port_node, one});
            }
            read_vars(hvalue, one, host_vars_[host].vars);
            add_unique(groups_[name].hosts, host);
          }
        }
      }
    }
    if (const YamlNode* children = r.find("children")) {
      const NodeContext cctx = r.ctx("children");
      if (null_or_map(*children, cctx, "children") != nullptr) {
        for (const auto& [ckey, cvalue] : children->entries) {
          const NodeContext one = cctx.key(ckey.scalar);
          check_name(ckey, one, ckey.scalar, "group");
          if (ckey.scalar == "all") fail(one, ckey, "'all' cannot be a child group");
          add_unique(groups_[name].children, ckey.scalar);
          read_group(ckey.scalar, ckey, cvalue, one);
        }
      }
    }
    if (const YamlNode* vars = r.find("vars")) read_vars(*vars, r.ctx("vars"), groups_[name].vars);
    r.finish();
  }

  const YamlNode& root_;
  std::string file_;
  Inventory inv_;
  std::map<std::string, Group> groups_;
  std::map<std::string, HostVars> host_vars_;
  std::vector<std::string> host_order_;
  bool ansible_only_;
  std::string default_pin_;         // native defaults.fingerprint               // an INI or script
                                    // inventory: never the native format
  std::deque<YamlNode> synthetic_;  // values implied by the file (stable addresses for Var)
};

Inventory Inventory::load(const std::filesystem::path& path) {
  if (is_inventory_script(path)) {
    const YamlNode root = load_inventory_script(path);
    return InventoryBuilder(root, path.string() + " --list", true).build();
  }
  std::ifstream in(path, std::ios::binary);
  std::string text;
  if (in) {
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (text.size() > kMaxInventoryBytes) {
      throw config::ConfigError(
          fmt::format("{}: larger than {} MiB", path.string(), kMaxInventoryBytes >> 20U));
    }
    if (path.extension() == ".ini" ||
        (path.extension() != ".yaml" && path.extension() != ".yml" && looks_like_ini(text))) {
      const YamlNode root = parse_ansible_ini(text, path.string());
      return InventoryBuilder(root, path.string(), true).build();
    }
  }
  const YamlNode root = config::load_yaml_file(path);  // also says why a file cannot be read
  return InventoryBuilder(root, path.string()).build();
}

Inventory Inventory::parse(const std::string& text, const std::string& file) {
  if (looks_like_ini(text)) {
    const YamlNode root = parse_ansible_ini(text, file);
    return InventoryBuilder(root, file, true).build();
  }
  const YamlNode root = config::parse_yaml(text, file);
  return InventoryBuilder(root, file).build();
}

const InventoryHost* Inventory::find_host(std::string_view name) const {
  for (const auto& h : hosts_) {
    if (h.name == name) return &h;
  }
  return nullptr;
}

Result<std::vector<std::string>> expand_host_range(std::string_view name) {
  const auto open = name.find('[');
  if (open == std::string_view::npos) {
    if (name.find(']') != std::string_view::npos) {
      return usage(fmt::format("'{}': ']' without '['", name));
    }
    return std::vector<std::string>{std::string(name)};
  }
  const auto close = name.find(']', open);
  if (close == std::string_view::npos) return usage(fmt::format("'{}': '[' without ']'", name));
  const std::string_view spec = name.substr(open + 1, close - open - 1);
  const std::string_view prefix = name.substr(0, open);
  auto rest = expand_host_range(name.substr(close + 1));
  if (!rest) return rest.error();

  const auto c1 = spec.find(':');
  if (c1 == std::string_view::npos) {
    return usage(fmt::format("'{}': a range is [START:END] or [START:END:STEP]", name));
  }
  const auto c2 = spec.find(':', c1 + 1);
  const std::string_view first = spec.substr(0, c1);
  const std::string_view last =
      spec.substr(c1 + 1, c2 == std::string_view::npos ? std::string_view::npos : c2 - c1 - 1);
  std::size_t step = 1;
  if (c2 != std::string_view::npos) {
    const auto s = parse_port(spec.substr(c2 + 1));
    if (!s) return usage(fmt::format("'{}': bad step", name));
    step = *s;
  }
  std::vector<std::string> items;
  const auto digits = [](std::string_view s) {
    return !s.empty() && s.size() <= 9 &&
           s.find_first_not_of("0123456789") == std::string_view::npos;
  };
  if (digits(first) && digits(last)) {
    const long a = std::stol(std::string(first));
    const long b = std::stol(std::string(last));
    if (a > b) return usage(fmt::format("'{}': the range runs backwards", name));
    const std::size_t width = first.size() > 1 && first.front() == '0' ? first.size() : 0;
    for (long i = a; i <= b; i += static_cast<long>(step)) {
      items.push_back(fmt::format("{:0{}}", i, width));
      if (items.size() > kMaxRangeHosts) {
        return usage(fmt::format("'{}': the range is too large", name));
      }
    }
  } else if (first.size() == 1 && last.size() == 1 &&
             std::islower(static_cast<unsigned char>(first[0])) != 0 &&
             std::islower(static_cast<unsigned char>(last[0])) != 0 && first[0] <= last[0]) {
    const int to = static_cast<unsigned char>(last[0]);
    for (int c = static_cast<unsigned char>(first[0]); c <= to; c += static_cast<int>(step)) {
      items.emplace_back(1, static_cast<char>(c));
    }
  } else {
    return usage(fmt::format("'{}': a range is numeric ([01:10]) or alphabetic ([a:f])", name));
  }
  std::vector<std::string> out;
  for (const auto& item : items) {
    for (const auto& tail : rest.value()) {
      std::string host(prefix);
      host += item;
      host += tail;
      out.push_back(std::move(host));
      if (out.size() > kMaxRangeHosts) {
        return usage(fmt::format("'{}': the range is too large", name));
      }
    }
  }
  return out;
}

namespace {

// Ansible's rule: a pattern with a comma is split at commas only; without one, ':' separates
// terms too ("web:db:!web3"), except where it belongs to an address: "host:7443",
// "[2001:db8::7]:9999", a bare IPv6 literal ("::" or a port-like last part).
Result<std::vector<std::string>> split_pattern(std::string_view pattern) {
  std::vector<std::string> terms;
  const bool commas = pattern.find(',') != std::string_view::npos;
  std::vector<std::string> parts;
  std::string current;
  int depth = 0;
  for (const char c : pattern) {
    if (c == '[') ++depth;
    if (c == ']' && depth > 0) --depth;
    if (c == ',' || (!commas && c == ':' && depth == 0)) {
      parts.push_back(current);
      current.clear();
      continue;
    }
    current.push_back(c);
  }
  parts.push_back(current);
  const bool address_like =
      !commas && parts.size() > 1 &&
      (pattern.find("::") != std::string_view::npos ||
       (parts.size() == 2 && !parts[1].empty() &&
        parts[1].find_first_not_of("0123456789") == std::string::npos) ||
       (parts.size() == 2 && parts[1].find_first_of("!&~") == std::string::npos &&
        !parts[1].empty() && std::isdigit(static_cast<unsigned char>(parts[1][0])) != 0));
  if (address_like) return std::vector<std::string>{std::string(pattern)};
  for (auto& term : parts) {
    while (!term.empty() && term.front() == ' ') term.erase(term.begin());
    while (!term.empty() && term.back() == ' ') term.pop_back();
    if (term.empty()) return usage(fmt::format("empty target in '{}'", pattern));
    terms.push_back(std::move(term));
  }
  return terms;
}

// What one term names: inventory host names (in inventory order) or one literal target.
struct TermHosts {
  std::vector<std::string> names;
  std::optional<Target> literal;
  std::optional<std::uint16_t> port_override;
  bool one_host = false;  // a host name or address, not a group, glob or regex
};

Result<TermHosts> resolve_term(const Inventory* inventory, std::string_view term,
                               std::optional<std::uint16_t> default_port) {
  TermHosts out;
  const auto in_inventory_order = [&](const std::set<std::string>& matched) {
    for (const auto& h : inventory->hosts()) {
      if (matched.contains(h.name)) out.names.push_back(h.name);
    }
  };
  if (term.front() == '~') {
    if (inventory == nullptr) {
      return usage(fmt::format("'{}': regular expressions need an inventory", term));
    }
    std::regex re;
    try {
      re = std::regex(std::string(term.substr(1)), std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return usage(fmt::format("'{}': invalid regular expression: {}", term, e.what()));
    }
    std::set<std::string> matched;
    for (const auto& h : inventory->hosts()) {
      if (std::regex_search(h.name, re)) matched.insert(h.name);
    }
    for (const auto& [group, hosts] : inventory->groups()) {
      if (std::regex_search(group, re)) matched.insert(hosts.begin(), hosts.end());
    }
    if (matched.empty()) {
      return usage(fmt::format("'{}' matches no host or group in the inventory", term));
    }
    in_inventory_order(matched);
    return out;
  }
  if (has_glob(term)) {
    if (inventory == nullptr) {
      return usage(fmt::format("'{}': globs need an inventory (--inventory)", term));
    }
    const std::string glob(term);
    std::set<std::string> matched;
    for (const auto& h : inventory->hosts()) {
      if (::fnmatch(glob.c_str(), h.name.c_str(), 0) == 0) matched.insert(h.name);
    }
    for (const auto& [group, hosts] : inventory->groups()) {
      if (::fnmatch(glob.c_str(), group.c_str(), 0) == 0) {
        matched.insert(hosts.begin(), hosts.end());
      }
    }
    if (matched.empty()) {
      return usage(fmt::format("'{}' matches no host or group in the inventory", term));
    }
    in_inventory_order(matched);
    return out;
  }
  if (inventory != nullptr && inventory->groups().contains(std::string(term))) {
    out.names = inventory->groups().find(term)->second;
    return out;
  }
  out.one_host = true;
  if (inventory != nullptr && inventory->find_host(term) != nullptr) {
    out.names.emplace_back(term);
    return out;
  }
  auto hp = split_host_port(term);
  if (!hp) return hp.error();
  if (hp->host.empty()) return usage(fmt::format("'{}': empty host", term));
  if (inventory != nullptr && inventory->find_host(hp->host) != nullptr) {
    out.names.push_back(hp->host);
    out.port_override = hp->port;
    return out;
  }
  if (term == "all") {
    return usage(
        "'all' needs an inventory (--inventory, OPSCTL_INVENTORY or inventory: in the config "
        "file)");
  }
  if (inventory != nullptr && !looks_like_address(hp->host)) {
    return usage(fmt::format("'{}' is not a host or group in the inventory", hp->host));
  }
  // A host that is not in the inventory: its own port, else the inventory's default port,
  // else --port / $OPSCTL_PORT / port: of the config file.
  std::optional<std::uint16_t> port = hp->port;
  if (!port && inventory != nullptr) port = inventory->default_port();
  if (!port) port = default_port;
  if (!port) {
    return usage(fmt::format(
        "no port for '{}': use HOST:PORT, --port, port: in the config file or defaults.port in "
        "the inventory",
        term));
  }
  out.literal = Target{std::string(term), hp->host, *port, hp->host};
  return out;
}

// Evaluates a whole pattern to target names (inventory names or literal terms), in order.
struct Evaluated {
  std::vector<std::string> order;         // names, in pattern then inventory order
  std::map<std::string, Target> literal;  // name -> target for hosts not in the inventory
  std::map<std::string, std::optional<std::uint16_t>> port_override;
  std::size_t terms = 0;
  bool one_host = false;
};

Result<Evaluated> evaluate(const Inventory* inventory, std::string_view pattern,
                           std::optional<std::uint16_t> default_port) {
  auto terms = split_pattern(pattern);
  if (!terms) return terms.error();
  Evaluated ev;
  ev.terms = terms->size();
  std::vector<std::string> regular;
  std::vector<std::string> intersect;
  std::vector<std::string> exclude;
  for (const auto& t : terms.value()) {
    if (t.front() == '!' || t.front() == '&') {
      if (t.size() == 1) {
        return usage(fmt::format("'{}' needs a host, group, glob or ~regex after it", t));
      }
      (t.front() == '!' ? exclude : intersect).push_back(t.substr(1));
    } else {
      regular.push_back(t);
    }
  }
  // As in Ansible: only exclusions and intersections apply to every host.
  if (regular.empty()) {
    if (inventory == nullptr) {
      return usage(fmt::format("'{}': '!' and '&' alone need an inventory", pattern));
    }
    regular.emplace_back("all");
  }
  std::set<std::string> chosen;
  for (const auto& t : regular) {
    auto hosts = resolve_term(inventory, t, default_port);
    if (!hosts) return hosts.error();
    ev.one_host = hosts->one_host;
    if (hosts->literal) {
      const std::string name = hosts->literal->name;
      if (chosen.insert(name).second) {
        ev.order.push_back(name);
        ev.literal.emplace(name, *hosts->literal);
      }
      continue;
    }
    for (const auto& name : hosts->names) {
      if (!chosen.insert(name).second) continue;
      ev.order.push_back(name);
      ev.port_override[name] = hosts->port_override;
    }
  }
  const auto names_of = [&](const std::string& t) -> Result<std::set<std::string>> {
    auto hosts = resolve_term(inventory, t, default_port);
    if (!hosts) return hosts.error();
    std::set<std::string> set(hosts->names.begin(), hosts->names.end());
    if (hosts->literal) set.insert(hosts->literal->name);
    return set;
  };
  for (const auto& t : intersect) {
    auto set = names_of(t);
    if (!set) return set.error();
    std::erase_if(ev.order, [&](const std::string& n) { return set->count(n) == 0; });
  }
  for (const auto& t : exclude) {
    auto set = names_of(t);
    if (!set) return set.error();
    std::erase_if(ev.order, [&](const std::string& n) { return set->count(n) != 0; });
  }
  return ev;
}

}  // namespace

Result<Selection> select_targets(const Inventory* inventory, std::string_view pattern,
                                 std::optional<std::uint16_t> default_port,
                                 std::string_view limit) {
  auto ev = evaluate(inventory, pattern, default_port);
  if (!ev) return ev.error();
  if (!limit.empty()) {
    auto lim = evaluate(inventory, limit, default_port);
    if (!lim) return lim.error();
    const std::set<std::string> allowed(lim->order.begin(), lim->order.end());
    std::erase_if(ev->order, [&](const std::string& n) { return !allowed.contains(n); });
  }
  Selection sel;
  for (const auto& name : ev->order) {
    if (const auto it = ev->literal.find(name); it != ev->literal.end()) {
      sel.targets.push_back(it->second);
      continue;
    }
    const InventoryHost& h = *inventory->find_host(name);
    const auto override_it = ev->port_override.find(name);
    const std::optional<std::uint16_t> port =
        override_it != ev->port_override.end() && override_it->second
            ? override_it->second
            : (h.port ? h.port : default_port);
    if (!port) {
      return usage(
          fmt::format("no port for host '{}': set one in the inventory, use HOST:PORT, --port, or "
                      "port: in the config file",
                      h.name));
    }
    sel.targets.push_back(Target{h.name, h.address, *port,
                                 h.server_name.empty() ? h.address : h.server_name, h.pin_sha256});
  }
  if (sel.targets.empty()) {
    return usage(limit.empty()
                     ? fmt::format("'{}' selects no host", pattern)
                     : fmt::format("'{}' with --limit '{}' selects no host", pattern, limit));
  }
  sel.single_host = ev->terms == 1 && ev->one_host && sel.targets.size() == 1;
  return sel;
}

Result<std::string> read_limit_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) {
    return usage(
        fmt::format("--limit @{}: cannot read: {}", path.string(), common::errno_text(errno)));
  }
  std::string pattern;
  std::size_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    while (!line.empty() && line.front() == ' ') line.erase(line.begin());
    if (line.empty() || line.front() == '#') continue;
    if (line.find_first_of(" \t,") != std::string::npos) {
      return usage(
          fmt::format("{}:{}: one host name per line, got '{}'", path.string(), line_no, line));
    }
    pattern += (pattern.empty() ? "" : ",") + line;
  }
  if (pattern.empty()) return usage(fmt::format("{}: names no host", path.string()));
  return pattern;
}

}  // namespace opsagent::client
