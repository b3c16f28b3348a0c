// failmalloc: an LD_PRELOAD shim that makes malloc, calloc and realloc fail on demand, for
// SECURITY-MATRIX H5 ("a failed allocation ends one connection, not the process").
// operator new reaches malloc through libstdc++, so it throws std::bad_alloc under this shim.
// Not wrapped, so never failed: posix_memalign/aligned_alloc/memalign (over-aligned new) and
// whatever a library allocates with mmap(2) directly. Useless under ASan/TSan, whose runtimes
// own malloc.
//
// Everything is off until the test turns it on, so the process starts normally:
//   FAILMALLOC_CONTROL=PATH    failures are armed while PATH exists (checked at most every
//                              FAILMALLOC_POLL_MS, default 5, from inside the allocator with
//                              access(2); the test creates and removes the file)
//   FAILMALLOC_EVERY=N         while armed, fail every Nth eligible allocation (0: never)
//   FAILMALLOC_MIN_SIZE=BYTES  only allocations of at least BYTES are eligible (default 0: all)
//   FAILMALLOC_MAX_FAILURES=K  stop after K failures in total (default 0: no limit)
//   FAILMALLOC_STATS=PATH      "INJECTED ELIGIBLE\n": failures injected so far and eligible
//                              allocations seen while armed; rewritten at most once per poll
//                              while they change, and at exit
//
// Rules for the code below: it runs inside malloc, so it must never allocate (no std::string,
// no stdio, no getenv copies, no locks that allocate); only atomics, raw syscalls and fixed
// buffers. dlsym() may itself call calloc/malloc while we are still resolving the real
// functions, so those early requests are served from a small static arena; free() and realloc()
// recognise pointers into that arena and never hand them to the real allocator.

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

namespace {

using MallocFn = void* (*)(std::size_t);
using CallocFn = void* (*)(std::size_t, std::size_t);
using ReallocFn = void* (*)(void*, std::size_t);
using FreeFn = void (*)(void*);

MallocFn real_malloc = nullptr;
CallocFn real_calloc = nullptr;
ReallocFn real_realloc = nullptr;
FreeFn real_free = nullptr;

// --- Bootstrap arena for allocations made by dlsym() while the real functions are resolved.
constexpr std::size_t kArenaBytes = 64 * 1024;
alignas(std::max_align_t) unsigned char arena[kArenaBytes];
std::atomic<std::size_t> arena_used{0};

bool in_arena(const void* p) {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  const auto base = reinterpret_cast<std::uintptr_t>(arena);
  return addr >= base && addr < base + kArenaBytes;
}

void* arena_alloc(std::size_t size) {
  // Each block is preceded by its size so realloc() can copy it out.
  constexpr std::size_t kAlign = alignof(std::max_align_t);
  const std::size_t need = ((size + kAlign - 1) / kAlign + 1) * kAlign;
  const std::size_t start = arena_used.fetch_add(need);
  if (start + need > kArenaBytes) return nullptr;
  unsigned char* block = arena + start;
  std::memcpy(block, &size, sizeof size);
  return block + kAlign;  // static storage: already zeroed, as calloc requires
}

std::size_t arena_size(const void* p) {
  std::size_t size = 0;
  std::memcpy(&size, static_cast<const unsigned char*>(p) - alignof(std::max_align_t), sizeof size);
  return size;
}

// --- Configuration, read once on first use (getenv does not allocate).
enum : int { kUninitialised = 0, kResolving = 1, kReady = 2 };
std::atomic<int> state{kUninitialised};

const char* control_path = nullptr;
const char* stats_path = nullptr;
std::uint64_t every = 0;
std::uint64_t min_size = 0;
std::uint64_t max_failures = 0;
std::int64_t poll_ns = 5'000'000;

std::atomic<bool> armed{false};
std::atomic<std::int64_t> next_poll_ns{0};
std::atomic<std::uint64_t> eligible{0};
std::atomic<std::uint64_t> injected{0};
std::atomic<std::uint64_t> reported{0};  // `eligible` at the last stats write

std::uint64_t env_number(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return 0;
  std::uint64_t n = 0;
  for (; *v >= '0' && *v <= '9'; ++v) n = n * 10 + static_cast<std::uint64_t>(*v - '0');
  return n;
}

void initialise() {
  int expected = kUninitialised;
  if (!state.compare_exchange_strong(expected, kResolving)) {
    // Another thread is resolving (cannot happen before main starts threads, but be safe).
    while (state.load() != kReady) {
    }
    return;
  }
  real_malloc = reinterpret_cast<MallocFn>(dlsym(RTLD_NEXT, "malloc"));
  real_calloc = reinterpret_cast<CallocFn>(dlsym(RTLD_NEXT, "calloc"));
  real_realloc = reinterpret_cast<ReallocFn>(dlsym(RTLD_NEXT, "realloc"));
  real_free = reinterpret_cast<FreeFn>(dlsym(RTLD_NEXT, "free"));
  if (real_malloc == nullptr || real_calloc == nullptr || real_realloc == nullptr ||
      real_free == nullptr) {
    constexpr char kMsg[] = "failmalloc: cannot resolve the real allocator\n";
    [[maybe_unused]] const auto n = ::write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
    std::_Exit(127);
  }
  control_path = std::getenv("FAILMALLOC_CONTROL");
  stats_path = std::getenv("FAILMALLOC_STATS");
  every = env_number("FAILMALLOC_EVERY");
  min_size = env_number("FAILMALLOC_MIN_SIZE");
  max_failures = env_number("FAILMALLOC_MAX_FAILURES");
  if (const std::uint64_t ms = env_number("FAILMALLOC_POLL_MS"); ms > 0) {
    poll_ns = static_cast<std::int64_t>(ms) * 1'000'000;
  }
  state.store(kReady);
}

// Appends `n` in decimal to text[len...].
void append_number(char* text, std::size_t& len, std::uint64_t n) {
  char digits[24];
  std::size_t nd = 0;
  do {
    digits[nd++] = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n > 0);
  while (nd > 0) text[len++] = digits[--nd];
}

// Writes the counters to FAILMALLOC_STATS with raw syscalls.
void write_stats(std::uint64_t failures, std::uint64_t seen) {
  if (stats_path == nullptr) return;
  char text[64];
  std::size_t len = 0;
  append_number(text, len, failures);
  text[len++] = ' ';
  append_number(text, len, seen);
  text[len++] = '\n';
  const int fd = ::open(stats_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  [[maybe_unused]] const auto n = ::write(fd, text, len);
  ::close(fd);
}

// Re-reads the control file when the poll interval has passed; one thread at a time.
void poll_control() {
  if (control_path == nullptr) return;
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  const std::int64_t now = static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  std::int64_t due = next_poll_ns.load(std::memory_order_relaxed);
  if (now < due ||
      !next_poll_ns.compare_exchange_strong(due, now + poll_ns, std::memory_order_relaxed)) {
    return;
  }
  armed.store(::access(control_path, F_OK) == 0, std::memory_order_relaxed);
  const std::uint64_t seen = eligible.load(std::memory_order_relaxed);
  if (reported.exchange(seen, std::memory_order_relaxed) != seen) {
    write_stats(injected.load(std::memory_order_relaxed), seen);
  }
}

// True when this allocation is to fail.
bool should_fail(std::size_t size) {
  poll_control();
  if (!armed.load(std::memory_order_relaxed) || size < min_size) return false;
  const std::uint64_t n = eligible.fetch_add(1, std::memory_order_relaxed);
  if (every == 0 || n % every != every - 1) return false;
  if (max_failures != 0 && injected.load(std::memory_order_relaxed) >= max_failures) return false;
  injected.fetch_add(1, std::memory_order_relaxed);
  errno = ENOMEM;
  return true;
}

bool ready() {
  if (state.load(std::memory_order_acquire) == kReady) return true;
  if (state.load() == kResolving) return false;  // dlsym() asking for memory: use the arena
  initialise();
  return true;
}

// Final count for the test, also when nothing polled after the last failure.
struct StatsAtExit {
  StatsAtExit() = default;
  StatsAtExit(const StatsAtExit&) = delete;
  StatsAtExit& operator=(const StatsAtExit&) = delete;
  ~StatsAtExit() {
    if (state.load() == kReady) write_stats(injected.load(), eligible.load());
  }
} stats_at_exit;

}  // namespace

extern "C" {

// The C library declares these noexcept in C++; the definitions must match.
void* malloc(std::size_t size) noexcept {
  if (!ready()) return arena_alloc(size);
  if (should_fail(size)) return nullptr;
  return real_malloc(size);
}

void* calloc(std::size_t count, std::size_t size) noexcept {
  if (!ready()) {
    if (size != 0 && count > SIZE_MAX / size) return nullptr;
    return arena_alloc(count * size);
  }
  const std::size_t total = size != 0 && count <= SIZE_MAX / size ? count * size : SIZE_MAX;
  if (should_fail(total)) return nullptr;
  return real_calloc(count, size);
}

void* realloc(void* ptr, std::size_t size) noexcept {
  if (ptr != nullptr && in_arena(ptr)) {
    // An arena block moves to the real heap (or a new arena block during bootstrap).
    void* moved = malloc(size);
    if (moved != nullptr) {
      const std::size_t old = arena_size(ptr);
      std::memcpy(moved, ptr, old < size ? old : size);
    }
    return moved;
  }
  if (!ready()) return arena_alloc(size);              // ptr is null here: nothing real exists yet
  if (size != 0 && should_fail(size)) return nullptr;  // ptr stays valid, as realloc promises
  return real_realloc(ptr, size);
}

void free(void* ptr) noexcept {
  if (ptr == nullptr || in_arena(ptr)) return;  // arena blocks are never reused
  if (!ready()) return;                         // cannot be a real block yet
  real_free(ptr);
}

}  // extern "C"
