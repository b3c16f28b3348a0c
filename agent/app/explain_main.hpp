#pragma once
// `opsagent explain`: flags, load, map the principal, print policy::explain(). Runs nothing.

namespace opsagent::app {

/// Exit codes of `opsagent explain` (docs/configuration.md#opsagent-explain).
constexpr int kExplainAllow = 0;
constexpr int kExplainDeny = 1;    ///< the policy denies it, or no principal would be admitted
constexpr int kExplainReject = 2;  ///< unknown command or wrong arity: refused before the policy

/// `argv[0]` is "explain". Returns the exit code.
int explain_main(int argc, char** argv);

}  // namespace opsagent::app
