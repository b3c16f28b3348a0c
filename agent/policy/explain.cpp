#include "agent/policy/explain.hpp"

#include <algorithm>

#include "agent/protocol/verbs.hpp"

namespace opsagent::policy {
namespace {

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) {
    if (!out.empty()) out += ' ';
    out += w;
  }
  return out;
}

std::string at(const Policy& policy, const std::string& key) {
  const std::string where = location_of(policy, key);
  return where.empty() ? key : key + " at " + where;
}

// The rule lines of an allow or an explicit deny: the entry that decided, then the entries
// behind it (the verb grant, the log, the command definition).
void add_rule_lines(const Policy& policy, const std::string& verb,
                    const std::vector<std::string>& args, const Decision& d,
                    std::vector<std::string>& lines) {
  const std::string& rule = d.rule;
  if (rule == "builtin") {
    lines.push_back("rule: builtin (every authenticated principal may use " + verb +
                    "; the policy cannot grant or deny it)");
    return;
  }
  if (rule == "default-deny") {
    lines.emplace_back("rule: default deny (no rule of the policy grants this)");
    return;
  }
  if (rule == "malformed" || rule == "internal-error") {
    lines.push_back("rule: " + rule);
    return;
  }
  if (rule == "tail.max_lines") {
    const std::string where = location_of(policy, rule);
    lines.push_back("rule: tail.max_lines" +
                    (where.empty() ? " (default " + std::to_string(policy.tail_max_lines) + ")"
                                   : " at " + where));
    return;
  }
  if (rule.rfind("commands.", 0) == 0) {  // commands.NAME.args: an argument did not fit
    const std::string name = rule.substr(9, rule.size() - 9 - 5);
    lines.push_back("rule: " + rule);
    lines.push_back("command entry: " + at(policy, "commands." + name));
    return;
  }
  // roles.R.{deny,commands,logs,run,hash.paths}; role names may contain dots, so the role is
  // found by name rather than by splitting the rule.
  std::string base;
  std::string kind;
  for (const auto& [name, role] : policy.roles) {
    const std::string prefix = "roles." + name + ".";
    if (rule.rfind(prefix, 0) == 0 && rule.size() > prefix.size()) {
      const std::string rest = rule.substr(prefix.size());
      if (rest == "deny" || rest == "commands" || rest == "logs" || rest == "run" ||
          rest == "hash.paths") {
        base = "roles." + name;
        kind = rest;
        break;
      }
    }
  }
  if (kind.empty()) {
    lines.push_back("rule: " + rule);
    return;
  }
  if (kind == "deny" || kind == "commands") {
    lines.push_back("rule: " + at(policy, base + "." + kind + "." + verb));
    lines.push_back("role: " + at(policy, base));
    return;
  }
  if (kind == "logs") {
    lines.push_back("rule: " + at(policy, base + ".logs." + args.front()));
    lines.push_back("log entry: " + at(policy, "logs." + args.front()) + " (" +
                    d.log_path.string() + ", " + std::to_string(d.lines) + " lines)");
  } else if (kind == "run") {
    lines.push_back("rule: " + at(policy, base + ".run." + args.front()));
    lines.push_back("command entry: " + at(policy, "commands." + args.front()));
    lines.push_back("argv: " + joined(d.argv));
  } else if (kind == "hash.paths" && d.path) {
    lines.push_back("rule: " + at(policy, base + ".hash.paths." + d.path->pattern));
    if (verb == protocol::spec_of(protocol::Verb::hash).name) {
      lines.push_back("algorithm: " + at(policy, base + ".hash.algorithms." + d.algorithm));
    }
    lines.push_back("opens: " + (d.path->root / d.path->relative).string() + " beneath " +
                    d.path->root.string());
  } else {
    lines.push_back("rule: " + rule);
  }
  lines.push_back("verb granted by: " + at(policy, base + ".commands." + verb));
}

}  // namespace

std::string location_of(const Policy& policy, const std::string& key) {
  const auto it = policy.locations.find(key);
  if (it == policy.locations.end()) return "";
  return policy.source.string() + ":" + std::to_string(it->second.line) + ":" +
         std::to_string(it->second.column);
}

Explanation explain(const Policy& policy, const Principal& principal,
                    const std::vector<std::string>& words) {
  Explanation e;
  std::string roles;
  for (const auto& r : principal.roles) roles += (roles.empty() ? "" : ",") + r;
  e.lines.push_back("policy: " + policy.source.string() + " (version " + policy.version + ")");
  e.lines.push_back("principal: " + principal.name + " roles=" + (roles.empty() ? "-" : roles) +
                    " (" + at(policy, principal.rule) + ")");
  e.lines.push_back("command: " + joined(words));

  if (words.empty() || words.front().empty()) {
    e.verdict = Explanation::Verdict::reject;
    e.lines.emplace_back("decision: reject (no command given)");
    return e;
  }
  const std::string& verb = words.front();
  const std::vector<std::string> args(words.begin() + 1, words.end());
  const protocol::VerbSpec* spec = protocol::find_verb(verb);
  if (spec == nullptr) {
    e.verdict = Explanation::Verdict::reject;
    e.lines.emplace_back(
        "decision: reject (unknown command: the agent answers ERR unknown before "
        "the policy is asked)");
    return e;
  }
  if (!protocol::arity_fits(*spec, args.size())) {
    e.verdict = Explanation::Verdict::reject;
    e.lines.push_back("decision: reject (usage: " + std::string(spec->usage) +
                      "; the agent answers ERR usage before the policy is asked)");
    return e;
  }

  const Decision d = authorize(policy, principal, verb, args);
  e.verdict = d.allowed ? Explanation::Verdict::allow : Explanation::Verdict::deny;
  std::string decision = d.allowed ? "allow" : "deny";
  if (!d.allowed && d.rule == "default-deny") decision += " (default deny)";
  e.lines.push_back("decision: " + decision);
  add_rule_lines(policy, verb, args, d, e.lines);
  e.lines.push_back("reason: " + d.reason);
  if (spec->verb == protocol::Verb::run && !policy.commands.contains(args.front())) {
    e.lines.push_back("note: no command '" + args.front() + "' is defined under commands:");
  }
  return e;
}

}  // namespace opsagent::policy
