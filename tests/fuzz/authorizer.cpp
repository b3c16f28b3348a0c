// Fuzz target: policy::authorize against one fixed policy (SECURITY-MATRIX C2-C6).
// Input: byte 0 selects the principal's roles (a bit per entry of kRoleNames, which includes
// duplicates' worth of order and a role the policy does not define), the rest is the request,
// "\n"-separated: verb, then arguments.
// Property, checked with an oracle written from docs/policy.md rather than from authorizer.cpp:
// an allowed request is a builtin, or some role lists the verb in `commands` and none denies it;
// run: the argv is the command's argv (+ "--") + the client args, each full-matching its
// pattern, granted by a role that allows run; hash/comphash: the path is absolute without
// "", "." or ".." components and lies beneath the granted root, matched by a pattern of a role
// that also grants the algorithm; tail: a granting role lists the log, lines within bounds.
// Also: the decision does not depend on the order of the principal's roles.

#include "agent/policy/authorizer.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <re2/re2.h>

#include "agent/policy/policy.hpp"

#include "tests/fuzz/fuzz_support.hpp"

using opsagent::fuzz::expect;
using opsagent::fuzz::violated;
namespace policy = opsagent::policy;

namespace {

constexpr const char* kPolicy = R"(
identities:
  - match: {cn: alice}
    principal: alice
    roles: [operator]
roles:
  operator:
    commands: [ping, whoami, lastlog, tail, comphash, hash, run]
    logs: [syslog]
    hash:
      algorithms: [sha1, sha256]
      paths: ["/etc/**", "/var/log/*.log", "/srv/data/x?/**/file", "/opt/app/config.yaml"]
    run: [uptime, disk-usage, echo]
  reader:
    commands: [ping, tail, hash, comphash]
    logs: [app]
    hash:
      algorithms: [sha512]
      paths: ["/home/*/public/**", "/var/log2/**"]
  denier:
    commands: [ping]
    deny: [run, hash]
  runner:
    commands: [run]
    run: [echo2]
  lister:
    run: [echo]
    logs: [syslog, app]
  empty: {}
logs:
  syslog: /var/log/syslog
  app: /var/log/app.log
tail: {max_lines: 500}
commands:
  uptime: {argv: [/usr/bin/uptime]}
  disk-usage:
    argv: [/usr/bin/df, -h]
    args:
      - {name: mountpoint, pattern: '/[A-Za-z0-9._/-]*', optional: true}
  echo:
    argv: [/bin/echo, -n]
    args:
      - {name: count, pattern: '\d+'}
      - {name: word, pattern: '[a-z]+|-[a-z]', optional: true}
  echo2:
    argv: [/bin/echo]
    end_of_options: false
    args:
      - {name: any, pattern: '.*', optional: true}
)";

constexpr const char* kRoleNames[] = {"operator", "reader", "denier", "runner",
                                      "lister",   "empty",  "ghost",  "operator"};

const policy::Policy& fixed_policy() {
  static const std::shared_ptr<const policy::Policy> kLoaded =
      policy::load_policy_from_text(kPolicy, "authorizer-fuzz.yaml");
  return *kLoaded;
}

std::vector<const policy::Role*> roles_of(const policy::Policy& p,
                                          const std::vector<std::string>& names) {
  std::vector<const policy::Role*> out;
  for (const auto& name : names) {
    const auto it = p.roles.find(name);
    if (it != p.roles.end()) out.push_back(&it->second);
  }
  return out;
}

// Components of an absolute client path, or an empty vector when it is not a clean one.
std::vector<std::string> clean_components(const std::string& path) {
  if (path.size() < 2 || path[0] != '/' || path.find('\0') != std::string::npos) return {};
  std::vector<std::string> parts = opsagent::fuzz::split(std::string_view(path).substr(1), '/');
  for (const auto& part : parts) {
    if (part.empty() || part == "." || part == "..") return {};
  }
  return parts;
}

void check_run(const policy::Policy& p, const std::vector<const policy::Role*>& roles,
               const std::vector<std::string>& args, const policy::Decision& d) {
  expect(!args.empty(), "run allowed without a command name");
  const auto it = p.commands.find(args[0]);
  expect(it != p.commands.end(), "run allowed for an undefined command", args[0]);
  const policy::RunCommand& cmd = it->second;
  expect(d.run == &cmd, "decision points at another command");
  expect(std::any_of(roles.begin(), roles.end(),
                     [&](const policy::Role* r) {
                       return r->commands.count("run") != 0 && r->run.count(args[0]) != 0;
                     }),
         "no role that allows run lists the command", args[0]);
  const std::size_t given = args.size() - 1;
  expect(given <= cmd.args.size(), "more client arguments than the command takes");
  for (std::size_t i = 0; i < cmd.args.size(); ++i) {
    if (i >= given) {
      expect(cmd.args[i].optional, "a required argument is missing");
      continue;
    }
    expect(RE2::FullMatch(args[i + 1], *cmd.args[i].pattern),
           "client argument does not full-match its pattern", args[i + 1]);
  }
  std::vector<std::string> expected = cmd.argv;
  if (cmd.end_of_options && given > 0) expected.emplace_back("--");
  expected.insert(expected.end(), args.begin() + 1, args.end());
  expect(d.argv.size() >= cmd.argv.size() &&
             std::equal(cmd.argv.begin(), cmd.argv.end(), d.argv.begin()),
         "argv does not start with the command's argv");
  expect(d.argv == expected, "argv is not argv + [--] + client args");
}

void check_hash(const std::vector<const policy::Role*>& roles, const std::string& verb,
                const std::vector<std::string>& args, const policy::Decision& d) {
  expect(args.size() == (verb == "hash" ? 2U : 1U), "hash allowed with the wrong arity");
  const std::string algorithm = verb == "hash" ? args[0] : "sha1";
  const std::vector<std::string> parts = clean_components(args.back());
  expect(!parts.empty(), "hash allowed on an unclean path", args.back());
  expect(d.path.has_value(), "hash allowed without a path grant");
  expect(d.algorithm == algorithm, "decision names another algorithm");

  // Beneath the root: the root's components are a strict prefix of the path's, and root /
  // relative is the path itself.
  const auto root = d.path->root;
  std::vector<std::string> root_parts;
  for (const auto& part : root.relative_path()) root_parts.push_back(part.string());
  expect(root.is_absolute(), "granted root is not absolute", root.string());
  expect(root_parts.size() < parts.size() &&
             std::equal(root_parts.begin(), root_parts.end(), parts.begin()),
         "path is not beneath the granted root", args.back());
  for (const auto& part : d.path->relative) {
    const std::string s = part.string();
    expect(!s.empty() && s != "." && s != ".." && s != "/", "bad relative component", s);
  }
  expect((root / d.path->relative).string() == args.back(), "root / relative is not the path",
         args.back());

  // The pattern and the algorithm come from the same role, one that allows the verb.
  const bool granted = std::any_of(roles.begin(), roles.end(), [&](const policy::Role* r) {
    if (r->commands.count(verb) == 0) return false;
    if (verb == "hash" && r->hash.algorithms.count(algorithm) == 0) return false;
    return std::any_of(r->hash.paths.begin(), r->hash.paths.end(),
                       [&](const policy::PathPattern& pat) {
                         return pat.text() == d.path->pattern && pat.root() == root;
                       });
  });
  expect(granted, "no single role grants both the pattern and the algorithm", args.back());
}

void check_tail(const policy::Policy& p, const std::vector<const policy::Role*>& roles,
                const std::vector<std::string>& args, const policy::Decision& d) {
  expect(!args.empty() && args.size() <= 2, "tail allowed with the wrong arity");
  expect(std::any_of(roles.begin(), roles.end(),
                     [&](const policy::Role* r) {
                       return r->commands.count("tail") != 0 && r->logs.count(args[0]) != 0;
                     }),
         "no role that allows tail lists the log", args[0]);
  expect(d.log_path == p.logs.at(args[0]), "tail of another file");
  expect(d.lines >= 1 && d.lines <= p.tail_max_lines, "tail line count out of bounds");
  if (args.size() == 2) expect(std::to_string(d.lines) == args[1], "line count changed");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const policy::Policy& p = fixed_policy();
  opsagent::fuzz::ByteReader in(data, size);
  const std::uint8_t mask = in.byte();
  std::vector<std::string> role_names;
  for (std::size_t i = 0; i < 8; ++i) {
    if ((mask >> i) & 1U) role_names.emplace_back(kRoleNames[i]);
  }
  std::vector<std::string> words = opsagent::fuzz::split(in.rest(), '\n');
  const std::string verb = words.front();
  const std::vector<std::string> args(words.begin() + 1, words.end());

  const policy::Principal principal{"fuzz", role_names, "identities[0]"};
  const policy::Decision d = policy::authorize(p, principal, verb, args);
  expect(!d.rule.empty() && !d.reason.empty(), "decision without rule or reason");

  // Order independence (C2): the reversed role list gives the same answer and rule.
  policy::Principal reversed = principal;
  std::reverse(reversed.roles.begin(), reversed.roles.end());
  const policy::Decision r = policy::authorize(p, reversed, verb, args);
  expect(r.allowed == d.allowed && r.rule == d.rule, "decision depends on role order");

  if (!d.allowed) return 0;
  if (const auto* spec = opsagent::protocol::find_verb(verb);
      spec != nullptr && spec->grant == opsagent::protocol::Grant::builtin) {
    expect(d.rule == "builtin", "builtin allowed under another rule");
    return 0;
  }
  const auto roles = roles_of(p, role_names);
  for (const auto* role : roles) {
    expect(role->deny.count(verb) == 0, "a role denies the verb but it was allowed", verb);
  }
  expect(std::any_of(roles.begin(), roles.end(),
                     [&](const policy::Role* role) { return role->commands.count(verb) != 0; }),
         "no role lists the verb in commands", verb);

  if (verb == "run") {
    check_run(p, roles, args, d);
  } else if (verb == "hash" || verb == "comphash") {
    check_hash(roles, verb, args, d);
  } else if (verb == "tail") {
    check_tail(p, roles, args, d);
  } else if (verb == "ping" || verb == "whoami" || verb == "lastlog") {
    expect(args.empty(), "argument-less verb allowed with arguments");
  } else {
    violated("an unknown verb was allowed", verb);
  }
  return 0;
}
