// opsagent-guard under an agent that is PID 1 of its PID namespace, as in a container started
// without --init (issue 10: every `run` answered `ERR internal cannot start ...: Invalid
// argument` because the guard refused AGENT_PID 1).

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/agent_process.hpp"
#include "tests/support/test_pki.hpp"

namespace opsagent::testing {
namespace {

std::string guard_path() {
  return (std::filesystem::path(OPSAGENT_BINARY).parent_path() / "opsagent-guard").string();
}

TEST(GuardPid1, RunsTheCommandWhenItsParentIsTheNamespaceInit) {
  std::string probe;
  if (run_shell("unshare --pid --fork --mount-proc true 2>&1", &probe) != 0) {
    GTEST_SKIP() << "cannot create a PID namespace here: " << probe;
  }
  // sh is PID 1 of the new namespace and the guard's parent, as the agent in a container.
  std::string out;
  const int rc = run_shell("unshare --pid --fork --mount-proc sh -c '" + guard_path() +
                               " 1 0 -1 -1 /bin/echo guarded-ok 3>/dev/null; echo rc=$?' 2>&1",
                           &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("guarded-ok\nrc=0"), std::string::npos) << out;
}

TEST(GuardPid1, RefusesPid1WhenItsParentIsNotPid1) {
  // From the test's own namespace, where the guard's parent is a shell, not PID 1.
  std::string out;
  run_shell("sh -c '" + guard_path() + " 1 0 -1 -1 /bin/echo not-run 3>/dev/null; echo rc=$?' 2>&1",
            &out);
  EXPECT_EQ(out.find("not-run"), std::string::npos) << out;
  EXPECT_NE(out.find("rc=126"), std::string::npos) << out;
}

}  // namespace
}  // namespace opsagent::testing
