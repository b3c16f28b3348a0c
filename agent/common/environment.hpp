#pragma once
// Reading the process environment. getenv() races only with setenv(), putenv(), unsetenv() and
// clearenv(), and no code of ours calls any of them: a child's environment is built from scratch
// (exec/), never by editing our own. So a lookup is safe from any thread, and this is the one
// place that says so to clang-tidy.

#include <cstdlib>

namespace opsagent::common {

/// The variable's value, or null when it is not set.
inline const char* env_var(const char* name) noexcept {
  return std::getenv(name);  // NOLINT(concurrency-mt-unsafe): nothing modifies the environment
}

}  // namespace opsagent::common
