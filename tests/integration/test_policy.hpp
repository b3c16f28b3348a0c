#pragma once
// The policy most integration tests run with: alice is an operator, ci-bot a reader, mallory
// has a valid certificate but no mapping.

#include <string>

namespace opsagent::testing {

inline const std::string kTestPolicy = R"(
identities:
  - match: {cn: alice}
    principal: alice
    roles: [operator]
  - match: {san_uri: "spiffe://opsagent.local/ci-bot"}
    principal: ci-bot
    roles: [reader]
roles:
  operator:
    commands: [ping, whoami, lastlog, tail, comphash, hash, run]
    logs: [app]
    hash:
      algorithms: [sha1, sha256, sha512]
      paths: ["@DIR@/files/**"]
    run: [echo-args, slow, forker, fail, flood, missing, escaper]
  reader:
    commands: [ping, whoami, tail]
    deny: [run]
    logs: [app]
logs:
  app: @DIR@/syslog
commands:
  echo-args:
    argv: [@HELPERS@/argv-echo, fixed]
    args:
      - {name: a, pattern: '.{0,200}', optional: true}
      - {name: b, pattern: '.{0,200}', optional: true}
      - {name: c, pattern: '.{0,200}', optional: true}
  slow:
    argv: [@HELPERS@/sleeper, "1000"]
    args: [{name: marker, pattern: '[a-z0-9-]+'}]
    timeout: 1s
  forker:
    argv: [@HELPERS@/forker]
    args: [{name: marker, pattern: '[a-z0-9-]+'}]
    timeout: 60s
  fail:
    argv: [/bin/false]
  flood:
    argv: [@HELPERS@/flood, "2000000"]
    max_output: 64KiB
  missing:
    argv: [/nonexistent/program]
  escaper:
    argv: [@HELPERS@/escaper]
    args: [{name: marker, pattern: '[a-z0-9-]+'}]
)";

/// kTestPolicy with more `run` commands for alice: `names` is appended to the operator's run
/// list (", a, b"), `definitions` (YAML, indented under `commands:`) to the policy.
inline std::string test_policy_with_run(const std::string& names, const std::string& definitions) {
  const std::string run_list = "run: [echo-args, slow, forker, fail, flood, missing, escaper";
  std::string policy = kTestPolicy;
  policy.insert(policy.find(run_list) + run_list.size(), names);
  return policy + definitions;
}

}  // namespace opsagent::testing
