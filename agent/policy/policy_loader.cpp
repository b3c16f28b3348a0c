#include <algorithm>
#include <initializer_list>
#include <set>
#include <span>
#include <stdexcept>
#include <string_view>

#include <openssl/evp.h>

#include "agent/common/hex.hpp"
#include "agent/config/config_error.hpp"
#include "agent/config/config_file.hpp"
#include "agent/config/strict_yaml.hpp"
#include "agent/config/yaml_reader.hpp"
#include "agent/policy/authorizer.hpp"
#include "agent/policy/policy.hpp"

namespace opsagent::policy {
namespace {

using config::as_bool;
using config::as_duration;
using config::as_int;
using config::as_size;
using config::as_string;
using config::as_string_list;
using config::fail;
using config::MapReader;
using config::NodeContext;
using config::YamlNode;
using namespace std::chrono_literals;

const YamlNode kAbsent{};

constexpr std::size_t kMaxNameBytes = 64;
// `help run` shows a description on the command's line: one short line.
constexpr std::size_t kMaxDescriptionBytes = 200;

// Rejects unknown keys before anything else is read, so a misspelt key is reported as such.
// Role, log, command and argument names appear in rule names, audit records and replies, so
// they are kept to a small, unambiguous alphabet.
void check_name(std::string_view name, const NodeContext& ctx, const YamlNode& node,
                std::string_view what) {
  bool ok = !name.empty() && name.size() <= kMaxNameBytes;
  for (std::size_t i = 0; ok && i < name.size(); ++i) {
    const char c = name[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    ok = alnum || (i > 0 && (c == '-' || c == '_' || c == '.' || c == '@'));
  }
  if (!ok) {
    fail(ctx, node,
         std::string(what) + " '" + std::string(name) +
             "' must be 1-64 of A-Z a-z 0-9 - _ . @, starting with a letter or digit");
  }
}

void note(Policy& policy, std::string key, const YamlNode& node) {
  policy.locations[std::move(key)] = SourceLocation{node.mark.line, node.mark.column};
}

// Notes where each item of a list of names is written, as "PREFIX.ITEM".
void note_items(Policy& policy, const std::string& prefix, const YamlNode& list) {
  for (const auto& item : list.items) note(policy, prefix + "." + item.scalar, item);
}

std::set<std::string> as_name_set(const YamlNode& n, const NodeContext& ctx) {
  const auto list = as_string_list(n, ctx);
  return {list.begin(), list.end()};
}

std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256 failed");
  }
  return hex_encode(std::span(digest, length));
}

// "AB:CD:...": 32 bytes of hex separated by colons, stored upper-case like PeerIdentity's.
std::string normalize_fingerprint(const std::string& text, const NodeContext& ctx,
                                  const YamlNode& node) {
  constexpr std::size_t kBytes = 32;
  bool ok = text.size() == kBytes * 3 - 1;
  std::string out;
  for (std::size_t i = 0; ok && i < text.size(); ++i) {
    const char c = text[i];
    if (i % 3 == 2) {
      ok = c == ':';
      out += ':';
    } else if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')) {
      out += c;
    } else if (c >= 'a' && c <= 'f') {
      out += static_cast<char>(c - 'a' + 'A');
    } else {
      ok = false;
    }
  }
  if (!ok) fail(ctx, node, "expected a SHA-256 fingerprint \"AB:CD:...\" (32 hex bytes)");
  return out;
}

void read_logs(const YamlNode& node, const NodeContext& ctx, Policy& policy) {
  const MapReader map(node, ctx);  // only to insist on a map
  for (const auto& [k, v] : node.entries) {
    check_name(k.scalar, ctx, k, "log name");
    const std::string path = as_string(v, ctx.key(k.scalar));
    // Logs are opened by absolute path only: a relative one would depend on the working directory.
    if (path.front() != '/') fail(ctx.key(k.scalar), v, "log path must be absolute");
    policy.logs.emplace(k.scalar, path);
    note(policy, "logs." + k.scalar, k);
  }
}

ArgSpec read_arg(const YamlNode& node, const NodeContext& ctx) {
  MapReader map(node, ctx);
  map.expect_keys({"name", "pattern", "optional"});
  ArgSpec arg;
  const YamlNode& name = map.require("name");
  arg.name = as_string(name, map.ctx("name"));
  check_name(arg.name, map.ctx("name"), name, "argument name");

  const YamlNode& pattern = map.require("pattern");
  arg.pattern_text = as_string(pattern, map.ctx("pattern"));
  RE2::Options options;
  options.set_log_errors(false);
  auto re = std::make_shared<const re2::RE2>(arg.pattern_text, options);
  if (!re->ok()) fail(map.ctx("pattern"), pattern, "invalid regular expression: " + re->error());
  arg.pattern = std::move(re);

  if (const YamlNode* v = map.find("optional")) arg.optional = as_bool(*v, map.ctx("optional"));
  return arg;
}

RunCommand read_command(const std::string& name, const YamlNode& node, const NodeContext& ctx) {
  MapReader map(node, ctx);
  map.expect_keys({"description", "argv", "args", "end_of_options", "timeout", "max_output"});
  RunCommand cmd;
  cmd.name = name;

  if (const YamlNode* v = map.find("description")) {
    // Control characters (newlines included) are refused by the YAML reader already.
    cmd.description = as_string(*v, map.ctx("description"));
    if (cmd.description.size() > kMaxDescriptionBytes) {
      fail(map.ctx("description"), *v,
           "a description is one line of at most " + std::to_string(kMaxDescriptionBytes) +
               " bytes");
    }
  }

  const YamlNode& argv = map.require("argv");
  const NodeContext argv_ctx = map.ctx("argv");
  if (argv.kind != YamlNode::Kind::sequence || argv.items.empty()) {
    fail(argv_ctx, argv,
         "expected a non-empty list: the program's absolute path, then its arguments");
  }
  // Not as_string_list: repeated arguments ("-v", "-v") are legitimate in an argv.
  for (std::size_t i = 0; i < argv.items.size(); ++i) {
    cmd.argv.push_back(as_string(argv.items[i], argv_ctx.index(i)));
  }
  if (cmd.argv[0].front() != '/') {
    fail(argv_ctx.index(0), argv.items[0],
         "the program must be an absolute path (there is no PATH search)");
  }

  if (const YamlNode* args = map.find("args")) {
    const NodeContext args_ctx = map.ctx("args");
    if (args->kind != YamlNode::Kind::sequence) {
      fail(args_ctx, *args, "expected a list of arguments");
    }
    for (std::size_t i = 0; i < args->items.size(); ++i) {
      ArgSpec arg = read_arg(args->items[i], args_ctx.index(i));
      // A required argument after an optional one would make the position of every later
      // argument ambiguous.
      if (!arg.optional && !cmd.args.empty() && cmd.args.back().optional) {
        fail(args_ctx.index(i), args->items[i],
             "required argument '" + arg.name + "' follows an optional one");
      }
      for (const auto& other : cmd.args) {
        if (other.name == arg.name) {
          fail(args_ctx.index(i), args->items[i], "duplicate argument name '" + arg.name + "'");
        }
      }
      cmd.args.push_back(std::move(arg));
    }
  }
  if (const YamlNode* v = map.find("end_of_options")) {
    cmd.end_of_options = as_bool(*v, map.ctx("end_of_options"));
  }
  if (const YamlNode* v = map.find("timeout")) {
    cmd.timeout = as_duration(*v, map.ctx("timeout"), 1ms, 24h);
  }
  if (const YamlNode* v = map.find("max_output")) {
    cmd.max_output = as_size(*v, map.ctx("max_output"), 1, 1ULL << 30);
  }
  return cmd;
}

void read_commands(const YamlNode& node, const NodeContext& ctx, Policy& policy) {
  const MapReader map(node, ctx);  // only to insist on a map
  for (const auto& [k, v] : node.entries) {
    check_name(k.scalar, ctx, k, "command name");
    RunCommand cmd = read_command(k.scalar, v, ctx.key(k.scalar));
    note(policy, "commands." + k.scalar, k);
    for (const auto& [key, value] : v.entries) {
      if (key.scalar != "args") continue;
      for (std::size_t i = 0; i < value.items.size() && i < cmd.args.size(); ++i) {
        note(policy, "commands." + k.scalar + ".args." + cmd.args[i].name, value.items[i]);
      }
    }
    policy.commands.emplace(k.scalar, std::move(cmd));
  }
}

void check_verbs(const YamlNode& list, const NodeContext& ctx) {
  for (std::size_t i = 0; i < list.items.size(); ++i) {
    const std::string& verb = list.items[i].scalar;
    const protocol::VerbSpec* spec = protocol::find_verb(verb);
    if (spec != nullptr && spec->grant == protocol::Grant::grantable) continue;
    if (spec != nullptr) {
      fail(ctx.index(i), list.items[i],
           "'" + verb + "' is always available and cannot be granted or denied");
    }
    std::set<std::string_view> grantable;
    for (const auto& v : protocol::all_verbs()) {
      if (v.grant == protocol::Grant::grantable) grantable.insert(v.name);
    }
    std::string allowed;
    for (const auto v : grantable) {
      allowed += allowed.empty() ? "" : ", ";
      allowed += v;
    }
    std::string message = "unknown command '" + verb + "' (known: ";
    message += allowed;
    message += ')';
    fail(ctx.index(i), list.items[i], message);
  }
}

Role read_role(const std::string& name, const YamlNode& node, const NodeContext& ctx,
               Policy& policy) {
  const std::string prefix = "roles." + name;
  MapReader map(node, ctx);
  map.expect_keys({"commands", "deny", "logs", "hash", "run"});
  Role role;
  role.name = name;

  if (const YamlNode* v = map.find("commands")) {
    role.commands = as_name_set(*v, map.ctx("commands"));
    check_verbs(*v, map.ctx("commands"));
    note_items(policy, prefix + ".commands", *v);
  }
  if (const YamlNode* v = map.find("deny")) {
    role.deny = as_name_set(*v, map.ctx("deny"));
    check_verbs(*v, map.ctx("deny"));
    note_items(policy, prefix + ".deny", *v);
    // Allowing and denying the same verb in one role can only be a mistake.
    for (std::size_t i = 0; i < v->items.size(); ++i) {
      if (role.commands.contains(v->items[i].scalar)) {
        fail(map.ctx("deny").index(i), v->items[i],
             "'" + v->items[i].scalar + "' is both allowed and denied by this role");
      }
    }
  }
  if (const YamlNode* v = map.find("logs")) {
    role.logs = as_name_set(*v, map.ctx("logs"));
    note_items(policy, prefix + ".logs", *v);
    for (std::size_t i = 0; i < v->items.size(); ++i) {
      if (!policy.logs.contains(v->items[i].scalar)) {
        fail(map.ctx("logs").index(i), v->items[i],
             "log '" + v->items[i].scalar + "' is not defined under logs:");
      }
    }
  }
  if (const YamlNode* v = map.find("hash")) {
    MapReader hash(*v, map.ctx("hash"));
    hash.expect_keys({"algorithms", "paths"});
    if (const YamlNode* algs = hash.find("algorithms")) {
      role.hash.algorithms = as_name_set(*algs, hash.ctx("algorithms"));
      note_items(policy, prefix + ".hash.algorithms", *algs);
      for (std::size_t i = 0; i < algs->items.size(); ++i) {
        if (protocol::find_hash_algorithm(algs->items[i].scalar) == nullptr) {
          std::set<std::string_view> names;
          for (const auto& a : protocol::hash_algorithms()) names.insert(a.name);
          std::string known;
          for (const auto a : names) {
            known += known.empty() ? "" : ", ";
            known += a;
          }
          fail(hash.ctx("algorithms").index(i), algs->items[i],
               "unsupported hash algorithm '" + algs->items[i].scalar + "' (supported: " + known +
                   ")");
        }
      }
    }
    if (const YamlNode* paths = hash.find("paths")) {
      const auto texts = as_string_list(*paths, hash.ctx("paths"));
      note_items(policy, prefix + ".hash.paths", *paths);
      for (std::size_t i = 0; i < texts.size(); ++i) {
        try {
          role.hash.paths.emplace_back(texts[i]);
        } catch (const std::invalid_argument& e) {
          fail(hash.ctx("paths").index(i), paths->items[i], e.what());
        }
      }
    }
  }
  if (const YamlNode* v = map.find("run")) {
    role.run = as_name_set(*v, map.ctx("run"));
    note_items(policy, prefix + ".run", *v);
    for (std::size_t i = 0; i < v->items.size(); ++i) {
      if (!policy.commands.contains(v->items[i].scalar)) {
        fail(map.ctx("run").index(i), v->items[i],
             "command '" + v->items[i].scalar + "' is not defined under commands:");
      }
    }
  }
  return role;
}

void read_roles(const YamlNode& node, const NodeContext& ctx, Policy& policy) {
  const MapReader map(node, ctx);  // only to insist on a map
  for (const auto& [k, v] : node.entries) {
    check_name(k.scalar, ctx, k, "role name");
    policy.roles.emplace(k.scalar, read_role(k.scalar, v, ctx.key(k.scalar), policy));
    note(policy, "roles." + k.scalar, k);
  }
}

IdentityRule read_identity(const YamlNode& node, const NodeContext& ctx, const Policy& policy) {
  MapReader map(node, ctx);
  map.expect_keys({"match", "principal", "roles"});
  IdentityRule rule;

  const YamlNode& match_node = map.require("match");
  MapReader match(match_node, map.ctx("match"));
  match.expect_keys({"cn", "san_dns", "san_uri", "fingerprint", "issuer", "ca_fingerprint"});
  const YamlNode* field_node = nullptr;
  const YamlNode* field_key_node = nullptr;
  for (const auto& [key, value] : match_node.entries) {
    if (key.scalar == "issuer") {
      rule.issuer = as_string(value, match.ctx("issuer"));
    } else if (key.scalar == "ca_fingerprint") {
      rule.ca_fingerprint = normalize_fingerprint(as_string(value, match.ctx("ca_fingerprint")),
                                                  match.ctx("ca_fingerprint"), value);
    } else if (field_node == nullptr) {
      field_key_node = &key;
      field_node = &value;
    } else {
      field_node = nullptr;
      break;
    }
  }
  if (field_node == nullptr) {
    fail(map.ctx("match"), match_node,
         "expected exactly one of cn, san_dns, san_uri, fingerprint (with optional issuer, "
         "ca_fingerprint)");
  }
  const YamlNode& field_key = *field_key_node;
  const YamlNode& field_value = *field_node;
  const NodeContext value_ctx = match.ctx(field_key.scalar);
  rule.value = as_string(field_value, value_ctx);
  if (field_key.scalar == "cn") {
    rule.field = MatchField::common_name;
  } else if (field_key.scalar == "san_dns") {
    rule.field = MatchField::san_dns;
  } else if (field_key.scalar == "san_uri") {
    rule.field = MatchField::san_uri;
  } else {
    rule.field = MatchField::fingerprint;
    rule.value = normalize_fingerprint(rule.value, value_ctx, field_value);
  }

  const YamlNode& principal = map.require("principal");
  rule.principal = as_string(principal, map.ctx("principal"));
  check_name(rule.principal, map.ctx("principal"), principal, "principal");

  // An empty list is allowed: such a principal may connect but use only the builtins.
  const YamlNode& roles = map.require("roles");
  rule.roles = as_string_list(roles, map.ctx("roles"));
  for (std::size_t i = 0; i < rule.roles.size(); ++i) {
    if (!policy.roles.contains(rule.roles[i])) {
      fail(map.ctx("roles").index(i), roles.items[i],
           "role '" + rule.roles[i] + "' is not defined under roles:");
    }
  }
  return rule;
}

void read_identities(const YamlNode& node, const NodeContext& ctx, Policy& policy) {
  if (node.kind != YamlNode::Kind::sequence) fail(ctx, node, "expected a list of identity rules");
  for (std::size_t i = 0; i < node.items.size(); ++i) {
    const YamlNode& item = node.items[i];
    IdentityRule rule = read_identity(item, ctx.index(i), policy);
    rule.rule = "identities[" + std::to_string(i) + "]";
    for (const auto& earlier : policy.identities) {
      // Dead when the earlier rule matches every certificate this one matches.
      const bool covered =
          earlier.field == rule.field && earlier.value == rule.value &&
          (!earlier.issuer || earlier.issuer == rule.issuer) &&
          (!earlier.ca_fingerprint || earlier.ca_fingerprint == rule.ca_fingerprint);
      if (covered) {
        fail(ctx.index(i), item,
             "same match as " + earlier.rule + ", which always wins (first match)");
      }
      // One principal reached through several certificates must mean the same permissions,
      // or what alice may do would depend on which of her certificates she used.
      if (earlier.principal == rule.principal &&
          std::set<std::string>(earlier.roles.begin(), earlier.roles.end()) !=
              std::set<std::string>(rule.roles.begin(), rule.roles.end())) {
        fail(ctx.index(i), item,
             "principal '" + rule.principal + "' has different roles in " + earlier.rule);
      }
    }
    note(policy, rule.rule, item);
    policy.identities.push_back(std::move(rule));
  }
}

}  // namespace

std::shared_ptr<const Policy> load_policy(const std::filesystem::path& file,
                                          std::string* file_sha256) {
  const config::YamlLimits limits;
  if (file_sha256 != nullptr) file_sha256->clear();
  // One descriptor for the mode check, the bytes parsed and the bytes hashed, so the version
  // recorded in audit records is the version that was actually checked and loaded.
  const config::ConfigFile contents = config::read_config_file(file, limits.max_bytes);
  if (file_sha256 != nullptr) *file_sha256 = sha256_hex(contents.text);
  config::check_not_writable_by_others(file, contents.status);
  return load_policy_from_text(contents.text, file.string());
}

std::shared_ptr<const Policy> load_policy_from_text(const std::string& text,
                                                    const std::string& name) {
  const config::YamlLimits limits;
  const YamlNode root = config::parse_yaml(text, name, limits);

  auto policy = std::make_shared<Policy>();
  policy->source = name;
  policy->sha256 = sha256_hex(text);
  policy->version = policy->sha256.substr(0, 16);

  const NodeContext top{name, ""};
  if (root.kind == YamlNode::Kind::null) fail(top, root, "the policy is empty");
  MapReader map(root, top);
  map.expect_keys({"identities", "roles", "logs", "tail", "commands"});

  // Definitions first, so references to them can be checked as they are read.
  if (const YamlNode* v = map.find("logs")) read_logs(*v, map.ctx("logs"), *policy);
  if (const YamlNode* v = map.find("commands")) read_commands(*v, map.ctx("commands"), *policy);
  {
    const YamlNode* tail = map.find("tail");
    MapReader tail_map(tail != nullptr ? *tail : kAbsent, map.ctx("tail"));
    tail_map.expect_keys({"max_lines"});
    if (const YamlNode* v = tail_map.find("max_lines")) {
      policy->tail_max_lines =
          static_cast<int>(as_int(*v, tail_map.ctx("max_lines"), 1, 1'000'000));
      note(*policy, "tail.max_lines", *v);
    }
  }
  if (const YamlNode* v = map.find("roles")) read_roles(*v, map.ctx("roles"), *policy);
  read_identities(map.require("identities"), map.ctx("identities"), *policy);
  return policy;
}

}  // namespace opsagent::policy
