#pragma once
// Memory for audit records, kept per thread for reuse. Under a pipelined load an I/O thread has
// a hundred or more records in flight at once, more than glibc's per-thread cache keeps of one
// size (7): every record's two allocations and frees went to the shared arena and its lock,
// 0.3-0.4 us of the ~2.3 us a record cost (scripts/bench-audit.sh). A record's body and its
// SharedRecord block go back to the cache of the thread that frees them: on the agent, the I/O
// thread that made them (a session drops its receipt after the writer is done with the record).
// Bounded: at most kMaxKept of each per thread, bodies only up to kMaxKeptCapacity bytes.

#include <cstddef>
#include <string>

namespace opsagent::audit::record_buffers {

/// False under AddressSanitizer: memory reused here would hide a use after free of a record from
/// it, so every take allocates and every give frees.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kCaching = false;
#else
inline constexpr bool kCaching = true;
#endif

/// Room for a command's record (250-300 bytes) without growing.
inline constexpr std::size_t kBodyCapacity = 384;
inline constexpr std::size_t kMaxKept = 256;
inline constexpr std::size_t kMaxKeptCapacity = 4096;

/// An empty string with at least kBodyCapacity bytes of room: from this thread's cache, else
/// newly allocated. Throws std::bad_alloc.
std::string take_body();
/// Keeps `body`'s buffer for this thread's take_body() when there is room; frees it otherwise.
/// Never allocates, never throws.
void give_body(std::string&& body) noexcept;

/// Memory for one object of `size` bytes (class operator new of a record). Throws
/// std::bad_alloc.
void* take_block(std::size_t size);
/// Gives back what take_block(size) returned, on any thread. Never throws.
void give_block(void* block, std::size_t size) noexcept;

}  // namespace opsagent::audit::record_buffers
