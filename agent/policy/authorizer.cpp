#include "agent/policy/authorizer.hpp"

#include <algorithm>
#include <set>

#include "agent/common/shown.hpp"

namespace opsagent::policy {
namespace {

// Longest argument a `run` command accepts; longer ones are refused before any regex runs.
constexpr std::size_t kMaxArgBytes = 4096;
constexpr int kDefaultTailLines = 10;

// Client bytes echoed in reasons are cut and control bytes escaped: reasons go to the client and
// the audit log, and must stay one printable line.
std::string shown(std::string_view text) { return opsagent::shown(text, '\'', 80); }

Decision deny(std::string rule, std::string reason) {
  Decision d;
  d.allowed = false;
  d.rule = std::move(rule);
  d.reason = std::move(reason);
  return d;
}

Decision allow(std::string rule, std::string reason) {
  Decision d;
  d.allowed = true;
  d.rule = std::move(rule);
  d.reason = std::move(reason);
  return d;
}

Decision malformed(std::string_view verb) {
  return deny("malformed", "malformed request: wrong number of arguments for " + shown(verb));
}

std::string role_rule(const Role& role, std::string_view what) {
  return "roles." + role.name + "." + std::string(what);
}

// A plain decimal without sign, spaces or leading zeros; anything else is nullopt, so
// "10;", "0x10", " 10", "-1", "1e9" and "99999999999" are all refused.
std::optional<int> parse_line_count(std::string_view text) {
  if (text.empty() || text.size() > 9 || text[0] == '0') return std::nullopt;
  int value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

Decision authorize_tail(const Policy& policy, const Principal& principal,
                        const std::vector<const Role*>& allowing,
                        const std::vector<std::string>& args) {
  const std::string& log = args[0];

  const Role* granting = nullptr;
  for (const Role* role : allowing) {
    if (role->logs.contains(log)) {
      granting = role;
      break;
    }
  }
  if (granting == nullptr) {
    return deny("default-deny",
                "no role of " + principal.name + " allows tail of log " + shown(log));
  }
  const auto path = policy.logs.find(log);
  if (path == policy.logs.end()) {
    // Cannot happen with a policy from load_policy; refuse rather than trust it.
    return deny("default-deny", "log " + shown(log) + " is not defined");
  }

  int lines = std::min(kDefaultTailLines, policy.tail_max_lines);
  if (args.size() == 2) {
    const auto n = parse_line_count(args[1]);
    if (!n || *n < 1 || *n > policy.tail_max_lines) {
      return deny("tail.max_lines", "line count " + shown(args[1]) +
                                        " must be a decimal number from 1 to " +
                                        std::to_string(policy.tail_max_lines));
    }
    lines = *n;
  }
  Decision d = allow(role_rule(*granting, "logs"), "role " + granting->name + " allows log " + log);
  d.log_path = path->second;
  d.lines = lines;
  return d;
}

Decision authorize_hash(const Principal& principal, const std::vector<const Role*>& allowing,
                        std::string_view verb, const std::string& algorithm,
                        const std::string& path) {
  auto components = split_client_path(path);
  if (!components) {
    return deny("default-deny", "path " + shown(path) + " rejected: " + components.error().message);
  }
  if (protocol::find_hash_algorithm(algorithm) == nullptr) {
    return deny("default-deny", "unsupported hash algorithm " + shown(algorithm));
  }
  const bool is_comphash = verb == protocol::spec_of(protocol::Verb::comphash).name;
  bool algorithm_granted = false;
  // The algorithm and the path must be granted by the same role: two roles each granting half
  // of a request must not add up to a grant neither of them made.
  for (const Role* role : allowing) {
    if (!is_comphash && !role->hash.algorithms.contains(algorithm)) continue;
    algorithm_granted = true;
    for (const auto& pattern : role->hash.paths) {
      // Something must remain beneath the root to open: "/var/log/**" does not grant "/var/log".
      if (components.value().size() <= pattern.root_depth()) continue;
      if (!pattern.matches(components.value())) continue;
      std::filesystem::path relative;
      for (std::size_t i = pattern.root_depth(); i < components.value().size(); ++i) {
        relative /= components.value()[i];
      }
      Decision d =
          allow(role_rule(*role, "hash.paths"), "role " + role->name + " allows " + pattern.text());
      d.algorithm = algorithm;
      d.path = PathGrant{pattern.root(), std::move(relative), pattern.text()};
      return d;
    }
  }
  if (!algorithm_granted) {
    return deny("default-deny", "no role of " + principal.name + " allows " + std::string(verb) +
                                    " with " + shown(algorithm));
  }
  return deny("default-deny",
              "no path pattern of " + principal.name + "'s roles matches " + shown(path));
}

Decision authorize_run(const Policy& policy, const Principal& principal,
                       const std::vector<const Role*>& allowing,
                       const std::vector<std::string>& args) {
  const std::string& name = args[0];
  const Role* granting = nullptr;
  for (const Role* role : allowing) {
    if (role->run.contains(name)) {
      granting = role;
      break;
    }
  }
  if (granting == nullptr) {
    return deny("default-deny", "no role of " + principal.name + " allows run " + shown(name));
  }
  const auto it = policy.commands.find(name);
  if (it == policy.commands.end()) {
    return deny("default-deny", "command " + shown(name) + " is not defined");
  }
  const RunCommand& cmd = it->second;

  const std::size_t given = args.size() - 1;
  const auto required = static_cast<std::size_t>(std::count_if(
      cmd.args.begin(), cmd.args.end(), [](const ArgSpec& a) { return !a.optional; }));
  if (given < required || given > cmd.args.size()) {
    std::string expected = required == cmd.args.size() ? std::to_string(required)
                                                       : std::to_string(required) + " to " +
                                                             std::to_string(cmd.args.size());
    return deny("commands." + name + ".args", "run " + name + " takes " + expected +
                                                  " argument(s), got " + std::to_string(given));
  }
  for (std::size_t i = 0; i < given; ++i) {
    const ArgSpec& spec = cmd.args[i];
    const std::string& arg = args[i + 1];
    const std::string which = "argument " + std::to_string(i + 1) + " (" + spec.name + ")";
    if (arg.size() > kMaxArgBytes) {
      return deny("commands." + name + ".args",
                  which + " is longer than " + std::to_string(kMaxArgBytes) + " bytes");
    }
    // FullMatch anchors at both ends: "10;x" does not satisfy "\d+".
    if (!spec.pattern || !RE2::FullMatch(arg, *spec.pattern)) {
      return deny("commands." + name + ".args",
                  which + " " + shown(arg) + " does not match " + shown(spec.pattern_text));
    }
  }

  Decision d = allow(role_rule(*granting, "run"), "role " + granting->name + " allows run " + name);
  d.run = &cmd;
  d.argv = cmd.argv;
  // "--" ends option parsing in the program, so a client "-rf" can only ever be an operand.
  if (cmd.end_of_options && given > 0) d.argv.emplace_back("--");
  d.argv.insert(d.argv.end(), args.begin() + 1, args.end());
  return d;
}

bool fingerprint_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto upper = [](char c) {
      return (c >= 'a' && c <= 'f') ? static_cast<char>(c - 'a' + 'A') : c;
    };
    if (upper(a[i]) != upper(b[i])) return false;
  }
  return true;
}

bool issued_as_required(const IdentityRule& rule, const PeerIdentity& identity) {
  if (rule.issuer && identity.issuer != *rule.issuer) return false;
  if (rule.ca_fingerprint) {
    const auto& cas = identity.ca_fingerprints_sha256;
    return std::any_of(cas.begin(), cas.end(), [&](const std::string& fingerprint) {
      return fingerprint_equal(fingerprint, *rule.ca_fingerprint);
    });
  }
  return true;
}

bool rule_matches(const IdentityRule& rule, const PeerIdentity& identity) {
  if (!issued_as_required(rule, identity)) return false;
  switch (rule.field) {
    case MatchField::common_name:
      return identity.common_name.has_value() && *identity.common_name == rule.value;
    case MatchField::san_dns:
      return std::find(identity.san_dns.begin(), identity.san_dns.end(), rule.value) !=
             identity.san_dns.end();
    case MatchField::san_uri:
      return std::find(identity.san_uri.begin(), identity.san_uri.end(), rule.value) !=
             identity.san_uri.end();
    case MatchField::fingerprint:
      return !identity.fingerprint_sha256.empty() &&
             fingerprint_equal(identity.fingerprint_sha256, rule.value);
  }
  return false;
}

Decision authorize_checked(const Policy& policy, const Principal& principal, std::string_view verb,
                           const std::vector<std::string>& args) {
  // The one visible sequence: builtin, unknown, explicit deny, default deny, arity, per-verb
  // checks.
  const protocol::VerbSpec* spec = protocol::find_verb(verb);
  if (spec != nullptr && spec->grant == protocol::Grant::builtin) {
    return allow("builtin", std::string(verb) + " is always available");
  }
  if (spec == nullptr) return deny("default-deny", "unknown command " + shown(verb));

  const std::vector<const Role*> roles = roles_of(policy, principal);
  for (const Role* role : roles) {
    if (role->deny.contains(std::string(verb))) {
      return deny(role_rule(*role, "deny"), "role " + role->name + " denies '" + std::string(verb) +
                                                "' to " + principal.name);
    }
  }
  std::vector<const Role*> allowing;
  for (const Role* role : roles) {
    if (role->commands.contains(std::string(verb))) allowing.push_back(role);
  }
  if (allowing.empty()) {
    return deny("default-deny",
                "no role of " + principal.name + " allows '" + std::string(verb) + "'");
  }
  // The gate has checked arity already; this function trusts no caller.
  if (!protocol::arity_fits(*spec, args.size())) return malformed(verb);

  switch (spec->verb) {
    case protocol::Verb::ping:
    case protocol::Verb::whoami:
    case protocol::Verb::lastlog:
      return allow(role_rule(*allowing.front(), "commands"),
                   "role " + allowing.front()->name + " allows '" + std::string(verb) + "'");
    case protocol::Verb::tail:
      return authorize_tail(policy, principal, allowing, args);
    case protocol::Verb::hash:
      return authorize_hash(principal, allowing, verb, args[0], args[1]);
    case protocol::Verb::comphash:
      return authorize_hash(principal, allowing, verb, std::string(protocol::kComphashAlgorithm),
                            args[0]);
    case protocol::Verb::run:
      return authorize_run(policy, principal, allowing, args);
    default:
      // A grantable verb this function does not know yet: fail closed.
      return deny("default-deny", "no authorisation rule for '" + std::string(verb) + "'");
  }
}

}  // namespace

// The principal's roles that exist in this policy, in name order: the outcome, and the rule it
// names, never depend on the order roles were listed in.
std::vector<const Role*> roles_of(const Policy& policy, const Principal& principal) {
  std::vector<const Role*> out;
  for (const auto& name : principal.roles) {
    const auto it = policy.roles.find(name);
    if (it != policy.roles.end()) out.push_back(&it->second);
  }
  std::sort(out.begin(), out.end(), [](const Role* a, const Role* b) { return a->name < b->name; });
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::optional<Principal> map_identity(const Policy& policy, const PeerIdentity& identity) {
  try {
    for (const auto& rule : policy.identities) {
      if (rule_matches(rule, identity)) return Principal{rule.principal, rule.roles, rule.rule};
    }
  } catch (...) {
    // Only allocation can fail here; an identity that cannot be mapped is refused.
  }
  return std::nullopt;
}

Remapping remap_identity(const Policy& policy, const PeerIdentity& identity,
                         const Principal& current) {
  Remapping r;
  auto principal = map_identity(policy, identity);
  if (!principal) {
    r.kind = Remapping::Kind::unmapped;
    r.reason = "policy " + policy.version + " no longer maps certificate " + identity.subject +
               " to a principal";
  } else if (principal->name != current.name) {
    r.kind = Remapping::Kind::unmapped;
    r.reason = "policy " + policy.version + " maps certificate " + identity.subject +
               " to principal " + principal->name + ", not " + current.name;
  } else if (principal->roles != current.roles || principal->rule != current.rule) {
    r.kind = Remapping::Kind::roles_changed;
    r.principal = std::move(*principal);
  }
  return r;
}

Decision authorize(const Policy& policy, const Principal& principal, std::string_view verb,
                   const std::vector<std::string>& args) {
  // Nothing may escape: the only exceptions possible here are allocation failures, and the
  // answer to those is "no".
  try {
    return authorize_checked(policy, principal, verb, args);
  } catch (...) {
    Decision d;
    d.rule = kInternalErrorRule;
    d.reason = "internal error while authorising";
    return d;
  }
}

std::vector<const protocol::VerbSpec*> allowed_verbs(const Policy& policy,
                                                     const Principal& principal) {
  std::set<std::string, std::less<>> granted;
  std::set<std::string, std::less<>> denied;
  for (const Role* role : roles_of(policy, principal)) {
    granted.insert(role->commands.begin(), role->commands.end());
    denied.insert(role->deny.begin(), role->deny.end());
  }
  std::vector<const protocol::VerbSpec*> out;
  for (const auto& spec : protocol::all_verbs()) {
    const bool usable = spec.grant == protocol::Grant::builtin ||
                        (granted.contains(spec.name) && !denied.contains(spec.name));
    if (usable) out.push_back(&spec);
  }
  std::sort(out.begin(), out.end(), [](const protocol::VerbSpec* a, const protocol::VerbSpec* b) {
    return a->name < b->name;
  });
  return out;
}

}  // namespace opsagent::policy
