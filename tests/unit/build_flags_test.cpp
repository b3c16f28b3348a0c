// The checks the build presets promise (cmake/ProjectOptions.cmake): a test, so that a change to
// the CMake files cannot drop one silently.
#include <gtest/gtest.h>

namespace {

// Debug-based presets (debug, asan, tsan) check libstdc++'s preconditions: a reset
// std::optional or an index out of range aborts there instead of reading inline storage that no
// sanitizer watches (the class of f58c457).
TEST(BuildFlags, DebugBuildsCheckTheStandardLibrarysPreconditions) {
#ifdef NDEBUG
  GTEST_SKIP() << "an optimised build: the assertions are for the debug-based presets";
#elif !defined(_GLIBCXX_ASSERTIONS)
  FAIL() << "_GLIBCXX_ASSERTIONS is not defined in this debug build";
#endif
}

}  // namespace
