// The checks the build presets promise (cmake/ProjectOptions.cmake): a test, so that a change to
// the CMake files cannot drop one silently.
#include <elf.h>
#include <fstream>

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

// Executables are PIE with full RELRO, except under ASan+UBSan, where relocating GCC's
// instrumented UBSan records cost half of every process start (docs/development.md, "Builds").
TEST(BuildFlags, ExecutablesArePieExceptUnderAddressSanitizer) {
  std::ifstream self("/proc/self/exe", std::ios::binary);
  Elf64_Ehdr header{};
  ASSERT_TRUE(self.read(reinterpret_cast<char*>(&header), sizeof header));  // NOLINT
#if defined(__SANITIZE_ADDRESS__)
  EXPECT_EQ(header.e_type, ET_EXEC) << "an ASan+UBSan executable should not be a PIE";
#else
  EXPECT_EQ(header.e_type, ET_DYN) << "executables should be PIEs";
#endif
}

}  // namespace
