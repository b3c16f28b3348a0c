#pragma once
// How much slower the sanitizer builds run, for the few test bounds that are behaviour, not
// speed: a handshake or idle timeout, a kill after a command's time limit and grace, a CPU or
// wall-clock budget for hostile input. Such a bound is written as the configured time plus a
// margin, and the margin (never the configured time) is scaled:
//   EXPECT_LT(took, 2s + scaled(2s));  // killed after timeout + grace, with a margin
// Everything else shows progress ("every command answered", "served while the flood runs")
// within a generous overall timeout, and asserts no rate at all.

#include <chrono>

namespace opsagent::testing {

#if defined(__SANITIZE_THREAD__)
#define OPSAGENT_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define OPSAGENT_TEST_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define OPSAGENT_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OPSAGENT_TEST_ASAN 1
#endif
#endif

/// True in a ThreadSanitizer or AddressSanitizer build of this translation unit.
constexpr bool under_sanitizer() {
#if defined(OPSAGENT_TEST_TSAN) || defined(OPSAGENT_TEST_ASAN)
  return true;
#else
  return false;
#endif
}

/// The factor time margins grow by in this build: 1 normally, 5 under ASan (+UBSan), 10 under
/// TSan. Both sanitizer presets are Debug builds; these are the slowdowns the integration suite
/// shows on a loaded 2-core machine, rounded up.
constexpr int sanitizer_time_scale() {
#if defined(OPSAGENT_TEST_TSAN)
  return 10;
#elif defined(OPSAGENT_TEST_ASAN)
  return 5;
#else
  return 1;
#endif
}

/// `margin` times sanitizer_time_scale(), in milliseconds.
template <class Rep, class Period>
constexpr std::chrono::milliseconds scaled(std::chrono::duration<Rep, Period> margin) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(margin) * sanitizer_time_scale();
}

/// `seconds` times sanitizer_time_scale(), for bounds kept as seconds (CPU time, seconds_since).
constexpr double scaled_seconds(double seconds) { return seconds * sanitizer_time_scale(); }

}  // namespace opsagent::testing
