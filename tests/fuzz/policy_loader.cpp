// Fuzz target: config::parse_yaml and the policy loader on hostile text (SECURITY-MATRIX G4).
// Properties: ConfigError is the only exception that may escape (anything else, a crash, a hang
// or unbounded memory is a finding); a policy that loads is internally consistent: every
// reference it holds resolves, and authorising a few requests for each principal neither throws
// nor allows an unknown verb.

#include <cstddef>
#include <cstdint>
#include <string>

#include "agent/config/config_error.hpp"
#include "agent/config/strict_yaml.hpp"
#include "agent/policy/authorizer.hpp"
#include "agent/policy/policy.hpp"

#include "tests/fuzz/fuzz_support.hpp"

using opsagent::fuzz::expect;
namespace policy = opsagent::policy;

namespace {

void check_policy(const policy::Policy& p) {
  for (const auto& [name, role] : p.roles) {
    expect(role.name == name, "role stored under another name", name);
    for (const auto& log : role.logs) expect(p.logs.count(log) == 1, "role names an undefined log");
    for (const auto& cmd : role.run) {
      expect(p.commands.count(cmd) == 1, "role names an undefined command");
    }
    for (const auto& verb : role.deny) expect(role.commands.count(verb) == 0, "allow and deny");
    for (const auto& pattern : role.hash.paths) {
      expect(pattern.root().is_absolute(), "pattern root is not absolute", pattern.text());
    }
  }
  for (const auto& [name, cmd] : p.commands) {
    expect(!cmd.argv.empty() && !cmd.argv[0].empty() && cmd.argv[0][0] == '/',
           "command argv[0] is not absolute", name);
    for (const auto& arg : cmd.args) expect(arg.pattern != nullptr, "argument without a regex");
  }
  for (const auto& [name, path] : p.logs) expect(path.is_absolute(), "log path not absolute", name);
  for (const auto& rule : p.identities) {
    for (const auto& role : rule.roles) expect(p.roles.count(role) == 1, "identity: unknown role");
    const policy::Principal principal{rule.principal, rule.roles, rule.rule};
    for (const char* verb : {"ping", "tail", "hash", "run", "rm"}) {
      const auto d = policy::authorize(p, principal, verb, {"syslog"});
      expect(d.rule != "internal-error", "authorize failed internally");
      if (std::string(verb) == "rm") expect(!d.allowed, "unknown verb allowed");
    }
    (void)policy::allowed_verbs(p, principal);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    (void)opsagent::config::parse_yaml(text, "fuzz.yaml");
  } catch (const opsagent::config::ConfigError& e) {
    expect(std::string(e.what()).rfind("fuzz.yaml", 0) == 0, "error does not name the file");
  }
  try {
    const auto loaded = policy::load_policy_from_text(text, "fuzz.yaml");
    expect(loaded != nullptr, "load_policy_from_text returned null");
    check_policy(*loaded);
  } catch (const opsagent::config::ConfigError& e) {
    expect(std::string(e.what()).rfind("fuzz.yaml", 0) == 0, "error does not name the file");
  }
  return 0;
}
